"""What the Dagster UI shows of a run: backfills re-read history, the matched tables are live,
classified failures are clean and the objects they skip are blamed on them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import AssetKey, DagsterEventType, DagsterInstance, instance_for_test
from sqlalchemy import Engine

from akita_pipelines.db import state
from akita_pipelines.defs.definitions import build_definitions
from akita_pipelines.defs.resources import AkitaDatabase
from akita_pipelines.sandbox.server import Sandbox
from akita_pipelines.sync.crashes import record_crashed_run
from akita_pipelines_tests.integration.conftest import register_salesforce

ROOT = Path(__file__).resolve().parents[2]
ACCOUNTS = AssetKey(["salesforce", "accounts"])
CONTACTS = AssetKey(["salesforce", "contacts"])


def _failure_description(result: Any) -> str:
    """What a failed run's step failure tells the user (it must have failed)."""
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    data = failure.step_failure_data.user_failure_data
    assert data is not None
    return str(data.description or "")


def _job(engine: Engine, instance: DagsterInstance, integration: str) -> Any:
    db = AkitaDatabase(url=engine.url.render_as_string(hide_password=False))
    instance.add_dynamic_partitions("salesforce_integrations", [integration])
    return build_definitions(database=db).resolve_job_def("salesforce_sync")


def _metadata(instance: DagsterInstance, key: AssetKey) -> dict[str, Any]:
    event = instance.get_latest_materialization_event(key)
    assert event is not None
    assert event.asset_materialization is not None
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_backfill_run_without_config_rereads_history_from_its_start(
        sqlite_engine: Engine, sandbox: Sandbox, instance: DagsterInstance) -> None:
    integration = register_salesforce(sqlite_engine, sandbox,
                                      settings={"history_start": "2020-01-01"})
    job = _job(sqlite_engine, instance, integration)
    assert job.execute_in_process(instance=instance, partition_key=integration,
                                  asset_selection=[ACCOUNTS]).success
    incremental = _metadata(instance, ACCOUNTS)
    # What the UI's backfill dialog launches: the backfill tag, no run config.
    assert job.execute_in_process(instance=instance, partition_key=integration,
                                  asset_selection=[ACCOUNTS],
                                  tags={"dagster/backfill": "abcdefgh"}).success
    backfill = _metadata(instance, ACCOUNTS)
    assert backfill["trigger"] == "backfill"
    assert backfill["full"] is True
    assert backfill["history_window"].startswith("2020-01-01")
    assert backfill["records_fetched"] == incremental["records_fetched"]  # everything again
    # A start date chosen with a flat tag (the launch dialogs' "Add tag").
    assert job.execute_in_process(instance=instance, partition_key=integration,
                                  asset_selection=[ACCOUNTS],
                                  tags={"dagster/backfill": "b2", "akita/since": "2023-06-01"}
                                  ).success
    assert _metadata(instance, ACCOUNTS)["history_window"].startswith("2023-06-01")


def test_a_bad_since_tag_is_a_clean_config_failure(
        sqlite_engine: Engine, sandbox: Sandbox, instance: DagsterInstance) -> None:
    integration = register_salesforce(sqlite_engine, sandbox)
    job = _job(sqlite_engine, instance, integration)
    result = job.execute_in_process(instance=instance, partition_key=integration,
                                    asset_selection=[ACCOUNTS], raise_on_error=False,
                                    tags={"akita/since": "last tuesday"})
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    data = failure.step_failure_data
    assert data.user_failure_data is not None
    assert "must be a date like 2024-01-31" in (data.user_failure_data.description or "")


def test_a_sync_reports_the_matched_tables_with_counts_and_checks(
        sqlite_engine: Engine, sandbox: Sandbox, instance: DagsterInstance) -> None:
    integration = register_salesforce(sqlite_engine, sandbox)
    job = _job(sqlite_engine, instance, integration)
    result = job.execute_in_process(instance=instance, partition_key=integration,
                                    asset_selection=[ACCOUNTS, CONTACTS])
    assert result.success
    # Newer than its source's event, so the UI does not call the matched table unsynced.
    matched_at = instance.fetch_materializations(AssetKey("accounts"), limit=1).records
    source_at = instance.fetch_materializations(ACCOUNTS, limit=1).records
    assert matched_at[0].storage_id > source_at[0].storage_id
    accounts = _metadata(instance, AssetKey("accounts"))
    assert accounts["created"] > 0
    assert {"matched", "merged", "open_reviews", "records_processed"} <= set(accounts)
    assert accounts["integration"] == integration
    assert _metadata(instance, AssetKey("contacts"))["created"] > 0
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    # The matched tables' checks, evaluated on the sync's events (plus the synced assets'
    # own on_time checks, which a run that selects them by asset runs too).
    assert checks == {"accounts_unique_domain": True, "quarantine_rate": True,
                      "contacts_with_account": True, "on_time": True}


def test_matched_lineage_reaches_custom_types_of_every_provider(sqlite_engine: Engine) -> None:
    from akita_pipelines.core.types import Customer, Integration
    from akita_pipelines.onboarding import add_customer, add_integration

    add_customer(sqlite_engine, Customer(id="acme", name="Acme"))
    add_integration(sqlite_engine, Integration(
        id="files.acme", customer_id="acme", provider="files",
        config={"inbox": "/nonexistent", "streams": {
            "accounts": {"pattern": "a*.csv", "primary_key": "id", "fields": {"name": "N"}},
            "contacts": {"pattern": "c*.csv", "primary_key": "id",
                         "fields": {"email": "E"}}}}), {})
    db = AkitaDatabase(url=sqlite_engine.url.render_as_string(hide_password=False))
    graph = build_definitions(database=db).resolve_asset_graph()
    assert AssetKey(["files", "accounts"]) in graph.get(AssetKey("accounts")).parent_keys
    assert AssetKey(["files", "contacts"]) in graph.get(AssetKey("contacts")).parent_keys
    assert AssetKey(["salesforce", "accounts"]) in graph.get(AssetKey("accounts")).parent_keys


