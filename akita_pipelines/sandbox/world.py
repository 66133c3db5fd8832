"""A deterministic seeded world of companies and people, shown by each provider differently.

The same real companies and people appear in several providers with realistic variation (legal
forms, ``www.`` and scheme on websites, case, typos, free-mail addresses, shared HQ phones,
subsidiaries sharing a domain). ``ground_truth`` tells which records are the same entity: that
is what the matcher is scored on.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

_STEMS = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne",
          "Wonka", "Tyrell", "Cyberdyne", "Soylent", "Massive", "Aperture", "Black Mesa",
          "Oscorp", "Gringotts", "Nakatomi", "Monarch", "Dunder", "Pied Piper", "Bluth",
          "Sterling", "Prestige", "Duff", "Krusty", "Gekko", "Virtucon", "Nimbus", "Zorg",
          "Rekall", "Weyland", "Octan", "Paper Street", "Los Pollos", "Ollivander", "Buy n Large",
          "Spacely", "Cogswell", "Veridian", "Axiom", "Lumon", "Northwind", "Contoso", "Fabrikam",
          "Tailspin", "Adventure Works", "Litware", "Proseware", "Wingtip"]
_SUFFIXES = ["Systems", "Labs", "Analytics", "Logistics", "Foods", "Health", "Energy",
             "Robotics", "Media", "Capital", "Software", "Networks", "Partners", "Industries"]
_FORMS = [("Inc", ["Inc.", "Inc", ", Inc.", "Incorporated"]), ("LLC", ["LLC", "L.L.C."]),
          ("Ltd", ["Ltd", "Ltd.", "Limited"]), ("GmbH", ["GmbH"]),
          ("Corp", ["Corp", "Corp.", "Corporation"]), ("SA", ["S.A.", "SA"])]
_TLDS = ["com", "com", "com", "io", "co.uk", "de", "fr", "net"]
_CITIES = [("San Francisco", "US"), ("New York", "US"), ("Austin", "US"), ("London", "GB"),
           ("Berlin", "DE"), ("Paris", "FR"), ("Toronto", "CA"), ("Sydney", "AU")]
_FIRST = ["James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda",
          "William", "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica",
          "Thomas", "Sarah", "Charles", "Karen", "Daniel", "Nancy", "Matthew", "Lisa", "Anthony",
          "Betty", "Mark", "Margaret", "Steven", "Sandra", "Ana", "Chen", "Priya", "Olga"]
_NICK = {"James": "Jim", "Robert": "Bob", "William": "Bill", "Elizabeth": "Liz",
         "Michael": "Mike", "Richard": "Rick", "Joseph": "Joe", "Thomas": "Tom",
         "Margaret": "Peggy", "Daniel": "Dan", "Matthew": "Matt", "Anthony": "Tony",
         "Steven": "Steve", "Jennifer": "Jen", "Patricia": "Pat"}
_LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
         "Rodriguez", "Martinez", "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor",
         "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Clark",
         "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Nguyen"]
_TITLES = ["CEO", "CTO", "VP Sales", "Head of Support", "Account Manager", "Engineer",
           "Director of Operations", "CFO", "Product Manager", "Customer Success Lead"]
_FREE = ["gmail.com", "yahoo.com", "outlook.com", "hotmail.com"]


@dataclass(frozen=True)
class Company:
    """A real company: the ground truth every provider's account record points back to."""

    entity_id: str
    name: str  # canonical, without legal form
    legal_form: str
    domain: str
    phone: str
    city: str
    country: str
    industry: str
    employees: int
    parent: str | None = None  # a subsidiary shares its parent's domain


@dataclass(frozen=True)
class Person:
    """A real person working at ``company``; ``email`` is the work address."""

    entity_id: str
    company: str  # entity id
    first_name: str
    last_name: str
    email: str
    phone: str
    title: str


@dataclass(frozen=True)
class CompanyView:
    """How one provider shows a company."""

    company: Company
    name: str
    website: str | None
    phone: str | None


@dataclass(frozen=True)
class PersonView:
    """How one provider shows a person (nickname, free-mail or missing email, ...)."""

    person: Person
    first_name: str
    last_name: str
    email: str | None
    phone: str | None


@dataclass
class ProviderView:
    """The companies and people one provider holds, in world order."""

    companies: list[CompanyView] = field(default_factory=list)
    people: list[PersonView] = field(default_factory=list)


