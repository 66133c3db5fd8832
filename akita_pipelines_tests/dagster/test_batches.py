"""Batch runs: many integrations in one run, each partition's truth kept; never two runs of one
Integration Object at once."""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    build_sensor_context,
)
from dagster._core.instance.ref import InstanceRef
from sqlalchemy import Engine, select

from akita_pipelines.core.types import Customer, Integration
from akita_pipelines.db.schema import integration_objects, sync_runs
from akita_pipelines.defs.definitions import build_definitions
from akita_pipelines.defs.resources import AkitaDatabase
from akita_pipelines.defs.sensors import batch_objects, build_scheduler_sensor, job_name
from akita_pipelines.onboarding import add_customer, add_integration
from akita_pipelines.providers.registry import PROVIDERS
from akita_pipelines.sandbox.server import Sandbox
from akita_pipelines.sync.batches import BatchPolicy
from akita_pipelines_tests.integration.conftest import register_salesforce

TYPES = ["accounts", "contacts"]


def _register_broken(engine: Engine, sandbox: Sandbox, customer: str) -> str:
    info = dict(sandbox.urls["salesforce"])
    add_customer(engine, Customer(id=customer, name=customer.title()))
    integration_id = f"salesforce.{customer}"
    add_integration(engine, Integration(
        id=integration_id, customer_id=customer, provider="salesforce",
        config={"base_url": info.pop("base_url")}), {**info, "client_secret": "revoked"})
    return integration_id


def _batch_config(integrations: list[str], threads: int = 3) -> dict[str, Any]:
    return {"ops": {"batch_sync_salesforce": {"config": {
        "integrations": {i: TYPES for i in integrations}, "threads": threads}}}}


def _events(instance: DagsterInstance, kind: DagsterEventType, key: AssetKey
            ) -> dict[str, Any]:
    """The latest event of ``kind`` of each partition of ``key``: (run id, metadata)."""
    fetch = (instance.fetch_materializations if kind == DagsterEventType.ASSET_MATERIALIZATION
             else instance.fetch_observations)
    found: dict[str, Any] = {}
    for record in reversed(fetch(key, limit=100).records):  # oldest first
        event = record.event_log_entry.dagster_event
        assert event is not None
        data = event.event_specific_data
        inner = getattr(data, "materialization", None) or getattr(data, "asset_observation",
                                                                   None)
        found[inner.partition] = (record.run_id, {k: v.value for k, v in inner.metadata.items()})
    return found


def test_a_batch_materialises_each_partition_and_records_a_failed_one_on_its_partition(
        sqlite_engine: Engine, sandbox: Sandbox, instance: DagsterInstance) -> None:
    good = [register_salesforce(sqlite_engine, sandbox, c) for c in ("acme", "initech")]
    broken = _register_broken(sqlite_engine, sandbox, "globex")
    integrations = [good[0], broken, good[1]]
    defs = build_definitions(database=AkitaDatabase(
        url=sqlite_engine.url.render_as_string(hide_password=False)))
    instance.add_dynamic_partitions("salesforce_integrations", integrations)

    result = defs.resolve_job_def("salesforce_batch_sync").execute_in_process(
        instance=instance, run_config=_batch_config(integrations),
        tags={"akita/trigger": "sensor"})

    # The run succeeds: one integration's failure fails nothing else.
    assert result.success
    n_accounts = len(sandbox.emulators["salesforce"].records("Account", include_deleted=True))
    for kind in TYPES:
        key = AssetKey(["salesforce", kind])
        materialised = _events(instance, DagsterEventType.ASSET_MATERIALIZATION, key)
        # Each good integration's partition has its own materialisation, from the batch run,
        # with the same metadata a single-partition run reports.
        assert set(materialised) == set(good)
        for integration in good:
            run_id, meta = materialised[integration]
            assert run_id == result.run_id
            assert meta["trigger"] == "sensor"
            assert meta["records_processed"] > 0
            assert meta["cursor_before"] == "—"
            assert meta["cursor_after"] != "—"
            if kind == "accounts":
                assert meta["records_fetched"] == n_accounts
        # The broken one is not materialised; its partition says it failed and why.
        observed = _events(instance, DagsterEventType.ASSET_OBSERVATION, key)
        run_id, meta = observed[broken]
        assert run_id == result.run_id
        assert meta["status"] == ("failed" if kind == "accounts" else "skipped")
        assert meta["failure_class"] == "config"  # a revoked grant: re-authorise
        assert "AuthError" in meta["reason"]
        assert meta["integration_state"] == "needs_reauth"
        assert set(observed) == {broken}
    with sqlite_engine.connect() as conn:
        states = dict(conn.execute(select(integration_objects.c.integration_id,
                                          integration_objects.c.state)
                                   .where(integration_objects.c.interaction_type == "accounts")
                                   ).all())
    assert states == {good[0]: "ok", good[1]: "ok", broken: "failing"}
    # The run page says which objects it synced.
    assert result.dagster_run.tags.get("akita/trigger") == "sensor"
    outputs = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_OUTPUT]
    summary = {k: v.value for k, v in outputs[0].step_output_data.metadata.items()}
    assert (summary["synced"], summary["failed"], summary["skipped"]) == (4, 1, 1)
    assert f"| {broken} | accounts | failed |" in str(summary["objects"])


