"""A partition of ``salesforce/*`` materialised through Dagster against the emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dagster import AssetKey, DagsterInstance
from sqlalchemy import Engine, func, select

from akita_pipelines.db.schema import accounts, contacts
from akita_pipelines.defs.definitions import build_definitions
from akita_pipelines.defs.resources import AkitaDatabase
from akita_pipelines.sandbox.server import Sandbox, start_sandbox
from akita_pipelines_tests.integration.conftest import register_salesforce


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with start_sandbox(base_port=0, seed=5) as running:
        yield running


def _materialization(instance: DagsterInstance, key: AssetKey, partition: str) -> dict[str, object]:
    event = instance.get_latest_materialization_event(key)
    assert event is not None
    mat = event.asset_materialization
    assert mat is not None
    assert mat.partition == partition
    return {k: v.value for k, v in mat.metadata.items()}


def test_sync_job_materialises_a_partition_end_to_end(sqlite_engine: Engine, sandbox: Sandbox,
                                                       instance: DagsterInstance) -> None:
    integration = register_salesforce(sqlite_engine, sandbox)
    db = AkitaDatabase(url=sqlite_engine.url.render_as_string(hide_password=False))
    defs = build_definitions(database=db)
    instance.add_dynamic_partitions("salesforce_integrations", [integration])
    job = defs.resolve_job_def("salesforce_sync")
    result = job.execute_in_process(
        instance=instance, partition_key=integration,
        asset_selection=[AssetKey(["salesforce", "accounts"]),
                         AssetKey(["salesforce", "contacts"])],
        tags={"akita/trigger": "sensor"})
    assert result.success
    meta = _materialization(instance, AssetKey(["salesforce", "accounts"]), integration)
    n_accounts = len(sandbox.emulators["salesforce"].records("Account", include_deleted=True))
    assert meta["records_fetched"] == n_accounts
    assert meta["created"] > 0
    assert meta["cursor_before"] == "—"
    assert meta["cursor_after"] != "—"
    contact_meta = _materialization(instance, AssetKey(["salesforce", "contacts"]), integration)
    assert contact_meta["records_processed"] > 0

    # A manual re-sync of the same partition fetches only the records at the cursor.
    again = job.execute_in_process(instance=instance, partition_key=integration,
                                   asset_selection=[AssetKey(["salesforce", "accounts"])])
    assert again.success
    meta = _materialization(instance, AssetKey(["salesforce", "accounts"]), integration)
    assert meta["records_fetched"] < n_accounts
    assert meta["created"] == 0

    with sqlite_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(accounts)).scalar_one() > 0
        assert conn.execute(select(func.count()).select_from(contacts)).scalar_one() > 0


def test_matched_tables_rematch_and_their_checks_pass(sqlite_engine: Engine, sandbox: Sandbox,
                                                      instance: DagsterInstance) -> None:
    from dagster import AssetSelection, Definitions, define_asset_job

    from akita_pipelines.sync.service import sync_object

    integration = register_salesforce(sqlite_engine, sandbox)
    for kind in ("accounts", "contacts"):
        sync_object(sqlite_engine, integration, kind)
    with sqlite_engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(accounts)).scalar_one()
    db = AkitaDatabase(url=sqlite_engine.url.render_as_string(hide_password=False))
    defs = build_definitions(database=db)
    job = define_asset_job("rematch", selection=AssetSelection.assets("accounts", "contacts"))
    full = Definitions.merge(defs, Definitions(jobs=[job]))
    result = full.resolve_job_def("rematch").execute_in_process(instance=instance)
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"accounts_unique_domain": True, "contacts_with_account": True,
                      "quarantine_rate": True}
    meta = _materialization(instance, AssetKey("accounts"), None)  # type: ignore[arg-type]
    assert meta["accounts_before"] == before == meta["accounts"]  # same rules, same result
