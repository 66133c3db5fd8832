"""What a successful sync and a customer's new settings leave in the database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select

from akita_pipelines.core.types import Customer
from akita_pipelines.db import state
from akita_pipelines.db.schema import sync_runs
from akita_pipelines.onboarding import add_customer
from akita_pipelines.sandbox.server import Sandbox, start_sandbox
from akita_pipelines.sync.service import sync_object
from akita_pipelines_tests.integration.conftest import register_salesforce


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with start_sandbox(base_port=0, seed=5, providers=["salesforce"]) as running:
        yield running


def test_a_successful_sync_records_what_it_fetched(sqlite_engine: Engine,
                                                   sandbox: Sandbox) -> None:
    integration = register_salesforce(sqlite_engine, sandbox)
    result = sync_object(sqlite_engine, integration, "accounts")
    assert result.retrieved.records_fetched > 0
    with sqlite_engine.connect() as conn:
        row = conn.execute(select(sync_runs.c.status, sync_runs.c.records_fetched,
                                  sync_runs.c.pages)).one()
    assert row.status == "succeeded"
    assert row.records_fetched == result.retrieved.records_fetched
    assert row.pages == result.retrieved.pages > 0


def test_a_customers_new_frequency_reaches_its_integration_objects(
        sqlite_engine: Engine, sandbox: Sandbox) -> None:
    integration = register_salesforce(sqlite_engine, sandbox)
    sync_object(sqlite_engine, integration, "accounts")
    with sqlite_engine.connect() as conn:
        before = state.get_object(conn, integration, "accounts")
    assert before is not None
    assert before.frequency_per_day == 24.0  # the provider's default
    # `akita registry load` with the customer alone: a customer-wide setting.
    add_customer(sqlite_engine, Customer(id="acme", name="Acme",
                                         settings={"sync_frequency_per_day": 2}))
    with sqlite_engine.connect() as conn:
        after = state.get_object(conn, integration, "accounts")
    assert after is not None
    assert after.frequency_per_day == 2.0
    assert before.last_synced_at is not None
    assert after.next_due_at is not None
    assert (after.next_due_at - before.last_synced_at).total_seconds() == pytest.approx(12 * 3600)
