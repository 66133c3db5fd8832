"""Raw values → the normalised :class:`Record` / :class:`Profile` the resolver compares.

One place decides what identifies a record: its own source id, the cross-system ids other tools
store about it (``salesforce_account_id`` in Stripe metadata, a HubSpot property), the
customer's own external ids, its tier-2 key and the fields the fuzzy tier compares.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

from akita_pipelines.processing import normalize as nz
from akita_pipelines.processing.keys import own_id_key
from akita_pipelines.processing.resolve import EntityRef, Kind, Profile, Record

_SYSTEMS = {"salesforce": "salesforce", "sfdc": "salesforce", "sf": "salesforce",
            "hubspot": "hubspot", "hs": "hubspot", "stripe": "stripe", "zendesk": "zendesk",
            "intercom": "intercom", "chargebee": "chargebee", "pipedrive": "pipedrive"}
_ENTITY_WORDS: Mapping[str, frozenset[str]] = {
    "accounts": frozenset({"", "account", "company", "customer", "organization", "org"}),
    "contacts": frozenset({"", "contact", "lead", "user", "person", "people"}),
}
_CROSS = re.compile(r"^(?P<system>[a-z]+?)_?(?P<entity>account|company|customer|organization|org|"
                    r"contact|lead|user|person|people)?_?id$")
_EXTERNAL = re.compile(r"^(?:(?:account|company|customer|contact|person)_?)?external_?id$")


def _flat(fields: Mapping[str, Any], depth: int = 0) -> Iterator[tuple[str, Any]]:
    for key, value in fields.items():
        if isinstance(value, Mapping) and depth < 1:  # Stripe ``metadata``, HubSpot properties
            yield from _flat(value, depth + 1)
        else:
            yield str(key), value


def salesforce_id(value: str) -> str:
    """Salesforce ids come in 15- and 18-character forms; the first 15 characters agree."""
    return value[:15] if len(value) == 18 else value


def own_id(provider: str, external_id: str) -> str:
    value = salesforce_id(external_id) if provider == "salesforce" else external_id
    return own_id_key(provider, value)


def cross_ids(kind: Kind | str, fields: Mapping[str, Any]) -> tuple[str, ...]:
    """Identifier keys that ``fields`` carry for an entity of ``kind``: cross-system ids
    (``salesforce_account_id``, ``hubspot_company_id``, …) and customer external ids."""
    return _scan(fields, _ENTITY_WORDS.get(kind, frozenset()), external=True)


def account_ids(fields: Mapping[str, Any]) -> tuple[str, ...]:
    """Ids of the *account* a contact, deal or ticket refers to, from its fields."""
    return _scan(fields, _ENTITY_WORDS["accounts"] - {""}, external=False)


@lru_cache(maxsize=4096)
def _id_role(key: str) -> tuple[str, str, str] | None:
    """What a field name says about its value: ("ext", entity word, "") for an external id,
    ("cross", entity word, system) for another system's id, None for anything else. Cached by
    name: a stream's records repeat the same few dozen field names."""
    # A flattened header ("metadata.salesforce_account_id") names its last part.
    name = key.rsplit(".", 1)[-1].lower().replace("-", "_").replace(" ", "_")
    if _EXTERNAL.match(name):
        return "ext", name.split("external")[0].rstrip("_"), ""
    match = _CROSS.match(name)
    if match and match["system"] in _SYSTEMS:
        return "cross", match["entity"] or "", _SYSTEMS[match["system"]]
    return None


def _scan(fields: Mapping[str, Any], words: frozenset[str], *, external: bool
          ) -> tuple[str, ...]:
    found: set[str] = set()
    for key, value in _flat(fields):
        role = _id_role(key)
        if role is None or value is None or isinstance(value, (bool, Mapping, list)):
            continue
        text = str(value).strip()
        if not text or role[1] not in words:
            continue
        if role[0] == "ext":
            if external:
                found.add(f"ext:{text}")
        else:
            found.add(own_id(role[2], text))
    return tuple(sorted(found))


def _name_parts(first: str | None, last: str | None, name: str | None
                ) -> tuple[str | None, str | None]:
    if not first and not last and name:
        # Titles and suffixes go before the split: "Dr. Anne King Jr." is Anne King.
        parts = (nz.normalize_person_name(name) or name).split()
        if len(parts) >= 2:
            return parts[0], parts[-1]
        return None, parts[0] if parts else None
    return first, last


def account_record(rid: int, *, name: str | None, website: str | None, phone: str | None,
                   email: str | None = None, address: str | None = None,
                   ids: tuple[str, ...] = (), linked: int | None = None, source: str = "",
                   updated_at: datetime | None = None) -> Record:
    domain = nz.account_domain(website, email)
    e164 = nz.normalize_phone(phone)
    return Record(
        rid=rid, ids=ids, key=domain, name=company_key(name), domain=domain,
        qualifier=nz.company_qualifier(name), phone=e164, address=_address(address),
        linked=linked, source=source,
        updated_at=updated_at,
        values={"name": name.strip() if name else None, "domain": domain, "phone": e164})


