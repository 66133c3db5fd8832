"""Every run carries the akita/* tags when it is queued, however it was launched."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    SubmitRunContext,
    instance_for_test,
)
from dagster._core.remote_origin import (
    RegisteredCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from sqlalchemy import Engine

from akita_pipelines.core.types import Customer, Integration
from akita_pipelines.defs.run_coordinator import AkitaRunCoordinator, akita_tags
from akita_pipelines.onboarding import add_customer, add_integration

ROOT = Path(__file__).resolve().parents[2]


def _no_integration(_: str) -> Integration | None:
    return None


def _acme(integration_id: str) -> Integration | None:
    return Integration(id=integration_id, customer_id="acme-corp", provider="salesforce",
                       config={})


def test_ui_materialise_gets_customer_integration_provider_and_manual_trigger() -> None:
    added = akita_tags({"dagster/partition": "salesforce.acme"}, _acme)
    assert added == {"akita/customer": "acme-corp", "akita/integration": "salesforce.acme",
                     "akita/provider": "salesforce", "akita/trigger": "manual"}


def test_backfill_and_reexecution_name_their_trigger() -> None:
    backfill = akita_tags({"dagster/partition": "salesforce.acme",
                           "dagster/backfill": "abc"}, _acme)
    assert backfill["akita/trigger"] == "backfill"
    # A re-execution copies its parent's tags, sensor trigger included.
    rerun = akita_tags({"dagster/partition": "salesforce.acme", "akita/trigger": "sensor",
                        "akita/customer": "acme-corp", "akita/provider": "salesforce",
                        "akita/integration": "salesforce.acme",
                        "dagster/parent_run_id": "p"}, _acme)
    assert rerun == {"akita/trigger": "reexecution"}


def test_tags_already_set_are_kept() -> None:
    sensor_tags = {"dagster/partition": "salesforce.acme", "akita/trigger": "sensor",
                   "dagster/sensor_name": "akita_scheduler_sensor", "akita/customer": "acme-corp",
                   "akita/provider": "salesforce", "akita/integration": "salesforce.acme"}
    assert akita_tags(sensor_tags, _acme) == {}


def test_unknown_integration_still_falls_under_its_provider_limit() -> None:
    added = akita_tags({"dagster/partition": "hubspot.typo"}, _no_integration)
    assert added["akita/provider"] == "hubspot"
    assert added["akita/integration"] == "hubspot.typo"
    assert "akita/customer" not in added


def test_one_key_range_is_an_integration_and_a_wide_range_is_not() -> None:
    one = akita_tags({"dagster/asset_partition_range_start": "salesforce.acme",
                      "dagster/asset_partition_range_end": "salesforce.acme"}, _acme)
    assert one["akita/integration"] == "salesforce.acme"
    wide = akita_tags({"dagster/asset_partition_range_start": "salesforce.a",
                       "dagster/asset_partition_range_end": "salesforce.b"}, _acme)
    assert wide == {"akita/trigger": "manual"}


def _instance_config(name: str) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((ROOT / name).read_text())
    config.pop("storage", None)  # the test instance keeps its own temporary storage
    return config


@pytest.fixture(params=["dagster.yaml", "deploy/dagster.postgres.yaml"])
def instance(request: pytest.FixtureRequest) -> Iterator[DagsterInstance]:
    with instance_for_test(overrides=_instance_config(request.param)) as inst:
        yield inst


def test_instance_files_queue_runs_through_our_coordinator_with_the_provider_limit(
        instance: DagsterInstance) -> None:
    assert isinstance(instance.run_coordinator, AkitaRunCoordinator)
    queue = instance.get_concurrency_config().run_queue_config
    assert queue is not None
    limits = queue.tag_concurrency_limits
    keys = {limit["key"] for limit in limits}
    assert {"akita/provider", "dagster/partition"} <= keys


def test_a_run_launched_without_our_tags_is_queued_with_them(
        instance: DagsterInstance, sqlite_engine: Engine,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AKITA_DATABASE_URL",
                       sqlite_engine.url.render_as_string(hide_password=False))
    add_customer(sqlite_engine, Customer(id="acme-corp", name="Acme"))
    add_integration(sqlite_engine, Integration(
        id="salesforce.acme", customer_id="acme-corp", provider="salesforce",
        config={"base_url": "http://127.0.0.1:1"}),
        {"client_id": "x", "client_secret": "y", "refresh_token": "z"})
    # What the backfill daemon creates for one partition: Dagster's tags only.
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(
        RegisteredCodeLocationOrigin("akita_pipelines"), "__repository__"), "__ASSET_JOB")
    run = instance.create_run(
        job_name="__ASSET_JOB", run_id=None, run_config=None,
        status=DagsterRunStatus.NOT_STARTED,
        tags={"dagster/partition": "salesforce.acme", "dagster/backfill": "bkfl"},
        root_run_id=None, parent_run_id=None, step_keys_to_execute=None,
        execution_plan_snapshot=None, job_snapshot=None, parent_job_snapshot=None,
        asset_selection=None, asset_check_selection=None, resolved_op_selection=None,
        op_selection=None, remote_job_origin=origin, job_code_origin=None,
        asset_graph=None)  # type: ignore[arg-type]
    context = SubmitRunContext(run, None)  # type: ignore[arg-type]
    queued = instance.run_coordinator.submit_run(context)
    assert queued.status == DagsterRunStatus.QUEUED
    stored = instance.get_run_by_id(run.run_id)
    assert stored is not None
    assert stored.tags["akita/provider"] == "salesforce"
    assert stored.tags["akita/customer"] == "acme-corp"
    assert stored.tags["akita/integration"] == "salesforce.acme"
    assert stored.tags["akita/trigger"] == "backfill"
