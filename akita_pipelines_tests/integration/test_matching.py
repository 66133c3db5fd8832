"""The Processor's matching on a real database: tiers across integrations, review rows, merges
with history and unmerge, related records, re-matching, and the ``akita match`` command."""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import Connection, Engine, select

from akita_pipelines.cli.match import match
from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.types import Customer, Integration, TypedRecord
from akita_pipelines.db import entities
from akita_pipelines.db.integrations import save_customer, save_integration
from akita_pipelines.db.schema import (
    account_links,
    accounts,
    contact_links,
    contacts,
    entity_merges,
    interactions,
    match_reviews,
)
from akita_pipelines.sync.process import ProcessResult, process_batch
from akita_pipelines.sync.rematch import rematch_all, rematch_customer

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _setup(engine: Engine, customer: str = "acme") -> None:
    now = utcnow()
    with engine.begin() as conn:
        save_customer(conn, Customer(id=customer, name=customer.title(),
                                     settings={"source_priority": ["salesforce"]}), now)
        for provider in ("salesforce", "stripe", "zendesk"):
            save_integration(conn, Integration(id=f"{provider}.{customer}", customer_id=customer,
                                               provider=provider if provider == "salesforce"
                                               else "rest", config={"base_url": "http://x"}),
                             {}, now)


def _acc(external_id: str, name: str | None, website: str | None = None,
         phone: str | None = None, **fields: Any) -> TypedRecord:
    return TypedRecord("accounts", external_id, T0, name=name, website=website, phone=phone,
                       fields=fields)


def _run(engine: Engine, integration: str, records: list[TypedRecord],
         customer: str = "acme") -> ProcessResult:
    result = ProcessResult(integration, records[0].interaction_type)
    with engine.begin() as conn:
        process_batch(conn, customer_id=customer, integration_id=integration, records=records,
                      now=utcnow(), result=result)
    return result


def _account_of(conn: Connection, integration: str, external_id: str) -> tuple[int, str]:
    row = conn.execute(select(account_links.c.account_id, account_links.c.rule)
                       .join(interactions, interactions.c.id == account_links.c.interaction_id)
                       .where(interactions.c.integration_id == integration,
                              interactions.c.external_id == external_id)).one()
    return row.account_id, row.rule


def test_tiers_across_integrations_and_the_traps(engine: Engine) -> None:
    _setup(engine)
    _run(engine, "salesforce.acme", [
        _acc("001000000000001AAA", "Acme Inc.", "www.acme.com", "+1 415 555 0100"),
        _acc("001000000000002AAA", "Wayne Enterprises", "wayne.com", "+1 415 555 0200"),
        _acc("001000000000003AAA", "Vandelay Industries", None, "+1 415 555 0300")])
    result = _run(engine, "stripe.acme", [
        _acc("cus_1", "ACME CORPORATION", "https://acme.com/"),  # tier 2: domain
        _acc("cus_2", "Hooli Holdings", None,  # tier 1: the Salesforce id in its metadata
             metadata={"salesforce_account_id": "001000000000002"}),
        _acc("cus_3", "Gotham Shipping", "wayne.com"),  # subsidiary on the parent's domain
        _acc("cus_4", "Kramerica", None, "+1 415 555 0300")])  # the HQ-phone trap
    with engine.connect() as conn:
        acme, _ = _account_of(conn, "salesforce.acme", "001000000000001AAA")
        wayne, _ = _account_of(conn, "salesforce.acme", "001000000000002AAA")
        vandelay, _ = _account_of(conn, "salesforce.acme", "001000000000003AAA")
        assert _account_of(conn, "stripe.acme", "cus_1") == (acme, "domain")
        assert _account_of(conn, "stripe.acme", "cus_2") == (wayne, "id")
        gotham, rule = _account_of(conn, "stripe.acme", "cus_3")
        assert gotham not in (acme, wayne)
        assert rule == "new"
        kramerica, _ = _account_of(conn, "stripe.acme", "cus_4")
        assert kramerica != vandelay
        reviews = conn.execute(select(match_reviews.c.candidate_id, match_reviews.c.rule,
                                      match_reviews.c.status)).all()
        assert (wayne, "domain_name_mismatch", "open") in reviews
        # Two Accounts on wayne.com, explained by the review row: not a matching defect.
        assert entities.unexplained_duplicate_domains(conn, "acme") == 0
        # Survivorship: Salesforce outranks Stripe for this customer, so its name stays.
        assert conn.execute(select(accounts.c.name).where(accounts.c.id == acme)
                            ).scalar_one() == "Acme Inc."
    assert result.created == 2
    assert result.reviews >= 1


