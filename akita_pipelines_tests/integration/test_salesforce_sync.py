"""A Salesforce integration synced end to end against the emulator over real HTTP."""

from __future__ import annotations

from typing import Any

import requests
from sqlalchemy import Engine, func, select

from akita_pipelines.db import state
from akita_pipelines.db.integrations import DatabaseCredentialStore
from akita_pipelines.db.schema import (
    account_links,
    accounts,
    contact_links,
    contacts,
    integration_objects,
    interactions,
    sync_runs,
)
from akita_pipelines.providers.http import HttpClient
from akita_pipelines.sandbox.server import Sandbox
from akita_pipelines.sync.service import sync_object
from akita_pipelines_tests.integration.conftest import register_salesforce


def _count(engine: Engine, table: Any, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where))
                   .scalar_one())


def test_first_sync_stores_matches_and_links_everything(engine: Engine, sandbox: Sandbox) -> None:
    integration = register_salesforce(engine, sandbox)
    emulator = sandbox.emulators["salesforce"]
    first = sync_object(engine, integration, "accounts")
    expected_accounts = emulator.records("Account", include_deleted=True)
    assert first.retrieved.records_fetched == len(expected_accounts)
    assert _count(engine, interactions, interactions.c.interaction_type == "accounts") == len(
        expected_accounts)
    live = [a for a in expected_accounts if not a["IsDeleted"]]
    assert _count(engine, account_links) == len(live)
    # Every live account belongs to exactly one matched Account; accounts sharing a registered
    # domain share one.
    assert 0 < _count(engine, accounts) <= len(live)

    second = sync_object(engine, integration, "contacts")
    expected_contacts = emulator.records("Contact", include_deleted=True)
    assert second.retrieved.records_fetched == len(expected_contacts)
    assert _count(engine, contact_links) == len([c for c in expected_contacts
                                                if not c["IsDeleted"]])
    # Contacts whose Salesforce AccountId is a synced account are attached to an Account.
    assert _count(engine, contacts, contacts.c.account_id.is_not(None)) > 0

    with engine.connect() as conn:
        obj = state.get_object(conn, integration, "accounts")
        runs = conn.execute(select(sync_runs.c.status, sync_runs.c.cursor_after)).all()
    assert obj is not None
    assert obj.last_synced_at is not None
    assert obj.cursor == max(_stamp(a) for a in expected_accounts)
    assert {r.status for r in runs} == {"succeeded"}


def _stamp(record: dict[str, Any]) -> Any:
    from akita_pipelines.core.clock import parse_datetime

    return parse_datetime(record["SystemModstamp"])


def test_second_sync_fetches_only_what_changed(engine: Engine, sandbox: Sandbox) -> None:
    integration = register_salesforce(engine, sandbox)
    emulator = sandbox.emulators["salesforce"]
    full = sync_object(engine, integration, "contacts")
    touched = emulator.touch("Contact", count=3)
    incremental = sync_object(engine, integration, "contacts")
    # The closed lower bound re-reads the records at the cursor (and the lookback window);
    # only the three changed ones are processed again.
    assert incremental.retrieved.records_fetched < 10 < full.retrieved.records_fetched
    assert incremental.processed.processed == 3
    with engine.connect() as conn:
        stored = conn.execute(select(interactions.c.external_id, interactions.c.source_updated_at)
                              .where(interactions.c.external_id.in_(touched))).all()
    current = {r["Id"]: _stamp(r) for r in emulator.records("Contact")}
    assert {r.external_id: r.source_updated_at for r in stored} == {i: current[i] for i in touched}


def test_expired_token_is_refreshed_mid_sync_and_persisted(engine: Engine,
                                                           sandbox: Sandbox) -> None:
    integration = register_salesforce(engine, sandbox,
                                      settings={"types": {"contacts": {"page_size": 200}}})
    emulator = sandbox.emulators["salesforce"]
    session = requests.Session()
    pages = {"n": 0}

    def expire_after_first_page(response: requests.Response, *args: Any, **kw: Any) -> None:
        if "/query" in response.url:
            pages["n"] += 1
            if pages["n"] == 1:
                emulator.expire_tokens()

    session.hooks["response"].append(expire_after_first_page)
    result = sync_object(engine, integration, "contacts", http=HttpClient(session=session))
    assert result.retrieved.records_fetched == len(emulator.records("Contact",
                                                                    include_deleted=True))
    assert result.retrieved.pages >= 2
    assert emulator.stats["token_refreshes"] == 2  # the first token, then one after expiry
    stored = DatabaseCredentialStore(engine, integration).load()
    assert stored["access_token"]
    with engine.connect() as conn:
        failures = conn.execute(select(integration_objects.c.consecutive_failures)).scalars()
        assert set(failures) == {0}
