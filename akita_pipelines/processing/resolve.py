"""Tiered entity resolution: one customer's incoming records → existing or new entities.

The tiers, strongest first (a record is compared by a weaker tier only when the stronger ones
found nothing for it):

1. **ids** — the record's own source id, cross-system ids (a Salesforce Account Id kept in a
   Stripe customer's metadata) and the customer's own external ids. A record already linked to an
   entity keeps it (``source_id``).
2. **key** — the normalised email of a contact, the registered non-free-mail domain of an
   account; but only between records whose names do not clearly differ. A subsidiary sharing its
   parent's domain, or two people sharing a mailbox, end up in the review band instead.
3. **fuzzy** — a weighted comparison of name, domain, phone, address (and birth date for people)
   within blocks; a shared switchboard phone or address never merges without name evidence.
4. **review** — a candidate between the review and the accept threshold is recorded, not merged.

Everything here is a pure function: the caller gathers the existing entities that share a key
with the batch into an :class:`Existing` index and applies the returned :class:`Plan`. Decisions
are pairwise and applied best-first with content tie-breaks, so the partition of records into
entities does not depend on arrival order.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache, lru_cache
from typing import Any, Literal

from akita_pipelines.processing.keys import new_entity, record_of, record_ref, strong

Kind = Literal["accounts", "contacts"]
#: An entity is either an existing id or the key of an entity the plan creates.
EntityRef = int | str

#: A record joined a block larger than this is compared with no one in it: the key is too
#: common to be evidence (a "smith" block) and the cost grows with its square.
MAX_BLOCK = 100


@dataclass(frozen=True)
class Record:
    """One incoming record, already normalised (see :mod:`akita_pipelines.processing.features`)."""

    rid: int
    ids: tuple[str, ...] = ()  # tier-1 identifier keys ("id:salesforce:001…", "ext:42")
    key: str | None = None  # tier-2 key: normalised email (contacts) or registered domain
    name: str | None = None  # normalised company name, or the person's normalised full name
    first: str | None = None
    last: str | None = None
    first_variants: frozenset[str] = frozenset()
    domain: str | None = None  # accounts: registered domain; contacts: work-email domain
    qualifier: str | None = None  # accounts: the name's bracketed qualifier ("hamburg")
    phone: str | None = None  # E.164
    address: str | None = None
    birth_date: str | None = None
    middle: str | None = None  # contacts: the middle name's initial
    linked: int | None = None  # the entity this record is linked to already
    account: EntityRef | None = None  # contacts: the account their source names
    company: str | None = None  # contacts: normalised company name, or "#<account id>"
    source: str = ""
    updated_at: datetime | None = None
    values: Mapping[str, Any] = field(default_factory=dict)  # golden-record candidate values

    def sort_key(self) -> tuple[str, str, str, int]:
        """Content first, so best-first decisions do not depend on arrival order."""
        return (self.key or "", self.name or "", ",".join(self.ids), self.rid)


@dataclass(frozen=True)
class Profile:
    """An existing entity as the matcher sees it (its golden record, normalised)."""

    entity_id: int
    key: str | None = None
    name: str | None = None
    first: str | None = None
    last: str | None = None
    first_variants: frozenset[str] = frozenset()
    domain: str | None = None
    qualifier: str | None = None
    phone: str | None = None
    address: str | None = None
    birth_date: str | None = None
    middle: str | None = None
    company: str | None = None
    source_rank: int = 1_000
    updated_at: datetime | None = None
    values: Mapping[str, Any] = field(default_factory=dict)  # the golden values as stored


@dataclass
class Existing:
    """The customer's entities that share an id, key or block key with the batch."""

    profiles: dict[int, Profile] = field(default_factory=dict)
    by_id: dict[str, int] = field(default_factory=dict)
    by_key: dict[str, list[int]] = field(default_factory=dict)
    by_block: dict[str, list[int]] = field(default_factory=dict)
    # Steward decisions that concern the batch (must-link / cannot-link). Every tier obeys
    # them, whatever the order records arrive in.
    #: record → existing entities it must join (a decision ties it to a record they hold)
    pinned: dict[int, set[int]] = field(default_factory=dict)
    #: record → existing entities it must never join
    apart: dict[int, set[int]] = field(default_factory=dict)
    #: pairs of records of the batch that must share an entity / must not
    together: list[tuple[int, int]] = field(default_factory=list)
    kept_apart: list[tuple[int, int]] = field(default_factory=list)
    #: existing entities that must never merge (a batch record must not bridge them)
    entities_apart: list[tuple[int, int]] = field(default_factory=list)

    def constrained(self) -> set[int]:
        """The records of the batch a steward decision concerns."""
        if not (self.pinned or self.apart or self.together or self.kept_apart):
            return set()
        return {*self.pinned, *self.apart, *(r for pair in self.together for r in pair),
                *(r for pair in self.kept_apart for r in pair)}


@dataclass(frozen=True)
class Link:
    interaction_id: int
    entity: EntityRef
    rule: str
    score: float = 1.0
    evidence: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NewEntity:
    key: str
    values: Mapping[str, Any]
    account: EntityRef | None = None  # contacts: the account they belong to


@dataclass(frozen=True)
class Review:
    """A candidate pair in the review band: recorded, not merged."""

    interaction_id: int
    candidate: EntityRef
    rule: str
    score: float
    evidence: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Merge:
    """Existing entities bridged by a record: ``absorbed`` move into ``survivor``."""

    survivor: int
    absorbed: tuple[int, ...]
    evidence: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    links: list[Link] = field(default_factory=list)
    new_entities: list[NewEntity] = field(default_factory=list)
    reviews: list[Review] = field(default_factory=list)
    merges: list[Merge] = field(default_factory=list)
    #: existing entity → golden-record values an incoming record outranks it with
    updates: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: existing contact → the account it should now point to (when it has none)
    contact_accounts: dict[int, EntityRef] = field(default_factory=dict)
    #: (entity, key) pairs to index for later batches
    new_keys: set[tuple[EntityRef, str]] = field(default_factory=set)

    def count(self, rule: str) -> int:
        return sum(1 for link in self.links if link.rule == rule)

    def combine(self, other: Plan) -> Plan:
        """Both plans in one (made over disjoint records and entities)."""
        return Plan(links=[*self.links, *other.links],
                    new_entities=[*self.new_entities, *other.new_entities],
                    reviews=[*self.reviews, *other.reviews],
                    merges=[*self.merges, *other.merges],
                    updates={**self.updates, **other.updates},
                    contact_accounts={**self.contact_accounts, **other.contact_accounts},
                    new_keys=self.new_keys | other.new_keys)


