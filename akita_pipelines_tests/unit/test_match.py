"""The tiered matcher: rules, traps, review band, determinism (pure functions, no database)."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import pytest

from akita_pipelines.processing.features import (
    account_ids,
    account_profile,
    account_record,
    contact_record,
    cross_ids,
    own_id,
)
from akita_pipelines.processing.match import match_rows, parse_columns
from akita_pipelines.processing.resolve import Existing, Kind, Plan, block_keys, resolve


def _groups(kind: Kind, rows: list[dict[str, Any]]) -> list[set[int]]:
    """The partition of row numbers into entities."""
    by_entity: dict[str, set[int]] = defaultdict(set)
    for result in match_rows(kind, rows):
        by_entity[result.entity].add(result.row)
    return sorted(by_entity.values(), key=min)


def _same(kind: Kind, a: dict[str, Any], b: dict[str, Any]) -> bool:
    return len(_groups(kind, [a, b])) == 1


ACCOUNT_CASES = [
    # (why, a, b, same entity?)
    ("www and scheme on the same registered domain",
     {"name": "Acme Inc.", "website": "https://www.acme.com/"},
     {"name": "ACME", "website": "acme.com"}, True),
    ("subdomain of the same registered domain",
     {"name": "Acme", "website": "shop.acme.co.uk"}, {"name": "Acme Ltd", "website": "acme.co.uk"},
     True),
    ("legal form and case differ, no website, same phone",
     {"name": "Globex Corporation", "phone": "+1 415 555 0101"},
     {"name": "GLOBEX", "phone": "+1 415 555 0101"}, True),
    ("a typo in the name, same phone",
     {"name": "Initech Systems", "phone": "+1 415 555 0102"},
     {"name": "Intiech Systems", "phone": "+1 415 555 0102"}, True),
    ("cross-system id: Stripe metadata names the Salesforce account",
     {"source": "salesforce", "id": "001000000000001AAA", "name": "Hooli"},
     {"source": "stripe", "id": "cus_1", "name": "Hooli XYZ Holdings",
      "metadata.salesforce_account_id": "001000000000001"}, True),
    ("HQ trap: a shared switchboard phone without name evidence",
     {"name": "Vandelay Industries", "phone": "+1 415 555 0103"},
     {"name": "Kramerica", "phone": "+1 415 555 0103"}, False),
    ("subsidiary trap: the parent's domain, a clearly different name",
     {"name": "Wayne Enterprises", "website": "wayne.com"},
     {"name": "Gotham Shipping", "website": "wayne.com"}, False),
    ("free-mail domains never identify an account",
     {"name": "Alpha", "email": "a@gmail.com"}, {"name": "Beta", "email": "b@gmail.com"}, False),
    ("same name, different registered domains",
     {"name": "Nimbus", "website": "nimbus.io"}, {"name": "Nimbus", "website": "nimbus-rx.com"},
     False),
    # Real listings (two guides of one city's restaurants): name variants with the same
    # address and phone are one business; different names in one building are not.
    ("a bracketed city qualifier, same phone",
     {"name": "Nordlicht", "phone": "+49 40 1234567"},
     {"name": "Nordlicht (Hamburg)", "phone": "+49 40 1234567"}, True),
    ("a trailing article, same address",
     {"name": "Grill Room, The", "address": "123 Main Street"},
     {"name": "The Grill Room", "address": "123 Main St."}, True),
    ("a short form, same address and phone",
     {"name": "Sam's Deli", "address": "12224 Ventura Blvd.", "phone": "213/857-1234"},
     {"name": "Sam's Delicatessen", "address": "12224 Ventura Boulevard",
      "phone": "(213) 857-1234"}, True),
    ("words added to the name, same address and phone",
     {"name": "Fenix", "address": "8358 Sunset Blvd. West Hollywood", "phone": "213-848-6677"},
     {"name": "Fenix at the Argyle", "address": "8358 Sunset Blvd. West Hollywood",
      "phone": "213/848-6677"}, True),
    ("'&' / 'and', 'St' / 'Saint', numbers as words",
     {"name": "St. Elmo's Seven Seas & Co", "phone": "+1 415 555 0199"},
     {"name": "Saint Elmo's 7 Seas and Co", "phone": "+1 415 555 0199"}, True),
    ("two businesses in one building share address and switchboard",
     {"name": "Hotel Bel-Air", "address": "701 Stone Canyon Rd.", "phone": "310-472-1211"},
     {"name": "Stone Canyon Spa", "address": "701 Stone Canyon Road", "phone": "310/472-1211"},
     False),
    ("an edit note in brackets on the same domain (the demo's churn)",
     {"source": "sql", "id": "1", "name": "Umbrella Corp.", "website": "umbrella.com"},
     {"source": "rest", "id": "2", "name": "Umbrella Corp. (updated) (updated)",
      "website": "https://www.umbrella.com"}, True),
    ("two outlets of one name, told apart by their qualifiers",
     {"name": "Nordlicht (Hamburg)", "website": "nordlicht.de"},
     {"name": "Nordlicht (Berlin)", "website": "nordlicht.de"}, False),
    ("one name, two listed numbers: two branches",
     {"name": "Hard Rock Cafe", "phone": "310/276-7605"},
     {"name": "Hard Rock Cafe", "phone": "212/489-6565"}, False),
    ("a short form alone is not enough",
     {"name": "Sam's Deli"}, {"name": "Sam's Delicatessen", "phone": "+1 415 555 0111"}, False),
]

CONTACT_CASES = [
    ("email, case-insensitively",
     {"email": "Jane.Doe@Acme.com", "first_name": "Jane", "last_name": "Doe"},
     {"email": "jane.doe@acme.com", "first_name": "J", "last_name": "Doe"}, True),
    ("a nickname, a free-mail address and the same phone",
     {"email": "robert.smith@acme.com", "first_name": "Robert", "last_name": "Smith",
      "phone": "+1 212 555 0100"},
     {"email": "bob.smith77@gmail.com", "first_name": "Bob", "last_name": "Smith",
      "phone": "+1 212 555 0100"}, True),
    ("common name only: never merged on the name alone",
     {"first_name": "John", "last_name": "Smith"}, {"first_name": "John", "last_name": "Smith"},
     False),
    ("a shared mailbox with two different people",
     {"email": "james@acme.com", "first_name": "James", "last_name": "Smith"},
     {"email": "james@acme.com", "first_name": "James", "last_name": "Brown"}, False),
    ("two different work emails at two companies",
     {"email": "jmartinez@northwind.com", "first_name": "Joe", "last_name": "Martinez"},
     {"email": "jmartinez@contoso.com", "first_name": "Joseph", "last_name": "Martinez"}, False),
    ("customer external id",
     {"external_id": "42", "first_name": "Ann", "last_name": "Lee"},
     {"external_id": "42", "first_name": "Anne", "last_name": "Li"}, True),
    # A household (pseudopeople census): one surname, one address, and still two people.
    ("parent and child: a generation between the birth dates",
     {"first_name": "Brianna", "last_name": "Cole", "birth_date": "1994-10-14",
      "address": "85 Jordan Creek Pkwy"},
     {"first_name": "Anna", "last_name": "Cole", "birth_date": "2019-11-08",
      "address": "85 Jordan Creek Pkwy"}, False),
    ("twins: two first names the nickname list knows apart",
     {"first_name": "Mackenzie", "last_name": "Baker", "birth_date": "2011-07-31",
      "address": "8921 Security Lane"},
     {"first_name": "Camila", "last_name": "Baker", "birth_date": "2011-07-31",
      "address": "8921 Security Lane"}, False),
    ("names sharing only a nickname (Madison, Matthew: 'Mattie')",
     {"first_name": "Madison", "last_name": "Chamberlain", "address": "331 Knox Terrace"},
     {"first_name": "Matthew", "last_name": "Chamberlain", "address": "331 Knox Terrace"},
     False),
    ("different middle initials",
     {"first_name": "Brian", "middle_name": "L", "last_name": "Jones",
      "address": "4000 NW Skycrest Pkwy"},
     {"first_name": "Brian", "middle_name": "I", "last_name": "Jones",
      "address": "4000 NW Skycrest Pkwy"}, False),
    ("day and month swapped in the birth date",
     {"first_name": "Ann", "last_name": "Lee", "birth_date": "1987-03-12",
      "address": "12 Elm Street"},
     {"first_name": "Ann", "last_name": "Lee", "birth_date": "1987-12-03"}, True),
    ("titles and suffixes in a full name",
     {"name": "Dr. Anne King Jr.", "phone": "+1 212 555 0142", "email": "anne@acme.com"},
     {"first_name": "Anne", "last_name": "King", "phone": "+1 212 555 0142"}, True),
    ("a free-mail and a work address of the same person at the same account",
     {"email": "patricia.king67@outlook.com", "first_name": "Patricia", "last_name": "King",
      "company": "Lumon Software"},
     {"email": "patricia@lumonsoftware.net", "first_name": "Patricia", "last_name": "King",
      "company": "Lumon Software"}, True),
]


@pytest.mark.parametrize(("why", "a", "b", "same"), ACCOUNT_CASES,
                         ids=[c[0] for c in ACCOUNT_CASES])
def test_account_rules(why: str, a: dict[str, Any], b: dict[str, Any], same: bool) -> None:
    assert _same("accounts", a, b) is same, why


@pytest.mark.parametrize(("why", "a", "b", "same"), CONTACT_CASES,
                         ids=[c[0] for c in CONTACT_CASES])
def test_contact_rules(why: str, a: dict[str, Any], b: dict[str, Any], same: bool) -> None:
    assert _same("contacts", a, b) is same, why


def test_every_link_has_rule_score_and_evidence() -> None:
    results = match_rows("accounts", [
        {"name": "Acme Inc", "website": "acme.com"}, {"name": "Acme", "website": "www.acme.com"},
        {"name": "Acme", "phone": "+14155550100"},
        {"name": "ACME", "website": "acme.com", "phone": "+14155550100"}])
    assert {r.rule for r in results} >= {"new", "domain"}
    plan = resolve("accounts", [account_record(1, name="Acme", website="acme.com", phone=None),
                                account_record(2, name="Acme Inc", website="acme.com",
                                               phone=None)])
    linked = [link for link in plan.links if link.rule == "domain"]
    assert linked
    assert all(link.evidence == {"domain": "acme.com"} for link in linked)
    assert all(0.0 <= link.score <= 1.0 for link in plan.links)


def test_subsidiary_sharing_the_parents_domain_goes_to_review() -> None:
    parent = account_profile(10, name="Wayne Enterprises", domain="wayne.com", phone=None)
    existing = Existing(profiles={10: parent}, by_key={"wayne.com": [10]})
    plan = resolve("accounts", [
        account_record(1, name="Gotham Shipping LLC", website="www.wayne.com", phone=None),
        account_record(2, name="Wayne Enterprises, Inc.", website="wayne.com", phone=None)],
        existing)
    by_rid = {link.interaction_id: link for link in plan.links}
    assert by_rid[2].entity == 10
    assert by_rid[2].rule == "domain"
    assert by_rid[1].entity != 10
    reviews = {(r.interaction_id, r.candidate, r.rule) for r in plan.reviews}
    assert (1, 10, "domain_name_mismatch") in reviews


def test_subsidiary_finds_its_own_entity_next_to_the_parent() -> None:
    parent = account_profile(10, name="Wayne Enterprises", domain="wayne.com", phone=None)
    child = account_profile(11, name="Gotham Shipping", domain="wayne.com", phone=None)
    existing = Existing(profiles={10: parent, 11: child}, by_key={"wayne.com": [10, 11]})
    plan = resolve("accounts", [account_record(1, name="GOTHAM SHIPPING", website="wayne.com",
                                               phone=None)], existing)
    assert [(link.entity, link.rule) for link in plan.links] == [(11, "domain")]
    assert not plan.merges


def test_a_nameless_record_on_a_shared_domain_is_reviewed_not_guessed() -> None:
    existing = Existing(
        profiles={10: account_profile(10, name="Wayne Enterprises", domain="wayne.com",
                                      phone=None),
                  11: account_profile(11, name="Gotham Shipping", domain="wayne.com",
                                      phone=None)},
        by_key={"wayne.com": [10, 11]})
    plan = resolve("accounts", [account_record(1, name=None, website="wayne.com", phone=None)],
                   existing)
    assert plan.links[0].rule == "new"
    assert {r.candidate for r in plan.reviews} == {10, 11}


def test_fuzzy_review_band_is_recorded_not_merged() -> None:
    # Same name on two different registered domains: scored into the review band.
    plan = resolve("accounts", [account_record(1, name="Nimbus", website="nimbus.io", phone=None),
                                account_record(2, name="Nimbus", website="nimbus-rx.com",
                                               phone=None)])
    assert len(plan.new_entities) == 2
    assert [r.rule for r in plan.reviews] == ["fuzzy_review"]


def test_already_linked_records_keep_their_entity() -> None:
    existing = Existing(profiles={5: account_profile(5, name="Acme", domain="acme.com",
                                                     phone=None)})
    plan = resolve("accounts", [account_record(1, name="Acme", website="acme.com", phone=None,
                                               linked=5)], existing)
    assert [(link.entity, link.rule) for link in plan.links] == [(5, "source_id")]
    assert not plan.new_entities


def test_a_record_bridging_two_entities_merges_them_into_the_older() -> None:
    existing = Existing(
        profiles={5: account_profile(5, name="Acme", domain="acme.com", phone=None),
                  9: account_profile(9, name="Acme Corp", domain=None, phone=None)},
        by_key={"acme.com": [5]}, by_id={"id:salesforce:001A": 9})
    plan = resolve("accounts", [account_record(1, name="Acme", website="acme.com", phone=None,
                                               ids=("id:salesforce:001A",))], existing)
    assert [(m.survivor, m.absorbed) for m in plan.merges] == [(5, (9,))]
    assert plan.links[0].entity == 5


def test_fuzzy_never_bridges_two_existing_entities() -> None:
    incoming = account_record(1, name="Acme", website=None, phone="+1 415 555 0100")
    existing = Existing(
        profiles={5: account_profile(5, name="Acme", domain="acme.com", phone=incoming.phone),
                  9: account_profile(9, name="Acme", domain="acme.de", phone=incoming.phone)},
        by_block={k: [5, 9] for k in block_keys("accounts", incoming)})
    plan = resolve("accounts", [incoming], existing)
    assert not plan.merges
    assert plan.links[0].entity in (5, 9)


def test_survivorship_prefers_the_customers_source_priority_then_recency() -> None:
    from datetime import UTC, datetime

    old, new = datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    recs = [account_record(1, name="Acme Inc.", website="acme.com", phone=None,
                           source="salesforce", updated_at=old),
            account_record(2, name="ACME, Inc", website="acme.com", phone="+14155550100",
                           source="hubspot", updated_at=new)]
    by_recency = resolve("accounts", recs)
    assert by_recency.new_entities[0].values["name"] == "ACME, Inc"
    ranked = resolve("accounts", recs, source_rank=lambda s: 0 if s == "salesforce" else 1)
    values = ranked.new_entities[0].values
    assert values["name"] == "Acme Inc."
    assert values["phone"] == "+14155550100"  # filled from the next source


def _partition(plan: Plan) -> set[frozenset[int]]:
    groups: dict[str, set[int]] = defaultdict(set)
    for link in plan.links:
        groups[str(link.entity)].add(link.interaction_id)
    return {frozenset(g) for g in groups.values()}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_partition_does_not_depend_on_arrival_order(seed: int) -> None:
    from akita_pipelines.sandbox.world import World

    world = World(5, n_companies=60)
    recs = []
    for provider in ("salesforce", "hubspot", "stripe"):
        for c in world.view(provider).people:
            recs.append(contact_record(len(recs), email=c.email, first_name=c.first_name,
                                       last_name=c.last_name, phone=c.phone))
    first = resolve("contacts", recs)
    shuffled = recs[:]
    random.Random(seed).shuffle(shuffled)
    assert _partition(resolve("contacts", shuffled)) == _partition(first)


@pytest.mark.parametrize(("fields", "kind", "expected"), [
    ({"metadata": {"salesforce_account_id": "001000000000001AAA"}}, "accounts",
     ("id:salesforce:001000000000001",)),
    ({"hubspot_company_id": 77, "external_id": "X-1"}, "accounts",
     ("ext:X-1", "id:hubspot:77")),
    ({"salesforce_contact_id": "003A", "salesforce_account_id": "001B"}, "contacts",
     ("id:salesforce:003A",)),
    ({"hs_object_id": "5", "id": "9"}, "accounts", ()),
])
def test_cross_system_ids(fields: dict[str, Any], kind: str, expected: tuple[str, ...]) -> None:
    assert cross_ids(kind, fields) == expected


def test_account_ids_of_a_contact_or_ticket() -> None:
    assert account_ids({"salesforce_account_id": "001B", "salesforce_contact_id": "003A"}) == \
        ("id:salesforce:001B",)
    assert own_id("salesforce", "001000000000001AAA") == "id:salesforce:001000000000001"


def test_column_mapping_is_validated() -> None:
    assert parse_columns("name=Company, phone=Tel", "accounts") == {"name": "Company",
                                                                    "phone": "Tel"}
    with pytest.raises(ValueError, match="unknown attribute"):
        parse_columns("colour=x", "accounts")
    with pytest.raises(ValueError, match="attribute=column"):
        parse_columns("name", "accounts")


def test_a_plain_name_never_bridges_two_qualified_outlets() -> None:
    rows = [{"name": "Spago (Las Vegas)"}, {"name": "Spago"}, {"name": "Spago (Los Angeles)"}]
    groups = _groups("accounts", rows)
    assert not any({0, 2} <= g for g in groups), groups


def test_a_chain_never_joins_parent_and_child_through_a_third_record() -> None:
    rows = [{"first_name": "Patrick", "middle_name": "J", "last_name": "Rios",
             "birth_date": "1969-06-21", "address": "6737 E Bay Cove"},
            {"first_name": "Peter", "middle_name": "J", "last_name": "Rios",
             "birth_date": "2010-12-08", "address": "6737 E Bay Cove"},
            # a W-2 record without a birth date that looks like either of them
            {"first_name": "P", "middle_name": "J", "last_name": "Rios",
             "address": "6737 E Bay Cove"}]
    assert not any({0, 1} <= g for g in _groups("contacts", rows))
