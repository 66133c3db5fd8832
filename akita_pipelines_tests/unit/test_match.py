from __future__ import annotations

import random

from akita_pipelines.processing.match import (
    AccountCandidate,
    ContactCandidate,
    match_accounts,
    match_contacts,
)


def test_accounts_match_existing_by_domain_else_create_one_per_domain() -> None:
    cands = [AccountCandidate(1, "Acme Inc", "acme.com", None),
             AccountCandidate(2, "ACME Corporation", "acme.com", None),
             AccountCandidate(3, "Globex", "globex.com", None),
             AccountCandidate(4, "No Site", None, None)]
    plan = match_accounts(cands, {"globex.com": 77})
    by_interaction = {link.interaction_id: link for link in plan.links}
    assert by_interaction[3].entity == 77
    assert by_interaction[3].rule == "domain"
    assert by_interaction[1].entity == by_interaction[2].entity == "domain:acme.com"
    assert {by_interaction[1].rule, by_interaction[2].rule} == {"new", "domain"}
    assert by_interaction[4].rule == "new"
    assert sorted(e.key for e in plan.new_entities) == ["domain:acme.com", "interaction:4"]


def test_already_linked_records_keep_their_entity() -> None:
    plan = match_accounts([AccountCandidate(1, "Acme", "acme.com", None, linked_account_id=5)],
                          {"acme.com": 9})
    assert [(link.entity, link.rule) for link in plan.links] == [(5, "source_id")]
    assert not plan.new_entities


def test_matching_is_independent_of_arrival_order() -> None:
    cands = [AccountCandidate(i, f"n{i}", f"d{i % 7}.com", None) for i in range(50)]
    first = match_accounts(cands, {"d3.com": 1})
    shuffled = cands[:]
    random.Random(4).shuffle(shuffled)
    second = match_accounts(shuffled, {"d3.com": 1})
    assert sorted((x.interaction_id, x.entity, x.rule) for x in first.links) == \
        sorted((x.interaction_id, x.entity, x.rule) for x in second.links)


def test_contacts_match_by_email_and_join_their_account() -> None:
    cands = [
        ContactCandidate(1, "jane@acme.com", "Jane", "Jane", "Doe", None,
                         account_ref_account_id=10, email_domain="acme.com"),
        ContactCandidate(2, "jane@acme.com", "Jane D", "Jane", "D", None),
        ContactCandidate(3, "bob@globex.com", "Bob", "Bob", None, None, email_domain="globex.com"),
        ContactCandidate(4, "old@acme.com", "Old", None, None, None, email_domain="acme.com"),
    ]
    plan = match_contacts(cands, {"old@acme.com": 50}, {"globex.com": 20, "acme.com": 10})
    by_interaction = {link.interaction_id: link for link in plan.links}
    assert by_interaction[1].entity == by_interaction[2].entity == "email:jane@acme.com"
    assert by_interaction[4].entity == 50
    assert by_interaction[4].rule == "email"
    new = {e.key: e for e in plan.new_entities}
    assert new["email:jane@acme.com"].account == 10
    assert new["email:bob@globex.com"].account == 20  # through the work-email domain
    assert plan.contact_accounts == {50: 10}
