"""A steward's decisions on a real database: accept, reject, merge, unmerge and detach each
survive a later sync of the same records (what a full re-sync does) and a re-match; the
history lists them; the ``akita`` commands answer unknown ids with a clear error."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select

from akita_pipelines.cli import main
from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.types import Customer, Integration, TypedRecord
from akita_pipelines.db import decisions
from akita_pipelines.db.engine import make_engine
from akita_pipelines.db.integrations import save_customer, save_integration
from akita_pipelines.db.schema import account_links, interactions, match_reviews
from akita_pipelines.sync import steward
from akita_pipelines.sync.process import ProcessResult, process_batch
from akita_pipelines.sync.rematch import rematch

T0 = datetime(2026, 1, 1, tzinfo=UTC)

SALESFORCE = [
    TypedRecord("accounts", "001A", T0, name="Acme Inc.", website="www.acme.com"),
    TypedRecord("accounts", "001W", T0, name="Wayne Enterprises", website="wayne.com"),
    TypedRecord("accounts", "001V", T0, name="Vandelay Industries", phone="+1 415 555 0300"),
]
STRIPE = [
    TypedRecord("accounts", "cus_A", T0, name="ACME Corporation", website="https://acme.com/"),
    # A subsidiary on its parent's domain: the review band, not merged.
    TypedRecord("accounts", "cus_G", T0, name="Gotham Shipping", website="wayne.com"),
]


def _sync(engine: Engine) -> None:
    """Every record again, as a full re-sync hands them to the processor."""
    for integration, records in (("salesforce.acme", SALESFORCE), ("stripe.acme", STRIPE)):
        with engine.begin() as conn:
            process_batch(conn, customer_id="acme", integration_id=integration,
                          records=records, now=utcnow(),
                          result=ProcessResult(integration, "accounts"))


def _setup(engine: Engine) -> None:
    now = utcnow()
    with engine.begin() as conn:
        save_customer(conn, Customer(id="acme", name="Acme",
                                     settings={"source_priority": ["salesforce"]}), now)
        for provider in ("salesforce", "stripe"):
            save_integration(conn, Integration(id=f"{provider}.acme", customer_id="acme",
                                               provider=provider, config={"base_url": "http://x"}),
                             {}, now)
    _sync(engine)


def _groups(engine: Engine) -> set[frozenset[str]]:
    groups: dict[int, set[str]] = defaultdict(set)
    with engine.connect() as conn:
        for external_id, account_id in conn.execute(
                select(interactions.c.external_id, account_links.c.account_id)
                .join(account_links, account_links.c.interaction_id == interactions.c.id)):
            groups[account_id].add(external_id)
    return {frozenset(g) for g in groups.values()}


def _entity(engine: Engine, external_id: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(
            select(account_links.c.account_id)
            .join(interactions, interactions.c.id == account_links.c.interaction_id)
            .where(interactions.c.external_id == external_id)).scalar_one())


def _record(engine: Engine, external_id: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(interactions.c.id).where(
            interactions.c.external_id == external_id)).scalar_one())


def _review(engine: Engine, external_id: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(
            select(match_reviews.c.id)
            .join(interactions, interactions.c.id == match_reviews.c.interaction_id)
            .where(interactions.c.external_id == external_id,
                   match_reviews.c.status == "open")).scalar_one())


def _survives(engine: Engine, expected: frozenset[str], together: bool) -> None:
    """The decision holds after a full re-sync and after a re-match, which moves nothing."""
    for step in ("sync", "rematch", "sync again"):
        if step == "rematch":
            assert rematch(engine).moved == 0, "the decision was already applied"
        else:
            _sync(engine)
        if together:
            assert expected in _groups(engine), step
        else:
            assert all(len(g & expected) <= 1 for g in _groups(engine)), step


def _actions(engine: Engine, external_id: str) -> list[str]:
    return [row["action"] for row in steward.history(engine, "accounts",
                                                     _entity(engine, external_id))]


def test_an_accepted_review_merges_and_stays_merged(engine: Engine) -> None:
    _setup(engine)
    assert frozenset({"001W"}) in _groups(engine)
    outcome = steward.accept_review(engine, _review(engine, "cus_G"), actor="sam",
                                    reason="Gotham is Wayne's shipping arm")
    assert outcome.entity_id == _entity(engine, "001W") == _entity(engine, "cus_G")
    _survives(engine, frozenset({"001W", "cus_G"}), together=True)
    assert "accept" in _actions(engine, "cus_G")
    with engine.connect() as conn:
        assert decisions.open_review_counts(conn) == {}


def test_a_rejected_review_stays_apart_and_is_not_asked_again(engine: Engine) -> None:
    _setup(engine)
    with engine.connect() as conn:
        assert decisions.open_review_counts(conn) == {("acme", "accounts"): 1}
    steward.reject_review(engine, _review(engine, "cus_G"), actor="sam", reason="subsidiary")
    _survives(engine, frozenset({"001W", "cus_G"}), together=False)
    with engine.connect() as conn:
        assert decisions.open_review_counts(conn) == {}
    assert "reject" in _actions(engine, "cus_G")
    with pytest.raises(steward.StewardError, match="no review"):
        steward.reject_review(engine, 10_000, actor="sam")


def test_merged_entities_stay_merged_and_unmerge_splits_them_for_good(engine: Engine) -> None:
    _setup(engine)
    acme, vandelay = _entity(engine, "001A"), _entity(engine, "001V")
    steward.merge(engine, "accounts", acme, vandelay, actor="sam", reason="same company")
    merged = frozenset({"001A", "cus_A", "001V"})
    _survives(engine, merged, together=True)
    assert "merge" in _actions(engine, "001V")
    # The re-match rebuilt the entities (merge rows go with them): the steward's history
    # still knows the parts.
    steward.unmerge(engine, "accounts", _entity(engine, "001V"), actor="sam",
                    reason="not the same after all")
    groups = _groups(engine)
    assert {frozenset({"001A", "cus_A"}), frozenset({"001V"})} <= groups
    _survives(engine, frozenset({"001A", "001V"}), together=False)
    _survives(engine, frozenset({"001A", "cus_A"}), together=True)
    # A merge undone before any re-match: the merge row restores the absorbed entity.
    steward.merge(engine, "accounts", _entity(engine, "001A"), _entity(engine, "001W"),
                  actor="sam")
    assert frozenset({"001A", "cus_A", "001W"}) in _groups(engine)
    steward.unmerge(engine, "accounts", _entity(engine, "001W"), actor="sam",
                    reason="Wayne is not Acme")
    assert {frozenset({"001A", "cus_A"}), frozenset({"001W"})} <= _groups(engine)
    _survives(engine, frozenset({"001A", "001W"}), together=False)
    assert _actions(engine, "001W")[-1] == "unmerge"
    with pytest.raises(steward.StewardError, match="no merge to undo"):
        steward.unmerge(engine, "accounts", _entity(engine, "001W"), actor="sam")


def test_a_detached_record_stays_apart(engine: Engine) -> None:
    _setup(engine)
    assert frozenset({"001A", "cus_A"}) in _groups(engine)
    steward.unmerge(engine, "accounts", _entity(engine, "cus_A"),
                    record=_record(engine, "cus_A"), actor="sam", reason="a reseller")
    _survives(engine, frozenset({"001A", "cus_A"}), together=False)
    history = steward.history(engine, "accounts", _entity(engine, "cus_A"))
    assert [(h["action"], h["actor"], h["reason"]) for h in history] == [
        ("detach", "sam", "a reseller")]
    lines = steward.explain(engine, "accounts", _entity(engine, "cus_A"),
                            other=_entity(engine, "001A"))
    assert any("detach by sam" in line and "kept apart" in line for line in lines)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[CliRunner, Engine]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("AKITA_DATABASE_URL", url)
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    engine = make_engine(url)
    _setup(engine)
    return runner, engine


def test_the_steward_commands(cli: tuple[CliRunner, Engine]) -> None:
    runner, engine = cli
    listed = runner.invoke(main, ["reviews", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows: list[dict[str, Any]] = json.loads(listed.output)
    assert [(r["rule"], r["candidate_name"]) for r in rows] == [
        ("domain_name_mismatch", "Wayne Enterprises")]
    accepted = runner.invoke(main, ["reviews", "accept", str(rows[0]["id"]), "--by", "sam"])
    assert accepted.exit_code == 0, accepted.output
    assert runner.invoke(main, ["reviews", "list"]).output.strip() == "no open reviews"
    again = runner.invoke(main, ["reviews", "reject", str(rows[0]["id"])])
    assert again.exit_code != 0
    assert "is merged already" in again.output
    wayne = _entity(engine, "cus_G")
    history = runner.invoke(main, ["entities", "history", str(wayne)])
    assert history.exit_code == 0
    assert "accept" in history.output
    assert "sam" in history.output
    explained = runner.invoke(main, ["entities", "explain", str(wayne)])
    assert "accept by sam" in explained.output
    assert "held together" in explained.output
    report = json.loads(runner.invoke(main, ["rematch", "--json"]).output)
    assert (report["moved"], report["open_reviews"]) == (0, 0)
    for args, message in (
            (["reviews", "accept", "999"], "no review 999"),
            (["entities", "merge", str(wayne), "424242"], "no account 424242"),
            (["entities", "unmerge", "424242"], "no account 424242"),
            (["entities", "history", "424242", "--kind", "contacts"], "no contact 424242"),
            (["entities", "explain", "424242"], "no account 424242"),
            (["rematch", "--customer", "nobody"], "no customer 'nobody'")):
        result = runner.invoke(main, args)
        assert result.exit_code != 0, args
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_rematch_dry_run_reports_what_would_move_and_writes_nothing(
        cli: tuple[CliRunner, Engine]) -> None:
    runner, engine = cli
    # A decision stored but not applied yet: the next re-match moves the records it joins.
    with engine.begin() as conn:
        decisions.record(conn, customer_id="acme", kind="accounts", action="merge",
                         link="must", pairs=[(_record(engine, "001V"), _record(engine, "cus_G"))],
                         actor="sam", reason=None, now=utcnow())
    before = _groups(engine)
    dry = runner.invoke(main, ["rematch", "--customer", "acme", "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    report = json.loads(dry.output)
    assert report["dry_run"] is True
    assert report["moved"] == 2  # 001V and cus_G now share one entity
    assert {m["interaction_id"] for m in report["moves"]} == {
        _record(engine, e) for e in ("001V", "cus_G")}
    assert _groups(engine) == before
    text = runner.invoke(main, ["rematch", "--customer", "acme"])
    assert text.exit_code == 0, text.output
    assert "moved 2" in text.output
    assert frozenset({"001V", "cus_G"}) in _groups(engine)
    assert "moved 0" in runner.invoke(main, ["rematch"]).output


CONTACTS = {
    "salesforce.acme": [TypedRecord("contacts", "003J", T0, first_name="Jane", last_name="Doe",
                                    email="jane@acme.com")],
    # The same mailbox, another person's name: the review band.
    "stripe.acme": [TypedRecord("contacts", "cus_J", T0, first_name="Joan", last_name="Dole",
                                email="jane@acme.com")],
}


def _sync_contacts(engine: Engine) -> None:
    for integration, records in CONTACTS.items():
        with engine.begin() as conn:
            process_batch(conn, customer_id="acme", integration_id=integration,
                          records=records, now=utcnow(),
                          result=ProcessResult(integration, "contacts"))


@pytest.mark.parametrize("decision", ["accept", "reject"])
def test_contact_reviews_are_remembered(engine: Engine, decision: str) -> None:
    _setup(engine)
    _sync_contacts(engine)
    with engine.connect() as conn:
        assert decisions.open_review_counts(conn) == {("acme", "accounts"): 1,
                                                      ("acme", "contacts"): 1}
    review = next(r for r in steward.review_rows(engine) if r["kind"] == "contacts")
    act = steward.accept_review if decision == "accept" else steward.reject_review
    act(engine, review["id"], actor="sam")
    jane, joan = _record(engine, "003J"), _record(engine, "cus_J")
    for step in ("sync", "rematch", "sync again"):
        if step == "rematch":
            assert rematch(engine).moved == 0
        else:
            _sync(engine)
            _sync_contacts(engine)
        with engine.connect() as conn:
            links = decisions.links_of(conn, "contacts", [jane, joan])
            same = links[jane]["entity_id"] == links[joan]["entity_id"]
            assert same is (decision == "accept"), step
            assert ("acme", "contacts") not in decisions.open_review_counts(conn)


def test_an_automatic_merge_is_in_the_history(engine: Engine) -> None:
    _setup(engine)
    with engine.begin() as conn:
        save_integration(conn, Integration(id="zendesk.acme", customer_id="acme",
                                           provider="zendesk", config={"base_url": "http://x"}),
                         {}, utcnow())
    batches = [
        ("salesforce.acme", TypedRecord("accounts", "001000000000009AAA", T0, name="Initech")),
        ("stripe.acme", TypedRecord("accounts", "cus_I", T0, name="Initech Europe",
                                    website="initech.eu")),
        # Both the domain and the Salesforce id: it bridges the two Accounts.
        ("zendesk.acme", TypedRecord("accounts", "org_I", T0, name="Initech Europe",
                                     website="initech.eu",
                                     fields={"salesforce_account_id": "001000000000009"})),
    ]
    for integration, record in batches:
        with engine.begin() as conn:
            process_batch(conn, customer_id="acme", integration_id=integration,
                          records=[record], now=utcnow(),
                          result=ProcessResult(integration, "accounts"))
    assert frozenset({"001000000000009AAA", "cus_I", "org_I"}) in _groups(engine)
    rows = steward.history(engine, "accounts", _entity(engine, "cus_I"))
    assert [(r["action"], r["actor"], r["interaction_id"]) for r in rows] == [
        ("auto_merge", "matcher", _record(engine, "org_I"))]
    assert "matched both" in rows[0]["reason"]