# Surnames for bulk history: three syllables give 8,000 distinct names, a long tail as in a real
# CRM (a pool of 34 would put hundreds of people in every name block).
_SYLLABLES = (["Ka", "Mor", "Bel", "Dun", "Has", "Lin", "Ro", "Vel", "Tor", "Sten", "Mar", "Ol",
               "Pe", "Quin", "Ash", "Fen", "Gil", "Har", "Ives", "Jor"],
              ["de", "ri", "ven", "lo", "ba", "th", "ne", "ka", "si", "mo", "ga", "le", "wi",
               "to", "ra", "phe", "nu", "co", "da", "lu"],
              ["son", "ley", "ford", "man", "ski", "ton", "berg", "well", "er", "ov", "ez",
               "ard", "ing", "ich", "en", "ett", "ock", "ham", "by", "ner"])


def history_person(rng: random.Random, n: int) -> dict[str, str]:
    """A plausible, distinct person for bulk history: name, work email, phone."""
    first = rng.choice(_FIRST)
    last = "".join(rng.choice(part) for part in _SYLLABLES)
    company = "".join(rng.choice(part) for part in _SYLLABLES[:2]).lower()
    return {"first": first, "last": last,
            "email": f"{first.lower()}.{last.lower()}{n}@{company}.{rng.choice(_TLDS)}",
            "phone": f"+1 {rng.randrange(200, 999)} 555 {rng.randrange(0, 10_000):04d}"}


def _typo(rng: random.Random, text: str) -> str:
    if len(text) < 4:
        return text
    i = rng.randrange(1, len(text) - 1)
    return text[:i] + text[i + 1] + text[i] + text[i + 2:]