def test_a_bridging_record_merges_with_history_and_unmerge_restores(engine: Engine) -> None:
    _setup(engine)
    _run(engine, "salesforce.acme", [_acc("001000000000001AAA", "Acme", None, None)])
    _run(engine, "stripe.acme", [_acc("cus_1", "Acme Europe", "acme.eu")])
    with engine.connect() as conn:
        first, _ = _account_of(conn, "salesforce.acme", "001000000000001AAA")
        second, _ = _account_of(conn, "stripe.acme", "cus_1")
    assert first != second
    contact = TypedRecord("contacts", "003A", T0, first_name="Jo", last_name="Ng",
                          email="jo@acme.eu", account_ref=None)
    _run(engine, "stripe.acme", [contact])
    # A Zendesk organisation with both the domain and the Salesforce id bridges the two.
    result = _run(engine, "zendesk.acme", [_acc("org_1", "Acme Europe", "acme.eu",
                                                salesforce_account_id="001000000000001")])
    assert result.merged == 1
    with engine.connect() as conn:
        assert _account_of(conn, "stripe.acme", "cus_1")[0] == first
        merge = conn.execute(select(entity_merges)).one()._mapping
        assert (merge["survivor_id"], merge["absorbed_id"]) == (first, second)
        assert conn.execute(select(accounts.c.merged_into).where(accounts.c.id == second)
                            ).scalar_one() == first
        assert conn.execute(select(contacts.c.account_id)).scalar_one() == first
    with engine.begin() as conn:
        entities.unmerge(conn, merge["id"], utcnow())
    with engine.connect() as conn:
        assert _account_of(conn, "stripe.acme", "cus_1") == (second, "unmerged")
        assert conn.execute(select(accounts.c.merged_into).where(accounts.c.id == second)
                            ).scalar_one() is None
        assert conn.execute(select(contacts.c.account_id)).scalar_one() == second


def test_tickets_link_by_requester_email_and_the_contacts_account(engine: Engine) -> None:
    _setup(engine)
    _run(engine, "salesforce.acme", [_acc("001000000000001AAA", "Acme", "acme.com")])
    _run(engine, "salesforce.acme", [TypedRecord(
        "contacts", "003000000000001AAA", T0, first_name="Jane", last_name="Doe",
        email="jane@acme.com", account_ref="001000000000001AAA")])
    _run(engine, "zendesk.acme", [
        TypedRecord("tickets", "t1", T0, name="Help", requester_email="JANE@acme.com"),
        TypedRecord("tickets", "t2", T0, name="Other", email="nobody@elsewhere.org")])
    with engine.connect() as conn:
        rows = conn.execute(
            select(interactions.c.external_id, contact_links.c.rule, account_links.c.rule)
            .outerjoin(contact_links, contact_links.c.interaction_id == interactions.c.id)
            .outerjoin(account_links, account_links.c.interaction_id == interactions.c.id)
            .where(interactions.c.interaction_type == "tickets")
            .order_by(interactions.c.external_id)).all()
    assert [tuple(r) for r in rows] == [("t1", "email", "contact_account"), ("t2", None, None)]


def _partition(conn: Connection) -> set[frozenset[str]]:
    groups: dict[int, set[str]] = defaultdict(set)
    for external_id, account_id in conn.execute(
            select(interactions.c.external_id, account_links.c.account_id)
            .join(account_links, account_links.c.interaction_id == interactions.c.id)):
        groups[account_id].add(external_id)
    return {frozenset(g) for g in groups.values()}