@dataclass(frozen=True)
class Thresholds:
    """Fuzzy score thresholds (log-odds-like weight sums): accept ≥ ``accept``, review band
    between ``review`` and ``accept``."""

    accept: float
    review: float


DEFAULT_THRESHOLDS: Mapping[str, Thresholds] = {
    "accounts": Thresholds(accept=5.0, review=2.0),
    "contacts": Thresholds(accept=7.0, review=3.0),
}


# ---------------------------------------------------------------- comparisons


@cache
def _jw() -> Callable[..., float]:
    from rapidfuzz.distance import JaroWinkler

    return JaroWinkler.normalized_similarity


def name_similarity(a: str | None, b: str | None) -> float | None:
    """Similarity of two normalised company names in [0, 1] (None when one is missing).

    The better of the plain and token-sorted ratios, so word order and typos cost little; and
    a floor for names that are *variants* of each other, word by word (:func:`_variant`):
    0.93 when every word pairs up ("sams deli" / "sams delicatessen"), 0.89 when one name is
    the other with words added ("fenix" / "fenix at the argyle") or its initials.
    """
    if not a or not b:
        return None
    if a == b:
        return 1.0
    from rapidfuzz.fuzz import ratio, token_sort_ratio

    base = max(ratio(a, b), token_sort_ratio(a, b)) / 100.0
    if base >= 0.93:
        return base
    return max(base, _variant(a, b))


@lru_cache(maxsize=65536)
def _variant(a: str, b: str) -> float:
    """0.93 / 0.89 / 0.0: see :func:`name_similarity`."""
    ta, tb = a.split(), b.split()
    short, long = (ta, tb) if len(ta) <= len(tb) else (tb, ta)
    if len(short) == 1 and len(long) >= 2 and len(short[0]) == len(long) >= 3 and \
            short[0] == "".join(t[0] for t in long):
        return 0.89  # initials: "ibm" / "international business machines"
    free = list(long)
    loose = 0
    for token in short:
        if token in free:
            free.remove(token)
            continue
        # One word may be a short form (a prefix of 3+ letters) or carry a typo; two such
        # words are two differences ("sams deli" is not "samsung delicatessen").
        match = next((t for t in free if _loose_token(token, t)), None)
        if match is None or loose:
            return 0.0
        loose += 1
        free.remove(match)
    if not free:
        return 0.93
    # Words added ("fenix" / "fenix at the argyle"): the shorter name must be more than
    # one short word, or every name would contain "bar".
    return 0.89 if len(short) >= 2 or len(short[0]) >= 4 else 0.0


def _loose_token(x: str, y: str) -> bool:
    shorter, longer = (x, y) if len(x) <= len(y) else (y, x)
    if len(shorter) >= 3 and longer.startswith(shorter) and not shorter.isdigit():
        return True
    return len(shorter) >= 5 and _jw()(x, y) >= 0.92


def _qualifiers_differ(a: Record | Profile, b: Record | Profile) -> bool:
    """Both names carry a bracketed qualifier and the two share no word: "Nordlicht
    (Hamburg)" and "Nordlicht (Berlin)" are two outlets; "Nordlicht" is either."""
    return bool(a.qualifier and b.qualifier
                and not set(a.qualifier.split()) & set(b.qualifier.split()))


def names_conflict(kind: Kind, a: Record | Profile, b: Record | Profile) -> bool:
    """Whether two records sharing a tier-2 key clearly name different things."""
    if kind == "accounts":
        sim = name_similarity(a.name, b.name)
        return sim is not None and (sim < 0.8 or _qualifiers_differ(a, b))
    if a.last and b.last and a.last != b.last and _jw()(a.last, b.last) < 0.85:
        return True
    return bool(a.first and b.first and not _first_compatible(a, b))


def _first_compatible(a: Record | Profile, b: Record | Profile) -> bool:
    assert a.first
    assert b.first
    if _same_first(a, b):
        return True
    if len(a.first) == 1 or len(b.first) == 1:  # an initial
        return a.first[0] == b.first[0]
    if len(a.first_variants) > 1 and len(b.first_variants) > 1:
        # Two names the nickname list knows, and not as each other's: Daniel and Danielle,
        # however alike they are spelt, are two people; a typo makes a name it does not know.
        return False
    return _jw()(a.first, b.first) >= 0.88


def _known_apart(a: Record | Profile, b: Record | Profile) -> bool:
    """Two first names the nickname list knows, neither the other's nickname (Mackenzie and
    Camila): twins share everything else."""
    return len(a.first_variants) > 1 and len(b.first_variants) > 1 and not _same_first(a, b)


def hard_conflict(kind: Kind, a: Record | Profile, b: Record | Profile) -> bool:
    """Evidence no score outweighs: two people a fuzzy chain must not join even through a third
    record that looks like both (a parent and child at one address, twins, J. and L. Jones)."""
    if kind != "contacts":
        return False
    if a.middle and b.middle and a.middle != b.middle:
        return True
    # A generation apart under two first names (under one name: a keying error).
    return bool(a.birth_date and b.birth_date and a.first != b.first
                and _birth_dates(a.birth_date, b.birth_date)[0] <= -4.5)


def _crossed(a: Record | Profile, b: Record | Profile) -> bool:
    """One record's first name is the other's last name (keyed into the other field)."""
    jw = _jw()
    return bool(a.first and a.last and b.first and b.last
                and (jw(a.first, b.last) >= 0.94 or jw(a.last, b.first) >= 0.94))


def _same_first(a: Record | Profile, b: Record | Profile) -> bool:
    """The same first name or one another's nickname (Bob / Robert). Not two names that only
    share a nickname: Madison and Matthew are both "Mattie"."""
    return a.first == b.first or (a.first is not None and a.first in b.first_variants) or \
        (b.first is not None and b.first in a.first_variants)


def _dob_parts(d: str) -> tuple[int, str, str] | None:
    """(year, the other two 2-digit parts) of an 8-digit date, year first or last."""
    if len(d) != 8 or not d.isdigit():
        return None
    if d[:2] in ("19", "20"):
        return int(d[:4]), d[4:6], d[6:8]
    return int(d[4:]), d[:2], d[2:4]