def test_revoked_grant_is_a_clean_failure_and_skipped_types_blame_it(
        sqlite_engine: Engine, sandbox: Sandbox, instance: DagsterInstance) -> None:
    integration = register_salesforce(sqlite_engine, sandbox)
    emulator = sandbox.emulators["salesforce"]
    emulator.refresh_tokens.clear()  # the customer revoked the connected app
    emulator.tokens.clear()
    job = _job(sqlite_engine, instance, integration)
    result = job.execute_in_process(instance=instance, partition_key=integration,
                                    asset_selection=[ACCOUNTS, CONTACTS], raise_on_error=False)
    assert not result.success
    failures = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    assert len(failures) == 1
    data = failures[0].step_failure_data
    assert data.error is not None
    assert data.error.cause is None
    assert data.user_failure_data is not None
    meta = {k: v.value for k, v in data.user_failure_data.metadata.items()}
    assert meta["failure_class"] == "config"
    assert "AuthError" in meta["reason"]
    assert "re-authorise" in meta["action"]
    assert meta["integration_state"] == "needs_reauth"
    assert meta["next_retry"] == "none: waits for a person"
    assert meta["alert"].startswith("broken alert")
    # The partition's own page tells the same.
    records = instance.fetch_observations(ACCOUNTS, limit=10).records
    observed = [r.asset_observation for r in records if r.asset_observation is not None]
    assert [o.partition for o in observed] == [integration]
    assert "re-authorise" in str(observed[0].metadata["action"].value)
    assert observed[0].metadata["run"].value == result.run_id

    # The run-failure sensor's path: contacts never ran, and it was not a crash.
    recorded = record_crashed_run(sqlite_engine, run_id=result.run_id,
                                  integration_id=integration, types=["accounts", "contacts"],
                                  reason="step failed")
    assert recorded == ["contacts"]
    with sqlite_engine.connect() as conn:
        contacts = state.get_object(conn, integration, "contacts")
    assert contacts is not None
    assert contacts.last_error is not None
    assert contacts.last_error.startswith("[config]")
    assert "accounts failed first" in contacts.last_error
    assert "RunCrashed" not in contacts.last_error


def test_a_partition_that_names_no_integration_says_so(
        sqlite_engine: Engine, instance: DagsterInstance) -> None:
    job = _job(sqlite_engine, instance, "salesforce.typo")
    result = job.execute_in_process(instance=instance, partition_key="salesforce.typo",
                                    asset_selection=[ACCOUNTS], raise_on_error=False)
    assert "integration 'salesforce.typo' does not exist" in _failure_description(result)


def test_run_workers_print_no_debug_events_but_the_run_log_keeps_them(
        sqlite_engine: Engine, sandbox: Sandbox, capfd: pytest.CaptureFixture[str]) -> None:
    config = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    integration = register_salesforce(sqlite_engine, sandbox)
    with instance_for_test(overrides={"python_logs": config["python_logs"]}) as instance:
        job = _job(sqlite_engine, instance, integration)
        capfd.readouterr()
        result = job.execute_in_process(instance=instance, partition_key=integration,
                                        asset_selection=[ACCOUNTS])
        assert result.success
        printed = capfd.readouterr().err
        stored = instance.all_logs(result.run_id)
    assert " - DEBUG - " not in printed
    assert "STEP_SUCCESS" not in printed
    assert any(e.dagster_event is not None
               and e.dagster_event.event_type == DagsterEventType.STEP_SUCCESS for e in stored)


def test_a_single_run_over_several_integrations_says_how_to_launch_it(
        sqlite_engine: Engine, sandbox: Sandbox, instance: DagsterInstance) -> None:
    first = register_salesforce(sqlite_engine, sandbox, customer="acme")
    second = register_salesforce(sqlite_engine, sandbox, customer="globex")
    job = _job(sqlite_engine, instance, first)
    instance.add_dynamic_partitions("salesforce_integrations", [second])
    result = job.execute_in_process(
        instance=instance, asset_selection=[ACCOUNTS], raise_on_error=False,
        tags={"dagster/asset_partition_range_start": first,
              "dagster/asset_partition_range_end": second})
    assert "Multiple runs" in _failure_description(result)


def test_a_late_object_that_syncs_again_says_so_on_its_partition(
        sqlite_engine: Engine, sandbox: Sandbox, instance: DagsterInstance) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from akita_pipelines.core.clock import utcnow
    from akita_pipelines.db.schema import integration_objects

    integration = register_salesforce(sqlite_engine, sandbox)
    with sqlite_engine.begin() as conn:  # due two hours ago, syncs 24 times a day: late
        conn.execute(update(integration_objects).values(next_due_at=utcnow() - timedelta(hours=2)))
    job = _job(sqlite_engine, instance, integration)
    assert job.execute_in_process(instance=instance, partition_key=integration,
                                  asset_selection=[ACCOUNTS]).success
    records = instance.fetch_observations(ACCOUNTS, limit=5).records
    observed = [r.asset_observation for r in records if r.asset_observation is not None]
    assert [(o.partition, o.metadata["status"].value, o.metadata["was"].value)
            for o in observed] == [(integration, "ok", "late")]
    # An object that was fine adds no observation.
    assert job.execute_in_process(instance=instance, partition_key=integration,
                                  asset_selection=[ACCOUNTS]).success
    assert len(instance.fetch_observations(ACCOUNTS, limit=5).records) == 1