class World:
    """Companies and people, generated from ``seed``; ``now`` anchors every timestamp.

    Args:
        seed: Seeds everything; the same seed gives the same world.
        n_companies: Number of companies (about three people each).
        now: The end of the world's history: generated timestamps fall in the 365 days before
            it. Defaults to the current time, to the second.
    """

    def __init__(self, seed: int = 7, n_companies: int = 120, now: datetime | None = None) -> None:
        if now is not None and now.tzinfo is None:
            raise ValueError("World(now=...) must be timezone-aware")
        self.seed = seed
        self.now = now or datetime.now(UTC).replace(microsecond=0)
        rng = random.Random(seed)
        self.companies: list[Company] = []
        used: set[str] = set()
        for i in range(n_companies):
            while True:
                stem = rng.choice(_STEMS)
                name = f"{stem} {rng.choice(_SUFFIXES)}" if rng.random() < 0.7 else stem
                if name not in used:
                    break
                name = f"{stem} {rng.choice(_SUFFIXES)} {i}"
                if name not in used:
                    break
            used.add(name)
            slug = name.lower().replace(" ", "")
            domain = f"{''.join(ch for ch in slug if ch.isalnum())}.{rng.choice(_TLDS)}"
            city, country = rng.choice(_CITIES)
            form = rng.choice(_FORMS)[0]
            phone = f"+1 415 555 {1000 + i:04d}"
            parent = None
            if i > 10 and rng.random() < 0.05:
                # A subsidiary: its own name, its parent's domain and switchboard.
                parent_co = self.companies[rng.randrange(0, i)]
                domain, phone, parent = parent_co.domain, parent_co.phone, parent_co.entity_id
            elif i > 10 and rng.random() < 0.04:
                phone = self.companies[rng.randrange(0, i)].phone  # a shared HQ building
            self.companies.append(Company(
                entity_id=f"co-{i + 1:04d}", name=name, legal_form=form, domain=domain,
                phone=phone, city=city, country=country,
                industry=rng.choice(["Software", "Retail", "Finance", "Health", "Energy"]),
                employees=rng.choice([10, 50, 200, 1000, 5000]), parent=parent))
        self.people: list[Person] = []
        n = 0
        for company in self.companies:
            for _ in range(rng.choice([1, 2, 3, 3, 4, 5])):
                n += 1
                first, last = rng.choice(_FIRST), rng.choice(_LAST)
                local = rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}"]).lower()
                self.people.append(Person(
                    entity_id=f"pe-{n:05d}", company=company.entity_id, first_name=first,
                    last_name=last, email=f"{local}{n if rng.random() < 0.3 else ''}@"
                                          f"{company.domain}",
                    phone=f"+1 212 555 {n % 10000:04d}", title=rng.choice(_TITLES)))
        self._company_by_id = {c.entity_id: c for c in self.companies}
        # Index people by company: view() walks every company, and a linear scan per company
        # is quadratic in world size (the matching benchmark builds worlds of thousands).
        self._people_of: dict[str, list[Person]] = {c.entity_id: [] for c in self.companies}
        for person in self.people:
            self._people_of[person.company].append(person)
        self._truth: dict[tuple[str, str, str], str] = {}
        self._truth_lock = threading.Lock()

    def company(self, entity_id: str) -> Company:
        """The company with ``entity_id`` (``KeyError`` if there is none)."""
        return self._company_by_id[entity_id]

    def people_of(self, company_id: str) -> list[Person]:
        """The people working at ``company_id``, in world order."""
        return list(self._people_of.get(company_id, []))

    def register(self, provider: str, object_type: str, external_id: str,
                 entity_id: str) -> None:
        """Record that ``provider``'s record ``external_id`` shows entity ``entity_id``.

        Emulators call this for each record they seed from a view, so :meth:`ground_truth`
        covers exactly what has been generated.

        Args:
            provider: Provider name, e.g. ``"salesforce"``.
            object_type: The record's type as the connector names its stream (``"accounts"``,
                ``"contacts"``).
            external_id: The provider's own id of the record.
            entity_id: The world entity (``co-0001`` or ``pe-00001``).
        """
        with self._truth_lock:
            self._truth[(provider, object_type, external_id)] = entity_id

    def ground_truth(self) -> dict[tuple[str, str, str], str]:
        """Every generated record so far: ``{(provider, object_type, external_id): entity_id}``.

        Records an emulator creates later (``create``, churn) are not real entities and are
        absent.
        """
        with self._truth_lock:
            return dict(self._truth)

    def timestamp(self, rng: random.Random) -> datetime:
        """A time within the year before ``now``, to the millisecond."""
        ms = rng.randrange(0, 365 * 24 * 3600 * 1000)
        return self.now - timedelta(milliseconds=ms)

    def view(self, provider: str, coverage: float = 0.8) -> ProviderView:
        """The subset of the world ``provider`` holds, each record shown with some variation.

        Deterministic for (seed, provider, coverage): every provider sees a different,
        overlapping subset. Company names vary by legal form, case and typos; websites by
        ``www.``, scheme and trailing slash; first names by nickname; emails by case, free-mail
        addresses and absence.

        Args:
            provider: Provider name; seeds which subset and which variations it gets.
            coverage: Share of the companies the provider holds (each holds ~85 % of the
                people of a company it holds).

        Returns:
            The provider's companies and people, in world order.
        """
        rng = random.Random(f"{self.seed}:{provider}")
        view = ProviderView()
        for company in self.companies:
            if rng.random() > coverage:
                continue
            form_names = dict(_FORMS)[company.legal_form]
            style = rng.random()
            if style < 0.4:
                name = f"{company.name} {rng.choice(form_names)}".replace(" ,", ",")
            elif style < 0.55:
                name = company.name.upper()
            elif style < 0.6:
                name = _typo(rng, company.name)
            else:
                name = company.name
            site_style = rng.random()
            website: str | None
            if site_style < 0.3:
                website = f"www.{company.domain}"
            elif site_style < 0.55:
                website = f"https://www.{company.domain}/"
            elif site_style < 0.65:
                website = f"http://{company.domain}"
            elif site_style < 0.7:
                website = None
            else:
                website = company.domain
            # The HQ switchboard; shared by subsidiaries and by companies in one building.
            phone = company.phone if rng.random() < 0.8 else None
            view.companies.append(CompanyView(company, name, website, phone))
            for person in self._people_of[company.entity_id]:
                if rng.random() > 0.85:
                    continue
                first = person.first_name
                if first in _NICK and rng.random() < 0.2:
                    first = _NICK[first]
                email_style = rng.random()
                email: str | None
                if email_style < 0.08:
                    email = f"{person.first_name}.{person.last_name}{rng.randrange(10, 99)}@" \
                            f"{rng.choice(_FREE)}".lower()
                elif email_style < 0.2:
                    email = person.email.upper() if rng.random() < 0.5 else \
                        person.email.capitalize()
                elif email_style < 0.23:
                    email = None
                else:
                    email = person.email
                view.people.append(PersonView(person, first, person.last_name, email,
                                              person.phone if rng.random() < 0.7 else None))
        return view


Clock = Callable[[], datetime]