def _birth_dates(a: str, b: str) -> tuple[float, bool | str]:
    """Weight and verdict (True, "near", False) of two birth dates' digits."""
    if a == b:
        return 5.0, True
    from rapidfuzz.distance import OSA

    slip = len(a) == len(b) and OSA.distance(a, b) <= 1
    pa, pb = _dob_parts(a), _dob_parts(b)
    if pa and pb and pa[0] == pb[0] and {pa[1], pa[2]} == {pb[1], pb[2]}:
        return 2.5, "near"  # day and month entered the other way round
    if slip:
        return 2.0, "near"  # one digit mistyped, or two adjacent ones swapped
    if pa and pb and abs(pa[0] - pb[0]) > 1:
        return -4.5, False  # a generation apart: parent and child at one address
    return -3.0, False


@dataclass(frozen=True)
class Score:
    total: float
    evidence: Mapping[str, Any]
    name_evidence: bool

    @property
    def probability(self) -> float:
        """The weight sum squashed into (0, 1) for storage and display."""
        return round(1.0 / (1.0 + math.exp(-(self.total - 4.0))), 4)


def score_pair(kind: Kind, a: Record | Profile, b: Record | Profile) -> Score:
    """Fellegi-Sunter-style weight sum over the fields both records have."""
    ev: dict[str, Any] = {}
    total = 0.0
    if kind == "accounts":
        sim = name_similarity(a.name, b.name)
        name_ok = sim is not None and sim >= 0.88
        if sim is not None:
            ev["name"] = round(sim, 3)
            total += 6.0 if sim == 1.0 else 4.0 if sim >= 0.92 else 2.5 if sim >= 0.88 \
                else -1.0 if sim >= 0.7 else -6.0
        if _qualifiers_differ(a, b):
            ev["qualifier"] = False
            total -= 3.0
        if a.domain and b.domain:
            same = a.domain == b.domain
            ev["domain"] = same
            total += 4.0 if same else -4.0
        if a.phone and b.phone:
            same = a.phone == b.phone
            ev["phone"] = same
            # Two listed numbers that differ: as often two branches of one name as two lines
            # of one company, so a name alone no longer carries the pair.
            total += 1.5 if same else -1.5
        total += _address(a, b, ev, 2.5)
        return Score(total, ev, name_ok)
    jw = _jw()
    last_ok = first_ok = apart = False
    if a.first and a.last and b.first and b.last and a.last != b.last and \
            jw(a.first, b.last) >= 0.9 and jw(a.last, b.first) >= 0.9:
        ev["swapped_names"] = True  # first and last name entered the other way round
        total += 6.0
        last_ok = first_ok = True
    elif a.last and b.last:
        s = 1.0 if a.last == b.last else jw(a.last, b.last)
        ev["last"] = round(s, 3)
        last_ok = s >= 0.9
        total += 4.0 if s == 1.0 else 2.5 if s >= 0.94 else 1.0 if s >= 0.9 else -3.0
    if a.first and b.first and "swapped_names" not in ev:
        first_ok = _first_compatible(a, b)
        exact = _same_first(a, b)
        ev["first"] = "same" if exact else "similar" if first_ok else "different"
        apart = not first_ok and not _crossed(a, b)
        total += 3.0 if exact else 1.5 if first_ok else \
            -4.5 if apart and _known_apart(a, b) else -3.0
    if a.middle and b.middle:
        same = a.middle == b.middle
        ev["middle"] = same
        total += 1.0 if same else -3.0
    if not last_ok and not first_ok and a.first and a.last and b.first and b.last and \
            (jw(a.first, b.last) >= 0.94 or jw(a.last, b.first) >= 0.94):
        ev["crossed_name"] = True  # one name keyed into the other field
        total += 5.0
        first_ok = True
    if a.key and b.key:
        same = a.key == b.key
        ev["email"] = same
        # Two different work emails: most likely two people; a free-mail address says little.
        total += 8.0 if same else -4.0 if a.domain and b.domain else -1.0
    if a.phone and b.phone:
        same = a.phone == b.phone
        ev["phone"] = same
        total += 5.0 if same else -2.5  # a person's direct line differs: likely two people
    if a.birth_date and b.birth_date:
        weight, verdict = _birth_dates(a.birth_date, b.birth_date)
        total += weight
        ev["birth_date"] = verdict
    if a.domain and b.domain:
        same = a.domain == b.domain
        ev["company_domain"] = same
        total += 1.5 if same else -3.0
    if a.company and b.company and (a.company[0] == "#") == (b.company[0] == "#"):
        # "#<id>" is a matched Account: compared exactly; names are compared fuzzily.
        sim = float(a.company == b.company) if a.company[0] == "#" else \
            name_similarity(a.company, b.company) or 0.0
        ev["company"] = sim >= 0.9
        total += 2.0 if sim >= 0.9 else -2.0 if sim < 0.7 else 0.0
    total += _address(a, b, ev, 3.0)
    total += _external_ids(a, b, ev)
    # Common names repeat within a customer: a person needs one agreement beyond the name.
    # (Spelled out, not a loop over the names: this runs for every candidate pair.)
    get = ev.get
    agreements = ((get("email") is True) + (get("phone") is True)
                  + (get("birth_date") is True) + (get("company_domain") is True)
                  + (get("company") is True) + (get("external_id") is True)
                  + (get("address", 0.0) >= 0.9) + (get("birth_date") == "near"))
    # A full name with its middle initial: as much as a shared address or a birth date.
    agreements += ev.get("middle") is True and ev.get("last") == 1.0 and ev.get("first") == "same"
    # Or one of the two names (a nickname, a data-entry slip) with two other agreements, or
    # three agreements beyond the name (birth date, address and an id a keystroke apart).
    # Two different first names (twins share the rest) need more than a surname's worth.
    name_evidence = (last_ok and first_ok and agreements >= 1) or \
        ((last_ok or first_ok) and not apart and agreements >= 2) or agreements >= 3
    return Score(total, ev, name_evidence)


def _external_ids(a: Record | Profile, b: Record | Profile, ev: dict[str, Any]) -> float:
    """Customer external ids that differ by one keying slip (tier 1 took the exact ones)."""
    ext_a = _ext_ids(a)
    if not ext_a:
        return 0.0
    ext_b = _ext_ids(b)
    if not ext_b:
        return 0.0
    from rapidfuzz.distance import DamerauLevenshtein

    near = min(DamerauLevenshtein.distance(x, y) for x in ext_a for y in ext_b) <= 1
    ev["external_id"] = near
    return 3.0 if near else -1.0