def _intervals(engine: Engine, integration: str) -> list[tuple[Any, Any, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(sync_runs.c.started_at, sync_runs.c.finished_at, sync_runs.c.run_id,
                   integration_objects.c.interaction_type)
            .join(integration_objects,
                  integration_objects.c.id == sync_runs.c.integration_object_id)
            .where(integration_objects.c.integration_id == integration)
            .order_by(sync_runs.c.started_at)).all()
    by_type: dict[str, list[tuple[Any, Any, str]]] = {}
    for started, finished, run_id, kind in rows:
        by_type.setdefault(kind, []).append((started, finished, run_id))
    return [x for group in by_type.values() for x in zip(group, group[1:], strict=False)]


def _manual_resync(ref: InstanceRef, url: str, integration: str, done: Any) -> None:
    """A manual re-sync of one partition, in its own process as every Dagster run is."""
    defs = build_definitions(database=AkitaDatabase(url=url))
    with DagsterInstance.from_ref(ref) as instance:
        result = defs.resolve_job_def(job_name("salesforce")).execute_in_process(
            instance=instance, partition_key=integration,
            asset_selection=[AssetKey(["salesforce", t]) for t in TYPES])
        done.put((result.success, result.run_id))


def _running_sync(engine: Engine, integration: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(
            select(sync_runs.c.id)
            .join(integration_objects,
                  integration_objects.c.id == sync_runs.c.integration_object_id)
            .where(integration_objects.c.integration_id == integration,
                   sync_runs.c.status == "running", sync_runs.c.run_id.is_not(None))
        ).first() is not None


def test_a_batch_and_a_manual_resync_never_sync_one_object_at_once(
        sqlite_engine: Engine, sandbox: Sandbox, instance: DagsterInstance) -> None:
    integrations = [register_salesforce(sqlite_engine, sandbox, c)
                    for c in ("acme", "globex", "initech")]
    acme = integrations[0]
    server = sandbox.servers["salesforce"]
    inner = server.app

    def slow(environ: dict[str, Any], start_response: Any) -> Any:
        time.sleep(0.3)  # each sync takes seconds, so the two runs really meet
        return inner(environ, start_response)

    server.app = slow
    url = sqlite_engine.url.render_as_string(hide_password=False)
    defs = build_definitions(database=AkitaDatabase(url=url))
    instance.add_dynamic_partitions("salesforce_integrations", integrations)

    # The manual re-sync of acme starts first; once it is syncing acme, the batch starts.
    spawn = multiprocessing.get_context("spawn")
    done = spawn.Queue()
    manual = spawn.Process(target=_manual_resync, args=(instance.get_ref(), url, acme, done))
    manual.start()
    try:
        deadline = time.monotonic() + 120
        while not _running_sync(sqlite_engine, acme):
            assert manual.is_alive(), "the manual run ended before it began syncing"
            assert time.monotonic() < deadline, "the manual run never began syncing"
            time.sleep(0.05)
        batch = defs.resolve_job_def("salesforce_batch_sync").execute_in_process(
            instance=instance, run_config=_batch_config(integrations, threads=1),
            tags={"akita/trigger": "sensor"})
        manual_ok, manual_run = done.get(timeout=240)
    finally:
        manual.join(timeout=30)
        if manual.is_alive():
            manual.kill()
    assert batch.success
    assert manual_ok
    # The manual re-sync synced both of acme's objects, waiting where the batch held one; the
    # batch left to it what it was syncing, and synced the other integrations.
    batch_outcomes = {}
    for event in batch.all_events:
        if event.event_type == DagsterEventType.STEP_OUTPUT:
            batch_outcomes = {k: v.value for k, v in event.step_output_data.metadata.items()}
    assert batch_outcomes["busy"] >= 1
    assert batch_outcomes["failed"] == 0
    for kind in TYPES:
        key = AssetKey(["salesforce", kind])
        by_partition = _events(instance, DagsterEventType.ASSET_MATERIALIZATION, key)
        assert set(by_partition) == set(integrations)
        runs = {r.run_id for r in instance.fetch_materializations(
            AssetRecordsFilter(asset_key=key, asset_partitions=[acme]), limit=10).records}
        assert manual_run in runs
        assert runs <= {manual_run, batch.run_id}
    # No object of acme was ever synced by two runs at once (sync_runs rows per object).
    pairs = _intervals(sqlite_engine, acme)
    for (_, first_end, first_run), (second_start, _, second_run) in pairs:
        assert first_run != second_run
        assert first_end is not None
        assert second_start >= first_end


def _due(engine: Engine, integrations: list[str]) -> None:
    with engine.begin() as conn:
        conn.execute(integration_objects.update()
                     .where(integration_objects.c.integration_id.in_(integrations))
                     .values(next_due_at=None))


def test_the_scheduler_batches_many_due_integrations_and_runs_few_one_by_one(
        sqlite_engine: Engine, sandbox: Sandbox, instance: DagsterInstance) -> None:
    few = [register_salesforce(sqlite_engine, sandbox, c) for c in ("a", "b")]
    db = AkitaDatabase(url=sqlite_engine.url.render_as_string(hide_password=False))
    defs = build_definitions(database=db)
    policy = BatchPolicy(max_size=4, runs_per_provider=2, requests_per_provider=8)
    sensor = build_scheduler_sensor(PROVIDERS, [defs.resolve_job_def("salesforce_sync"),
                                                defs.resolve_job_def("salesforce_batch_sync")],
                                    policy)
    instance.add_dynamic_partitions("salesforce_integrations", few)

    # Two due, two runs may run at once: one ordinary partition run each.
    result = sensor(build_sensor_context(instance=instance, definitions=defs,
                                         resources={"akita_db": db}))
    requests = result.run_requests
    assert sorted(r.partition_key for r in requests) == sorted(few)
    assert all(r.job_name == "salesforce_sync" for r in requests)

    # Eleven due: batches of at most four, each naming its integrations on the run page.
    more = [register_salesforce(sqlite_engine, sandbox, f"c{i}") for i in range(9)]
    instance.add_dynamic_partitions("salesforce_integrations", more)
    result = sensor(build_sensor_context(instance=instance, definitions=defs,
                                         resources={"akita_db": db}))
    batches = result.run_requests
    assert all(r.job_name == "salesforce_batch_sync" for r in batches)
    named = [r.tags["akita/integrations"].split(",") for r in batches]
    assert [len(n) for n in named] == [4, 4, 3]
    assert sorted(i for n in named for i in n) == sorted(few + more)
    config = batches[0].run_config["ops"]["batch_sync_salesforce"]["config"]
    assert list(config["integrations"]) == named[0]
    assert config["threads"] == 4  # the provider's 8 requests shared by 2 runs

    # A running batch run holds its integrations: the next tick leaves them out.
    instance.create_run_for_job(defs.resolve_job_def("salesforce_batch_sync"),
                                run_config=batches[0].run_config, tags=batches[0].tags,
                                status=DagsterRunStatus.STARTED)
    result = sensor(build_sensor_context(instance=instance, definitions=defs,
                                         resources={"akita_db": db}))
    later = [i for r in result.run_requests
             for i in (r.tags.get("akita/integrations") or r.partition_key or "").split(",")]
    assert sorted(later) == sorted(set(few + more) - set(named[0]))
    # Should that run crash, the failure sensor knows its objects from its config.
    assert batch_objects(batches[0].run_config, batches[0].tags) == {
        i: ["accounts", "contacts", "deals", "tickets", "tasks"] for i in named[0]}
    assert batch_objects({}, {"dagster/partition": few[0]}) == {}