def contact_record(rid: int, *, email: str | None, first_name: str | None,
                   last_name: str | None, name: str | None = None, phone: str | None = None,
                   address: str | None = None, birth_date: str | None = None,
                   ids: tuple[str, ...] = (), linked: int | None = None,
                   account: EntityRef | None = None, company: str | None = None,
                   source: str = "", updated_at: datetime | None = None,
                   middle_name: str | None = None) -> Record:
    key = nz.normalize_email(email)
    first_raw, last_raw = _name_parts(first_name, last_name, name)
    first = _person(first_raw)
    last = _person(last_raw)
    e164 = nz.normalize_phone(phone)
    full = " ".join(p for p in (first, last) if p) or None
    display = name or " ".join(p for p in (first_name, last_name) if p) or None
    return Record(
        rid=rid, ids=ids, key=key, name=full, first=first, last=last,
        first_variants=_variants(first),
        domain=nz.email_domain(key), phone=e164,
        address=_address(address), birth_date=_digits(birth_date), middle=_initial(middle_name),
        linked=linked,
        account=account, source=source, updated_at=updated_at,
        company=f"#{account}" if isinstance(account, int) else company_key(company),
        values={"email": key, "name": display, "first_name": first_name,
                "last_name": last_name, "phone": e164})


def account_profile(entity_id: int, *, name: str | None, domain: str | None,
                    phone: str | None, source_rank: int = 1_000,
                    updated_at: datetime | None = None) -> Profile:
    return Profile(entity_id=entity_id, key=domain, name=company_key(name),
                   qualifier=nz.company_qualifier(name), domain=domain, phone=phone,
                   source_rank=source_rank, updated_at=updated_at,
                   values={"name": name, "domain": domain, "phone": phone})


def contact_profile(entity_id: int, *, email: str | None, first_name: str | None,
                    last_name: str | None, name: str | None, phone: str | None,
                    account_id: int | None = None, source_rank: int = 1_000,
                    updated_at: datetime | None = None) -> Profile:
    first_raw, last_raw = _name_parts(first_name, last_name, name)
    first = _person(first_raw)
    last = _person(last_raw)
    return Profile(
        entity_id=entity_id, key=email, name=" ".join(p for p in (first, last) if p) or None,
        first=first, last=last,
        first_variants=_variants(first),
        domain=nz.email_domain(email), phone=phone,
        company=f"#{account_id}" if account_id is not None else None,
        source_rank=source_rank, updated_at=updated_at,
        values={"email": email, "name": name, "first_name": first_name,
                "last_name": last_name, "phone": phone})


_ADDRESS_FIELDS = ("address", "street", "address_1", "address_2", "billingstreet", "city",
                   "billingcity", "suburb", "state", "billingstate", "postcode", "postal_code",
                   "zip", "billingpostalcode", "country", "billingcountry")


def address_of(fields: Mapping[str, Any]) -> str | None:
    """An address line from whichever address-like fields a source has, in a fixed order."""
    if not fields:
        return None
    if not any(isinstance(v, Mapping) for v in fields.values()):
        # Flat fields (most sources): which keys are address parts is decided once per key set.
        found = (fields[k] for k in _address_keys(tuple(fields)))
        parts = [str(v) for v in found if isinstance(v, (str, int)) and str(v).strip()]
        return " ".join(parts) or None
    lowered = {str(k).lower(): v for k, v in _flat(fields)}
    parts = [str(lowered[k]) for k in _ADDRESS_FIELDS
             if isinstance(lowered.get(k), (str, int)) and str(lowered[k]).strip()]
    return " ".join(parts) or None


@lru_cache(maxsize=1024)
def _address_keys(keys: tuple[Any, ...]) -> tuple[Any, ...]:
    """The address-like keys among ``keys``, in :data:`_ADDRESS_FIELDS` order (for a repeated
    lower-cased name, the last key wins, as in the general path)."""
    lowered = {str(k).lower(): k for k in keys}
    return tuple(lowered[name] for name in _ADDRESS_FIELDS if name in lowered)


@lru_cache(maxsize=8192)
def company_key(name: str | None) -> str | None:
    """A company name as compared: legal form, case, punctuation and "The" removed."""
    return (nz.normalize_company_name(name) or None) if name else None


def _initial(name: str | None) -> str | None:
    person = _person(name)
    return person[0] if person else None


@lru_cache(maxsize=65536)
def _person(name: str | None) -> str | None:
    return (nz.normalize_person_name(name) or None) if name else None


@lru_cache(maxsize=8192)
def _variants(first: str | None) -> frozenset[str]:
    """A first name and its nicknames (Bob ↔ Robert), normalised."""
    return frozenset(nz.first_name_variants(first)) | {first} if first else frozenset()


#: Street words folded to one form ("Blvd." / "Boulevard"), as the postal services abbreviate.
_STREET_FORMS = {
    "street": "st", "str": "st", "avenue": "ave", "av": "ave", "boulevard": "blvd",
    "road": "rd", "drive": "dr", "lane": "ln", "place": "pl", "square": "sq", "court": "ct",
    "highway": "hwy", "parkway": "pkwy", "terrace": "ter", "circle": "cir", "suite": "ste",
    "floor": "fl", "building": "bldg", "north": "n", "south": "s", "east": "e", "west": "w",
    "apartment": "apt", "first": "1st", "second": "2nd", "third": "3rd", "fourth": "4th",
    "fifth": "5th", "sixth": "6th", "seventh": "7th", "eighth": "8th", "ninth": "9th",
    "tenth": "10th",
}


@lru_cache(maxsize=65536)
def _address(value: str | None) -> str | None:
    if not value:
        return None
    text = re.sub(r"[^\w\s]", " ", value.lower())
    return " ".join(_STREET_FORMS.get(t, t) for t in text.split()) or None


def _digits(value: str | None) -> str | None:
    if not value:
        return None
    digits = re.sub(r"\D", "", str(value))
    return digits or None