def _ext_ids(r: Record | Profile) -> tuple[str, ...]:
    """A record's customer external ids (memoised beside its fields, as block keys are)."""
    memo = r.__dict__.get("_ext")
    if memo is None:
        memo = tuple(i for i in getattr(r, "ids", ()) if i.startswith("ext:"))
        r.__dict__["_ext"] = memo
    return memo


def _address(a: Record | Profile, b: Record | Profile, ev: dict[str, Any],
             weight: float) -> float:
    if not a.address or not b.address:
        return 0.0
    from rapidfuzz.fuzz import ratio, token_set_ratio

    # Token sets forgive word order; the compact ratio forgives a split word ("h ouse").
    sim = max(token_set_ratio(a.address, b.address),
              ratio(a.address.replace(" ", ""), b.address.replace(" ", ""))) / 100.0
    if sim < 0.9:
        # The same house number on the same street, whatever follows: one source names the
        # city, the other the neighbourhood ("… hillhurst ave los angeles" / "… los feliz").
        street = _street(a.address)
        if street is not None and street == _street(b.address):
            sim = 0.9
    ev["address"] = round(sim, 3)
    return weight if sim >= 0.9 else weight / 3 if sim >= 0.75 else -1.0


_DIRECTIONS = frozenset({"n", "s", "e", "w", "ne", "nw", "se", "sw"})


@lru_cache(maxsize=65536)
def _street(address: str) -> str | None:
    """House number and street name ("1972 n hillhurst ave la" → "1972 hillhurst"), or None
    when the address does not start with a number."""
    tokens = address.split()
    if len(tokens) < 2 or not tokens[0][:1].isdigit():
        return None
    name = next((t for t in tokens[1:4] if t not in _DIRECTIONS and not t.isdigit()), None)
    return f"{tokens[0]} {name}" if name and len(name) >= 3 else None


# ---------------------------------------------------------------- blocking


def block_keys(kind: Kind, r: Record | Profile) -> frozenset[str]:
    """Keys under which a record is compared with others in tier 3. Several passes, so one
    typo does not hide a pair: transposition-proof anagram keys, phone, domain label.

    Computed once per record: a batch asks for them while gathering candidates, blocking and
    indexing new entities (the memo lives in the instance's ``__dict__``, beside the frozen
    fields, and takes no part in equality)."""
    memo = r.__dict__.get("_blocks")
    if memo is not None and memo[0] == kind:
        return memo[1]  # type: ignore[no-any-return]
    keys = frozenset(_block_keys(kind, r))
    r.__dict__["_blocks"] = (kind, keys)
    return keys


@lru_cache(maxsize=65536)
def _anagram(name: str) -> str:
    return "".join(sorted(name))


@lru_cache(maxsize=16384)
def _initial(first: str | None, variants: frozenset[str]) -> str:
    """The initial a first name blocks under: its nickname family's first in sort order."""
    return min(variants or {first or ""})[:1]


def _block_keys(kind: Kind, r: Record | Profile) -> set[str]:
    keys: set[str] = set()
    if kind == "accounts":
        if r.name:
            compact = r.name.replace(" ", "")
            first = r.name.split()[0]
            if len(first) >= 3:
                keys.add("b:a:" + "".join(sorted(first)))
            if len(compact) >= 4:
                keys.add("b:p:" + compact[:4])
        if r.phone:
            keys.add("b:ph:" + r.phone)
        if r.domain:
            keys.add("b:dl:" + r.domain.split(".")[0])
        if r.address:
            street = _street(r.address)
            if street:
                keys.add("b:as:" + street)  # one building: listings without phone or domain
        return keys
    if r.last:
        initial = _initial(r.first, r.first_variants)
        # A last name's letters in any order (a transposition typo) with the first initial;
        # with a birth date, also with its year. The letters alone made blocks that grew with
        # every contact of the same surname (12 comparisons a record at 100k contacts of 8,000
        # surnames; common names passed MAX_BLOCK and were compared with no one). There is no
        # surname-and-initial block: this one holds everyone that one would (the same letters,
        # the same initial), and it was a second index entry a contact, read and written on
        # every batch, for no pair more (migration 0010). Every record has this one, with a
        # birth date or without, so the two kinds still meet.
        keys.add("b:lai:" + _anagram(r.last) + "|" + initial)
        if r.birth_date:
            keys.add("b:la:" + _anagram(r.last) + "|" + r.birth_date[:4])
    if r.first and r.birth_date:
        keys.add("b:fb:" + r.first + "|" + r.birth_date)
    if r.birth_date:
        keys.add("b:bd:" + r.birth_date)
    if r.address:
        keys.add("b:ad:" + " ".join(r.address.split()[:2]))
    for ext in r.ids if isinstance(r, Record) else ():
        if ext.startswith("ext:"):
            keys.add("b:x:" + ext[:8])
    if r.phone:
        keys.add("b:ph:" + r.phone)
    if r.key:
        keys.add("b:el:" + r.key.split("@")[0])
    if r.last and r.company:
        keys.add("b:lc:" + r.last + "|" + r.company)
    return keys


# ---------------------------------------------------------------- union-find


