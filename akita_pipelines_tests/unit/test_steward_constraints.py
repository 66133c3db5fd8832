"""Steward decisions in the pure matcher: must-links and cannot-links beat every tier."""

from __future__ import annotations

import random
from collections import defaultdict

from akita_pipelines.processing.features import account_profile, account_record
from akita_pipelines.processing.resolve import EntityRef, Existing, Plan, Record, resolve


def _acme(rid: int, name: str = "Acme Inc.", linked: int | None = None) -> Record:
    return account_record(rid, name=name, website="https://acme.com", phone=None,
                          ids=(f"id:crm:{rid}",), linked=linked)


def _entity_of(plan: Plan) -> dict[int, EntityRef]:
    return {link.interaction_id: link.entity for link in plan.links}


def _partition(plan: Plan) -> list[set[int]]:
    groups: dict[EntityRef, set[int]] = defaultdict(set)
    for link in plan.links:
        groups[link.entity].add(link.interaction_id)
    return sorted(groups.values(), key=min)


def test_records_kept_apart_never_share_an_entity_even_on_the_same_domain() -> None:
    records = [_acme(1), _acme(2, "ACME"), _acme(3, "Acme")]
    assert _partition(resolve("accounts", records)) == [{1, 2, 3}]
    for _ in range(5):
        random.shuffle(records)
        plan = resolve("accounts", records, Existing(kept_apart=[(1, 2)]))
        entity = _entity_of(plan)
        assert entity[1] != entity[2]
        assert not plan.merges


def test_a_record_kept_apart_from_an_entity_does_not_join_it_by_domain_or_stickiness() -> None:
    profile = account_profile(10, name="Acme Inc.", domain="acme.com", phone=None)
    existing = Existing(profiles={10: profile}, by_key={"acme.com": [10]}, apart={1: {10}})
    plan = resolve("accounts", [_acme(1, linked=10), _acme(2)], existing)
    entity = _entity_of(plan)
    assert entity[1] != 10
    assert entity[2] == 10  # the decision concerns record 1 only


def test_a_pinned_record_joins_its_entity_although_every_field_differs() -> None:
    profile = account_profile(10, name="Umbrella Corp.", domain="umbrella.com", phone=None)
    existing = Existing(profiles={10: profile}, by_key={"umbrella.com": [10]}, pinned={1: {10}})
    plan = resolve("accounts", [_acme(1)], existing)
    assert _entity_of(plan) == {1: 10}
    assert plan.links[0].rule == "steward"


def test_records_held_together_share_an_entity_although_every_field_differs() -> None:
    other = account_record(2, name="Globex", website="globex.com", phone=None)
    plan = resolve("accounts", [_acme(1), other], Existing(together=[(1, 2)]))
    assert _partition(plan) == [{1, 2}]


def test_a_cannot_link_stops_a_third_record_bridging_the_pair() -> None:
    # 3 shares an id with 1 and the domain with 2: without the decision all three are one.
    a = account_record(1, name="Acme Inc.", website=None, phone=None, ids=("ext:7",))
    b = account_record(2, name="Acme", website="acme.com", phone=None)
    bridge = account_record(3, name="Acme Inc", website="acme.com", phone=None, ids=("ext:7",))
    assert _partition(resolve("accounts", [a, b, bridge])) == [{1, 2, 3}]
    for order in ([a, b, bridge], [bridge, b, a], [b, bridge, a]):
        entity = _entity_of(resolve("accounts", order, Existing(kept_apart=[(1, 2)])))
        assert entity[1] != entity[2]


def test_a_new_record_does_not_bridge_two_entities_kept_apart() -> None:
    profiles = {10: account_profile(10, name="Acme Inc.", domain="acme.com", phone=None),
                11: account_profile(11, name="Acme", domain="acme.com", phone=None)}
    bridge = _acme(1)
    merged = resolve("accounts", [bridge],
                     Existing(profiles=dict(profiles), by_key={"acme.com": [10, 11]}))
    assert merged.merges
    plan = resolve("accounts", [bridge], Existing(profiles=dict(profiles),
                                                  by_key={"acme.com": [10, 11]},
                                                  entities_apart=[(10, 11)]))
    assert not plan.merges
    assert _entity_of(plan)[1] in (10, 11)