def test_rematch_gives_the_same_entities_whatever_the_arrival_order(engine: Engine) -> None:
    _setup(engine)
    batches = [("salesforce.acme", [_acc("001000000000001AAA", "Acme Inc", "acme.com"),
                                    _acc("001000000000002AAA", "Globex", None, "+14155550100")]),
               ("stripe.acme", [_acc("cus_1", "ACME", "www.acme.com"),
                                _acc("cus_2", "Globex Corp", None, "+1 415 555 0100"),
                                _acc("cus_3", "Initech", "initech.com")])]
    for integration, records in reversed(batches):
        _run(engine, integration, records)
    with engine.connect() as conn:
        before = _partition(conn)
    with engine.begin() as conn:
        rematch_customer(conn, "acme")
    with engine.connect() as conn:
        assert _partition(conn) == before
    report = rematch_all(engine)
    assert report.moved == 0
    assert report.accounts_after == report.accounts_before == 3
    assert frozenset({"001000000000001AAA", "cus_1"}) in before
    assert frozenset({"001000000000002AAA", "cus_2"}) in before


def test_matching_never_crosses_customers(engine: Engine) -> None:
    for customer in ("acme", "globex"):
        _setup(engine, customer)
        _run(engine, f"salesforce.{customer}", [_acc("001000000000001AAA", "Acme", "acme.com")],
             customer)
    _run(engine, "stripe.globex", [_acc("cus_1", "Acme", "acme.com",
                                        salesforce_account_id="001000000000001")], "globex")
    with engine.connect() as conn:
        owners = conn.execute(select(interactions.c.customer_id, accounts.c.customer_id)
                              .join(account_links,
                                    account_links.c.interaction_id == interactions.c.id)
                              .join(accounts, accounts.c.id == account_links.c.account_id)).all()
    assert owners
    assert all(a == b for a, b in owners)


def test_akita_match_writes_entity_rule_and_score(tmp_path: Path) -> None:
    source = tmp_path / "export.csv"
    source.write_text(
        "source,id,Company,site,Tel\n"
        "salesforce,1,Acme Inc.,www.acme.com,+1 415 555 0100\n"
        "hubspot,9,ACME,https://acme.com/,\n"
        "hubspot,10,Kramerica,,+1 415 555 0100\n", encoding="utf-8")
    out = tmp_path / "matched.csv"
    result = CliRunner().invoke(match, ["accounts", "--input", str(source), "--output", str(out),
                                        "--columns", "name=Company,website=site,phone=Tel"])
    assert result.exit_code == 0, result.output
    assert "3 rows → 2 accounts" in result.output
    with out.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["entity_id"] == rows[1]["entity_id"] != rows[2]["entity_id"]
    assert {r["match_rule"] for r in rows[:2]} == {"new", "domain"}
    assert all(float(r["match_score"]) > 0 for r in rows)
    assert rows[0]["Company"] == "Acme Inc."  # input columns are kept


def test_akita_match_refuses_unknown_columns(tmp_path: Path) -> None:
    source = tmp_path / "export.csv"
    source.write_text("a,b\n1,2\n", encoding="utf-8")
    result = CliRunner().invoke(match, ["contacts", "--input", str(source), "--output",
                                        str(tmp_path / "o.csv"), "--columns", "email=Mail"])
    assert result.exit_code != 0
    assert "no column(s) Mail" in result.output


def test_akita_match_explains_a_pair(tmp_path: Path) -> None:
    source = tmp_path / "export.csv"
    source.write_text("name,website,phone\n"
                      "Wayne Enterprises,wayne.com,+1 415 555 0100\n"
                      "Gotham Shipping,www.wayne.com,+1 415 555 0100\n"
                      "Kramerica,,+1 415 555 0100\n", encoding="utf-8")
    result = CliRunner().invoke(match, ["accounts", "--input", str(source), "--explain", "1,2"])
    assert result.exit_code == 0, result.output
    assert "names clearly differ" in result.output
    assert "review band" in result.output
    result = CliRunner().invoke(match, ["accounts", "--input", str(source), "--explain", "1,3"])
    assert "different entities" in result.output
    assert "'phone': True" in result.output