class _Clusters:
    """Union-find over records ("r", rid) and existing entities ("e", id).

    Each cluster carries the existing entities it holds and its *anchors*: the strong keys (a
    work email, a company domain) its records and entities have. A fuzzy union never joins two
    existing entities, nor two clusters whose anchors differ: that would let a weak tier bridge
    what the strong tiers kept apart.
    """

    def __init__(self, entity_anchor: Callable[[int], Iterable[str]] = lambda _e: ()) -> None:
        self.parent: dict[tuple[str, int], tuple[str, int]] = {}
        self.entities: dict[tuple[str, int], set[int]] = {}
        self.anchors: dict[tuple[str, int], set[str]] = {}
        self.entity_anchor = entity_anchor
        #: root → nodes its cluster must never join (steward cannot-links)
        self.apart: dict[tuple[str, int], set[tuple[str, int]]] = {}
        #: two nodes a fuzzy union must not bring into one cluster (see :func:`hard_conflict`)
        self.conflict: Callable[[tuple[str, int], tuple[str, int]], bool] | None = None
        #: root → its nodes, for clusters of more than one
        self.members: dict[tuple[str, int], list[tuple[str, int]]] = {}

    def keep_apart(self, a: tuple[str, int], b: tuple[str, int]) -> None:
        """A cannot-link: no later union (of any tier) puts ``a`` and ``b`` in one cluster."""
        ra, rb = self.find(a), self.find(b)
        if ra != rb:  # a must-link already holds them: the later decision revoked this one
            self.apart.setdefault(ra, set()).add(b)
            self.apart.setdefault(rb, set()).add(a)

    def _forbidden(self, ra: tuple[str, int], rb: tuple[str, int]) -> bool:
        return any(self.find(n) == rb for n in self.apart.get(ra, ())) or \
            any(self.find(n) == ra for n in self.apart.get(rb, ()))

    def add(self, node: tuple[str, int], anchors: Iterable[str] = ()) -> None:
        # A record's sets are created when it first has something to hold: most records of
        # a batch stay alone, and the empty sets were most of the cost.
        if node not in self.parent:
            self.parent[node] = node
            if node[0] == "e":
                self.entities[node] = {node[1]}
                anchors = anchors or self.entity_anchor(node[1])
        if anchors:
            root = self.find(node)
            if root in self.anchors:
                self.anchors[root].update(anchors)
            else:
                self.anchors[root] = set(anchors)

    def held(self, root: tuple[str, int]) -> set[int]:
        """The existing entities in the cluster of ``root`` (a root from :meth:`find`)."""
        return self.entities.get(root, _NONE)

    def find(self, node: tuple[str, int]) -> tuple[str, int]:
        parent = self.parent
        if node not in parent:
            self.add(node)
        root = node
        while parent[root] != root:
            root = parent[root]
        while parent[node] != root:
            parent[node], node = root, parent[node]
        return root

    def union(self, a: tuple[str, int], b: tuple[str, int], *, bridge: bool = True) -> bool:
        """Join two clusters; with ``bridge=False`` refuse when their anchors differ."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        if self.apart and self._forbidden(ra, rb):
            return False
        ents_a, ents_b = self.entities.get(ra), self.entities.get(rb)
        anch_a, anch_b = self.anchors.get(ra), self.anchors.get(rb)
        if not bridge and ((ents_a and ents_b) or (anch_a and anch_b and _clash(anch_a, anch_b))):
            return False
        if not bridge and self.conflict is not None:
            conflict = self.conflict
            if any(conflict(x, y) for x in self.members.get(ra, (ra,))
                   for y in self.members.get(rb, (rb,))):
                return False
        if rb < ra:
            ra, rb = rb, ra
            ents_a, ents_b, anch_a, anch_b = ents_b, ents_a, anch_b, anch_a
        self.parent[rb] = ra
        if self.conflict is not None:
            self.members[ra] = [*self.members.pop(ra, (ra,)), *self.members.pop(rb, (rb,))]
        if ents_b:
            self.entities[ra] = (ents_a or set()) | self.entities.pop(rb)
        if anch_b:
            self.anchors[ra] = (anch_a or set()) | self.anchors.pop(rb)
        if rb in self.apart:
            self.apart.setdefault(ra, set()).update(self.apart.pop(rb))
        return True


_NONE: set[int] = set()  # shared and never mutated: held() of a cluster without entities


def _anchors(kind: Kind, r: Record | Profile) -> tuple[str, ...]:
    """What a fuzzy union may not bridge: a strong key (a work email, a company domain) and
    the words of a name's qualifier ("Spago (Las Vegas)" never joins "Spago (Los Angeles)",
    not even through a plain "Spago")."""
    strong = r.key if r.key and (kind == "accounts" or r.domain) else None
    if not r.qualifier:
        return (f"k:{strong}",) if strong else ()
    words = tuple(f"q:{w}" for w in r.qualifier.split())
    return (f"k:{strong}", *words) if strong else words


def _clash(a: set[str], b: set[str]) -> bool:
    """Anchors of one kind ("k:" strong keys, "q:" name-qualifier words) that the two sets
    both have and share none of."""
    kinds = {x[:2] for x in a} & {x[:2] for x in b}
    return any(not {x for x in a if x.startswith(k)} & {x for x in b if x.startswith(k)}
               for k in kinds)


# ---------------------------------------------------------------- the planner


@dataclass
class _Why:
    rule: str = "new"
    score: float = 1.0
    evidence: dict[str, Any] = field(default_factory=dict)
    strength: int = 0  # 3 ids, 2 key, 1 fuzzy


_NEW = _Why()  # shared, never mutated: note() replaces entries


def resolve(kind: Kind, records: Iterable[Record], existing: Existing | None = None, *,
            thresholds: Thresholds | None = None,
            source_rank: Callable[[str], int] | None = None) -> Plan:
    """Plan the entity of every record: link to an existing entity, merge, or create.

    Args:
        kind: "accounts" or "contacts".
        records: the batch, normalised; one customer only.
        existing: the customer's entities that share an id, key or block key with the batch.
        thresholds: fuzzy accept / review thresholds (tier 3).
        source_rank: survivorship: lower ranks win the golden record (default: all equal,
            most recent wins).
    """
    existing = existing or Existing()
    th = thresholds or DEFAULT_THRESHOLDS[kind]
    rank = source_rank or (lambda _source: 1_000)
    plan = Plan()
    recs = _direct_links(kind, sorted(records, key=Record.sort_key), existing, rank, plan)
    def entity_anchor(entity_id: int) -> tuple[str, ...]:
        p = existing.profiles.get(entity_id)
        return _anchors(kind, p) if p is not None else ()

    uf = _Clusters(entity_anchor)
    if kind == "contacts":
        by_rid = {r.rid: r for r in recs}

        def item(node: tuple[str, int]) -> Record | Profile | None:
            return by_rid.get(node[1]) if node[0] == "r" else existing.profiles.get(node[1])

        def conflict(x: tuple[str, int], y: tuple[str, int]) -> bool:
            a, b = item(x), item(y)
            return a is not None and b is not None and hard_conflict(kind, a, b)

        uf.conflict = conflict
    why: dict[int, _Why] = {}  # absent: "new" until a tier notes a rule

    def note(rid: int, rule: str, strength: int, score: float = 1.0,
             evidence: Mapping[str, Any] | None = None) -> None:
        current = why.get(rid, _NEW)
        if strength > current.strength or (strength == current.strength
                                           and current.rule == "new"):
            why[rid] = _Why(rule, score, dict(evidence or {}), strength)

    for r in recs:
        uf.add(("r", r.rid), _anchors(kind, r))
    _steward(existing, {r.rid for r in recs}, uf, note)

    # Tier 1: stickiness, ids shared with existing entities or with other records.
    holders: dict[str, list[int]] = defaultdict(list)
    for r in recs:
        if r.linked is not None and r.linked in existing.profiles:
            uf.union(("r", r.rid), ("e", r.linked))
            note(r.rid, "source_id", 3)
        for key in r.ids:
            holders[key].append(r.rid)
            hit = existing.by_id.get(key)
            if hit is not None and hit in existing.profiles:
                uf.union(("r", r.rid), ("e", hit))
                if hit != r.linked:
                    note(r.rid, "id", 3, evidence={"id": key})
    for key, rids in sorted(item for item in holders.items() if len(item[1]) > 1):
        for rid in rids[1:]:
            uf.union(("r", rids[0]), ("r", rid))
            note(rid, "id", 3, evidence={"id": key})
            note(rids[0], "id", 3, evidence={"id": key})

    # Tier 2: shared email / domain, unless the names clearly differ.
    by_key: dict[str, list[Record]] = defaultdict(list)
    for r in recs:
        if r.key:
            by_key[r.key].append(r)
    rule2 = "email" if kind == "contacts" else "domain"
    for key, group in sorted(by_key.items()):
        if len(group) == 1 and key not in existing.by_key and _has_name(kind, group[0]):
            continue  # a named record alone with its key: nothing to join or review
        _tier2(kind, key, group, [existing.profiles[e] for e in existing.by_key.get(key, ())
                                  if e in existing.profiles], uf, note, plan, rule2)

    # Tier 3: records whose cluster holds no existing entity and that no tier-2 key joined.
    def unresolved(r: Record) -> bool:
        return not uf.held(uf.find(("r", r.rid))) and why.get(r.rid, _NEW).strength < 2

    pending = [r for r in recs if unresolved(r)]
    if pending:
        _tier3(kind, pending, recs, existing, uf, note, plan, th, unresolved)

    # Clusters → links, merges, new entities.
    clusters: dict[tuple[str, int], list[Record]] = defaultdict(list)
    for r in recs:
        clusters[uf.find(("r", r.rid))].append(r)
    for root, members in sorted(clusters.items(), key=lambda kv: kv[1][0].sort_key()):
        held = sorted(uf.held(root))
        entity: EntityRef
        founder: Record | None = None
        if held:
            entity = held[0]
            if len(held) > 1:
                bridges = sorted(m.rid for m in members if why.get(m.rid, _NEW).strength >= 2)
                plan.merges.append(Merge(entity, tuple(held[1:]), {"bridged_by": bridges}))
            update = _survive(members, rank, existing.profiles[entity])
            if update:
                plan.updates[entity] = update
        else:
            # The founder: the record with the most identifying content (a key, ids).
            founder = members[0] if len(members) == 1 else \
                min(members, key=lambda m: (m.key is None, not m.ids, m.sort_key()))
            entity = new_entity(founder.rid)
            plan.new_entities.append(NewEntity(entity, _survive(members, rank, None),
                                               _account_of(members, rank)))
        for m in members:
            w = why.get(m.rid, _NEW)
            if not held and m is founder:
                plan.links.append(Link(m.rid, entity, "new", 1.0, w.evidence))
            else:
                plan.links.append(Link(m.rid, entity, w.rule, w.score, w.evidence))
            for k in (m.key, *m.ids):
                if k:
                    plan.new_keys.add((entity, strong(k) if k == m.key else k))
            if not held or w.strength != 2:  # a key match is indexed under its key already
                for k in block_keys(kind, m):
                    plan.new_keys.add((entity, k))
        if kind == "contacts" and held:
            account = _account_of(members, rank)
            if account is not None:
                plan.contact_accounts[held[0]] = account
    return plan


def _direct_links(kind: Kind, recs: list[Record], existing: Existing,
                  rank: Callable[[str], int], plan: Plan) -> list[Record]:
    """The common case without clustering: a record whose key (and ids) no other record of
    the batch shares, naming exactly one existing entity it agrees with. Returns the rest.

    Decided from the record and the existing entity alone, so order-independent like the rest.
    """
    if not existing.by_key:
        return recs
    constrained = existing.constrained()  # steward decisions: decided with the clusters
    if constrained:
        held, recs = recs, [r for r in recs if r.rid not in constrained]
    key_count: dict[str, int] = defaultdict(int)
    id_count: dict[str, int] = defaultdict(int)
    for r in recs:
        if r.key:
            key_count[r.key] += 1
        for k in r.ids:
            id_count[k] += 1
    rule = "email" if kind == "contacts" else "domain"
    rest: list[Record] = []
    for r in recs:
        entities = existing.by_key.get(r.key) if r.key else None
        profile = existing.profiles.get(entities[0]) if entities and len(entities) == 1 \
            else None
        if profile is None or key_count[r.key or ""] > 1 or \
                any(id_count[k] > 1 for k in r.ids) or \
                r.linked not in (None, profile.entity_id) or \
                any(existing.by_id.get(k, profile.entity_id) != profile.entity_id
                    for k in r.ids) or \
                (_has_name(kind, r) and _has_name(kind, profile)
                 and names_conflict(kind, r, profile)):
            rest.append(r)
            continue
        entity = profile.entity_id
        if r.linked == entity:
            plan.links.append(Link(r.rid, entity, "source_id"))
        else:
            plan.links.append(Link(r.rid, entity, rule, 1.0, {rule: r.key}))
        for k in r.ids:
            if k not in existing.by_id:
                plan.new_keys.add((entity, k))
        update = _survive([r], rank, profile)
        if update:
            plan.updates[entity] = update
        if kind == "contacts" and r.account is not None:
            plan.contact_accounts[entity] = r.account
    if constrained:
        rest = [r for r in held if r.rid in constrained] + rest
        rest.sort(key=Record.sort_key)
    return rest


def _steward(existing: Existing, batch: set[int], uf: _Clusters,
             note: Callable[..., None]) -> None:
    """Steward decisions first: must-links join before any tier runs, cannot-links refuse
    every later union (a must-link and a cannot-link on one pair: the must-link holds)."""
    for rid, entities in sorted(existing.pinned.items()):
        for e in sorted(entities):
            if rid in batch and e in existing.profiles and uf.union(("r", rid), ("e", e)):
                note(rid, "steward", 4, evidence={"decision": "must_link", "entity": e})
    for a, b in sorted(existing.together):
        if a in batch and b in batch and uf.union(("r", a), ("r", b)):
            note(a, "steward", 4, evidence={"decision": "must_link", "record": b})
            note(b, "steward", 4, evidence={"decision": "must_link", "record": a})
    for rid, entities in sorted(existing.apart.items()):
        for e in sorted(entities):
            if rid in batch:
                uf.keep_apart(("r", rid), ("e", e))
    for a, b in sorted(existing.kept_apart):
        if a in batch and b in batch:
            uf.keep_apart(("r", a), ("r", b))
    for a, b in sorted(existing.entities_apart):
        uf.keep_apart(("e", a), ("e", b))


def _tier2(kind: Kind, key: str, group: Sequence[Record], profiles: Sequence[Profile],
           uf: _Clusters, note: Callable[..., None], plan: Plan, rule: str) -> None:
    named = [r for r in group if _has_name(kind, r)]
    anonymous = [r for r in group if not _has_name(kind, r)]
    # Named records join each other and the existing entities their names agree with.
    apart: list[tuple[Record, Record]] = []
    for i, a in enumerate(named):
        for b in named[i + 1:]:
            if not names_conflict(kind, a, b):
                uf.union(("r", a.rid), ("r", b.rid))
                note(b.rid, rule, 2, evidence={rule: key})
                note(a.rid, rule, 2, evidence={rule: key})
            else:
                apart.append((a, b))
    for r in named:
        for p in profiles:
            if _has_name(kind, p) and names_conflict(kind, r, p):
                continue
            uf.union(("r", r.rid), ("e", p.entity_id))
            note(r.rid, rule, 2, evidence={rule: key})
    # Records without a name join the key's one cluster; when it has several, they go to review.
    roots = {uf.find(("r", r.rid)) for r in named}
    roots |= {uf.find(("e", p.entity_id)) for p in profiles}
    for r in anonymous:
        if len(roots) <= 1:
            for other in named:
                uf.union(("r", r.rid), ("r", other.rid))
            for p in profiles:
                uf.union(("r", r.rid), ("e", p.entity_id))
            for other in anonymous:
                uf.union(("r", r.rid), ("r", other.rid))
            note(r.rid, rule, 2, evidence={rule: key})
        else:
            for p in profiles:
                plan.reviews.append(Review(r.rid, p.entity_id, f"{rule}_ambiguous", 0.5,
                                           {rule: key}))
    # Records left apart from a record or an entity that shares their key: the review band.
    reviewed: set[tuple[tuple[str, int], tuple[str, int]]] = set()
    for a, b in apart:
        pair = (uf.find(("r", a.rid)), uf.find(("r", b.rid)))
        if pair[0] != pair[1] and pair not in reviewed:
            reviewed.add(pair)
            sim = name_similarity(a.name, b.name) if kind == "accounts" else None
            plan.reviews.append(Review(b.rid, record_ref(a.rid), f"{rule}_name_mismatch",
                                       round(sim, 3) if sim is not None else 0.5,
                                       {rule: key, "name": b.name, "candidate": a.name}))
    for r in named:
        root = uf.find(("r", r.rid))
        for p in profiles:
            if uf.find(("e", p.entity_id)) != root:
                sim = name_similarity(r.name, p.name) if kind == "accounts" else None
                plan.reviews.append(Review(r.rid, p.entity_id, f"{rule}_name_mismatch",
                                           round(sim, 3) if sim is not None else 0.5,
                                           {rule: key, "name": r.name, "candidate": p.name}))


def _has_name(kind: Kind, r: Record | Profile) -> bool:
    return bool(r.name) if kind == "accounts" else bool(r.last or r.first)


def _tier3(kind: Kind, pending: Sequence[Record], recs: Sequence[Record], existing: Existing,
           uf: _Clusters, note: Callable[..., None], plan: Plan, th: Thresholds,
           unresolved: Callable[[Record], bool]) -> None:
    pending_ids = {r.rid for r in pending}
    blocks: dict[str, list[Record]] = defaultdict(list)
    for r in recs:
        for k in block_keys(kind, r):
            blocks[k].append(r)
    pairs: dict[tuple[int, tuple[str, int]], tuple[Score, Record]] = {}
    windows: dict[str, tuple[list[Record], dict[int, int]]] = {}
    for r in pending:
        seen: set[tuple[str, int]] = set()
        for k in block_keys(kind, r):  # any order: every pair is ranked below
            ents = existing.by_block.get(k, ())
            if ents and len(ents) <= MAX_BLOCK:
                for e in ents:
                    if ("e", e) not in seen and e in existing.profiles:
                        seen.add(("e", e))
                        if r.key and existing.profiles[e].key == r.key:
                            continue  # tier 2 kept them apart on purpose
                        pairs[(r.rid, ("e", e))] = (score_pair(kind, r, existing.profiles[e]), r)
            others = blocks[k]  # r itself is one of them
            if len(others) > MAX_BLOCK:
                others = _window(k, others, r, windows)
            if len(others) > 1:
                for o in others:
                    node = ("r", o.rid)
                    if o.rid == r.rid or node in seen:
                        continue
                    if o.rid in pending_ids and o.rid < r.rid:
                        continue  # each pending pair once
                    seen.add(node)
                    if r.key and o.key == r.key:
                        continue
                    pairs[(r.rid, node)] = (score_pair(kind, r, o), r)
    ranked = sorted(pairs.items(), key=lambda kv: (-kv[1][0].total, kv[1][1].sort_key(),
                                                   kv[0][1]))
    reviewed: set[int] = set()
    for (rid, node), (score, r) in ranked:
        if score.total >= th.accept and score.name_evidence:
            if uf.union(("r", rid), node, bridge=False):
                note(rid, "fuzzy", 1, score.probability, score.evidence)
                if node[0] == "r":
                    note(node[1], "fuzzy", 1, score.probability, score.evidence)
        elif score.total >= th.review and rid not in reviewed and unresolved(r):
            reviewed.add(rid)
            target = node[1] if node[0] == "e" else record_ref(node[1])
            plan.reviews.append(Review(rid, target, "fuzzy_review", score.probability,
                                       score.evidence))


#: Neighbours on each side a record meets in a block too large to compare whole.
WINDOW = 8


def _window(key: str, block: list[Record], r: Record,
            windows: dict[str, tuple[list[Record], dict[int, int]]]) -> list[Record]:
    """A sorted neighbourhood of ``r`` in a batch block larger than :data:`MAX_BLOCK` (a
    prolific inventor's hundred mentions, a surname a third of a file shares): the records
    whose content sorts next to its own, so alike records still meet and chain, at a cost
    that grows linearly with the block."""
    entry = windows.get(key)
    if entry is None:
        order = sorted(block, key=lambda o: (o.name or "", o.company or "", o.address or "",
                                             o.sort_key()))
        entry = windows[key] = (order, {o.rid: i for i, o in enumerate(order)})
    order, position = entry
    i = position[r.rid]
    return order[max(0, i - WINDOW): i + WINDOW + 1]


# ---------------------------------------------------------------- survivorship


def _best_first(members: Sequence[Record], rank: Callable[[str], int]) -> list[Record]:
    if len(members) == 1:
        return list(members)
    return sorted(members, key=lambda m: (rank(m.source), -(m.updated_at.timestamp()
                                                            if m.updated_at else 0.0),
                                          m.sort_key()))


def _survive(members: Sequence[Record], rank: Callable[[str], int],
             current: Profile | None) -> dict[str, Any]:
    """Golden-record values: per field, the best-ranked source's, then the most recent.

    For an existing entity, only what an incoming record outranks it with (or fills in).
    """
    if current is None and len(members) == 1:  # a new entity from one record
        only = members[0]
        alone: dict[str, Any] = {k: None if v == "" else v for k, v in only.values.items()}
        alone["source"] = only.source
        alone["source_updated_at"] = only.updated_at
        return alone
    ordered = _best_first(members, rank)
    values: dict[str, Any] = {}
    for m in ordered:
        for name, value in m.values.items():
            if value not in (None, "") and values.get(name) is None:
                values[name] = value
            values.setdefault(name, None)
    if not ordered:
        return values
    best = ordered[0]
    values["source"] = best.source
    values["source_updated_at"] = best.updated_at
    if current is None:
        return values
    best_key = (rank(best.source), -(best.updated_at.timestamp() if best.updated_at else 0.0))
    cur_key = (current.source_rank, -(current.updated_at.timestamp()
                                      if current.updated_at else 0.0))
    golden = {k: v for k, v in values.items()
              if v is not None and k not in ("source", "source_updated_at")}
    if best_key >= cur_key:  # the entity's source wins: only fill what it lacks
        return {k: v for k, v in golden.items() if current.values.get(k) is None}
    changed = {k: v for k, v in golden.items() if current.values.get(k) != v}
    if not changed:
        return {}  # nothing the entity shows would change: skip the write
    return {**changed, "source": values["source"],
            "source_updated_at": values["source_updated_at"]}


def _account_of(members: Sequence[Record], rank: Callable[[str], int]) -> EntityRef | None:
    for m in _best_first(members, rank):
        if m.account is not None:
            return m.account
    return None


# ---------------------------------------------------------------- neighbourhoods


def settle(plan: Plan, old_of: Mapping[int, int], batch: set[int],
           profiles: Mapping[int, Profile]) -> Plan:
    """Carry a plan made afresh over a neighbourhood back onto the entities it held.

    The Processor resolves a batch together with every record already linked to the entities
    the batch could join (their *neighbourhood*), with no entity fixed in advance, so the
    partition is the one a single pass over all those records gives, whatever order they came
    in. This maps each resulting cluster onto the existing entity holding most of its records
    (largest clusters first), merges entities no cluster kept into the one holding most of their
    records, and writes only what changed: links of records whose entity changed, golden values
    that differ, keys, reviews of the batch's own records.

    Args:
        plan: :func:`resolve`'s plan over the batch and the neighbourhood, with no existing
            entities (every cluster a new entity).
        old_of: record → the entity it is linked to today (neighbourhood records and batch
            records synced before).
        batch: the batch's records.
        profiles: the neighbourhood's entities as loaded (their golden values).
    """
    members: dict[EntityRef, list[Link]] = defaultdict(list)
    for link in plan.links:
        members[link.entity].append(link)
    order = sorted(plan.new_entities, key=lambda e: (-len(members[e.key]),
                                                     min(x.interaction_id
                                                         for x in members[e.key])))
    assigned: dict[EntityRef, int] = {}
    taken: set[int] = set()
    for entity in order:
        counts: dict[int, int] = defaultdict(int)
        for link in members[entity.key]:
            old = old_of.get(link.interaction_id)
            if old is not None and old not in taken:
                counts[old] += 1
        if counts:
            best = min(counts, key=lambda e: (-counts[e], e))
            assigned[entity.key] = best
            taken.add(best)
    out = Plan()
    for entity in plan.new_entities:
        old = assigned.get(entity.key)
        if old is None:
            out.new_entities.append(entity)
            continue
        current = profiles.get(old)
        shown = current.values if current is not None else {}
        changed = {k: v for k, v in entity.values.items()
                   if k in shown and v is not None and shown.get(k) != v}
        if changed:
            out.updates[old] = {**changed, "source": entity.values.get("source"),
                                "source_updated_at": entity.values.get("source_updated_at")}
        if entity.account is not None:
            out.contact_accounts[old] = entity.account
    new_of = {link.interaction_id: assigned.get(link.entity, link.entity)
              for link in plan.links}
    # An entity no cluster kept: its records all went to clusters other entities hold.
    for old in sorted(set(old_of.values()) - taken):
        counts = defaultdict(int)
        for rid, held in old_of.items():
            now_in = new_of.get(rid)
            if held == old and isinstance(now_in, int):
                counts[now_in] += 1
        if counts:
            survivor = min(counts, key=lambda e: (-counts[e], e))
            moved = sorted(r for r, e in old_of.items() if e == old)
            out.merges.append(Merge(survivor, (old,), {"bridged_by": sorted(
                r for r in batch if isinstance(new_of.get(r), int)
                and new_of[r] == survivor)[:2], "records": moved[:20]}))
    for entity_key, links in members.items():
        target = assigned.get(entity_key, entity_key)
        rules = [x.rule for x in links if x.rule != "new"]
        for link in links:
            if old_of.get(link.interaction_id) == target:
                continue  # already there: its link, rule and evidence stay as they are
            rule = link.rule
            if rule == "new" and isinstance(target, int):
                rule = rules[0] if rules else "neighbourhood"
            out.links.append(Link(link.interaction_id, target, rule, link.score,
                                  link.evidence))
    out.new_keys = {(assigned.get(e, e), k) for e, k in plan.new_keys}
    for review in plan.reviews:
        other = record_of(review.candidate)
        if review.interaction_id not in batch and other is not None and other in batch:
            # The pair seen from the batch's side: its record, the other record's entity.
            review = Review(other, record_ref(review.interaction_id),
                            review.rule, review.score, review.evidence)
        if review.interaction_id in batch:
            candidate = assigned.get(review.candidate, review.candidate)
            record = record_of(candidate)
            if record is not None:
                # A record that stays where it is has no link in the plan: name its entity.
                candidate = new_of.get(record, candidate)
            out.reviews.append(Review(review.interaction_id, candidate, review.rule,
                                      review.score, review.evidence))
    return out
