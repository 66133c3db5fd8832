"""Scheduler tick with 1k / 10k / 100k Integration Objects: the due query plus run planning
(SQLite), and the real akita_scheduler_sensor evaluated on PostgreSQL with the dynamic
partitions and in-flight runs it reads (``BENCH_TICK_SIZES=1000,10000`` to choose sizes)."""

from __future__ import annotations

import os
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, insert, text

from akita_pipelines.core.clock import utcnow
from akita_pipelines.db import state
from akita_pipelines.db.engine import make_engine
from akita_pipelines.db.migrate import upgrade
from akita_pipelines.db.schema import customers, integration_objects, integrations
from akita_pipelines.sync.scheduler import plan_runs
from benchmarks.common import SIZE, Figure, best_of, sizes

ROOT = Path(__file__).resolve().parents[1]

TYPES = ("accounts", "contacts", "deals", "tickets", "tasks")


def populate(engine: Engine, n_objects: int) -> None:
    now = utcnow()
    n_integrations = max(1, n_objects // len(TYPES))
    with engine.begin() as conn:
        conn.execute(insert(customers), [{"id": f"c{i}", "name": f"C{i}", "settings": {},
                                          "created_at": now} for i in range(n_integrations)])
        conn.execute(insert(integrations), [
            {"id": f"salesforce.c{i}", "customer_id": f"c{i}", "provider": "salesforce",
             "config": {}, "credentials": {}, "settings": {}, "state": "active",
             "created_at": now, "updated_at": now} for i in range(n_integrations)])
        # A tenth of the objects are due; the rest are due later.
        conn.execute(insert(integration_objects), [
            {"integration_id": f"salesforce.c{i}", "interaction_type": t,
             "frequency_per_day": 24.0, "enabled": True, "consecutive_failures": 0,
             "state": "ok",
             "next_due_at": now - timedelta(minutes=1) if i % 10 == 0
             else now + timedelta(hours=1)}
            for i in range(n_integrations) for t in TYPES])


def tick(engine: Engine) -> int:
    with engine.connect() as conn:
        due = state.due_objects(conn, utcnow(), limit=2000)
    return len(plan_runs(due, in_flight=set(), known_providers={"salesforce"}, max_runs=200))


def run() -> list[Figure]:
    figures = []
    for n in sizes([1_000, 10_000, 100_000], [1_000, 10_000, 100_000]):
        with tempfile.TemporaryDirectory() as tmp:
            engine = make_engine(f"sqlite:///{Path(tmp) / 'tick.db'}")
            upgrade(engine)
            populate(engine, n)
            seconds = best_of(5, lambda e=engine: tick(e))  # type: ignore[misc]
            engine.dispose()
        figures.append(Figure(f"scheduler tick, {n:,} objects (SQLite)", f"{seconds * 1000:.1f} ms",
                              goal="≤ 1 s at 100k", note="due query + planner only"))
    return figures + run_sensor()


# --- The tick as the sensor really runs ------------------------------------------------------
# The real akita_scheduler_sensor evaluated against a DagsterInstance on PostgreSQL (storage of
# deploy/dagster.postgres.yaml) and the Akita database on PostgreSQL: it reads the registered
# integrations and the due objects, every provider's dynamic partitions and the in-flight runs,
# plans the batches and builds the run requests. The daemon's own share (gRPC, creating the
# requested runs) is not in this figure; bench_scale reads whole daemon ticks.

IN_FLIGHT_STARTED = 10  # deploy/dagster.postgres.yaml: max_concurrent_runs
IN_FLIGHT_QUEUED = 40
FINISHED_RUNS = 500


def _pg_instance(admin_url: str, name: str, home: Path) -> Any:
    import os
    import shutil

    from dagster import DagsterInstance

    from akita_pipelines_tests.e2e.stack import _create_database

    _create_database(admin_url, name)
    host, port = admin_url.split("@", 1)[1].split("/", 1)[0].split(":")
    os.environ.update({"DAGSTER_PG_HOST": host, "DAGSTER_PG_PORT": port,
                       "DAGSTER_PG_USER": "akita", "DAGSTER_PG_PASSWORD": "unused-trust-auth",
                       "DAGSTER_PG_DB": name})
    home.mkdir(parents=True)
    shutil.copy(ROOT / "deploy" / "dagster.postgres.yaml", home / "dagster.yaml")
    return DagsterInstance.from_config(str(home))


def sensor_tick(admin_url: str, n_objects: int, tmp: Path, repeats: int = 5
                ) -> tuple[float, float, float, int, int]:
    """(best, median seconds per evaluation, the first evaluation right after the bulk load,
    run requests, integrations in flight)."""
    import statistics

    from dagster import DagsterRunStatus, SensorResult, build_sensor_context

    from akita_pipelines.defs.definitions import build_definitions
    from akita_pipelines.defs.resources import AkitaDatabase
    from akita_pipelines.defs.sensors import build_scheduler_sensor
    from akita_pipelines.providers.registry import PROVIDERS
    from akita_pipelines.sync.batches import BatchPolicy
    from akita_pipelines_tests.e2e.stack import _create_database

    akita_url = _create_database(admin_url, f"akita_{n_objects}")
    engine = make_engine(akita_url)
    upgrade(engine)
    ids = [f"salesforce.c{i}" for i in range(max(1, n_objects // len(TYPES)))]
    instance = _pg_instance(admin_url, f"dagster_{n_objects}", tmp / f"home_{n_objects}")
    try:
        instance.add_dynamic_partitions("salesforce_integrations", ids)
        db = AkitaDatabase(url=akita_url)
        defs = build_definitions(database=db)
        policy = BatchPolicy(max_size=50, runs_per_provider=5, requests_per_provider=20)
        batch_job = defs.resolve_job_def("salesforce_batch_sync")
        sensor = build_scheduler_sensor(PROVIDERS, [defs.resolve_job_def("salesforce_sync"),
                                                    batch_job], policy)
        # Run history: finished runs, plus batch runs running and waiting holding integrations
        # (the in-flight set the sensor reads): up to 50 integrations each, half of them at most.
        held = 0
        per_run = max(1, min(50, len(ids) // (2 * (IN_FLIGHT_STARTED + IN_FLIGHT_QUEUED))))
        statuses = ([DagsterRunStatus.SUCCESS] * FINISHED_RUNS
                    + [DagsterRunStatus.STARTED] * IN_FLIGHT_STARTED
                    # Queued runs need a code-server origin; NOT_STARTED is read the same way.
                    + [DagsterRunStatus.NOT_STARTED] * IN_FLIGHT_QUEUED)
        for k, status in enumerate(statuses):
            chunk = ids[(k * per_run) % len(ids):][:per_run]
            config = {"ops": {"batch_sync_salesforce": {"config": {
                "integrations": {i: list(TYPES) for i in chunk}, "threads": 4}}}}
            instance.create_run_for_job(batch_job, run_config=config, tags={
                "akita/provider": "salesforce", "akita/batch": "true",
                "akita/integrations": ",".join(chunk)}, status=status)
            if status != DagsterRunStatus.SUCCESS:
                held += len(chunk)
        def evaluate(repeats: int) -> tuple[list[float], int]:
            """(seconds of each evaluation, run requests)."""
            times, requests = [], 0
            for _ in range(repeats):
                context = build_sensor_context(instance=instance, definitions=defs,
                                               resources={"akita_db": db})
                t0 = time.perf_counter()
                result = sensor(context)
                times.append(time.perf_counter() - t0)
                assert isinstance(result, SensorResult)
                requests = len(result.run_requests or [])
            return times, requests

        # Right after the bulk load PostgreSQL has no statistics on the new rows yet (autovacuum
        # analyzes them within a minute or so): the first tick after it, whatever that tick does
        # about them; then the steady state, statistics current. The load comes last so that
        # autovacuum has not run in between.
        populate(engine, n_objects)
        engine.dispose()
        fresh = evaluate(1)[0][0]
        for url in (akita_url, admin_url.rsplit("/", 1)[0] + f"/dagster_{n_objects}"):
            analyze = create_engine(url, isolation_level="AUTOCOMMIT")
            with analyze.connect() as conn:
                conn.execute(text("ANALYZE"))
            analyze.dispose()
        times, requests = evaluate(repeats)
        return min(times), statistics.median(times), fresh, requests, held
    finally:
        instance.dispose()


def run_sensor() -> list[Figure]:
    from akita_pipelines_tests.pg import postgres_server

    figures = []
    sizes_ = [int(s) for s in os.environ.get(
        "BENCH_TICK_SIZES", "1000,10000,100000" if SIZE == "large" else "1000,10000").split(",")]
    with postgres_server() as admin_url, tempfile.TemporaryDirectory() as tmp:
        for n in sizes_:
            best, median, fresh, requests, held = sensor_tick(admin_url, n, Path(tmp))
            figures.append(Figure(
                f"scheduler tick, real sensor, {n:,} objects (PostgreSQL)",
                f"{median * 1000:.0f} ms", f"best {best * 1000:.0f} ms", "—", "≤ 1 s",
                f"{'met' if median <= 1.0 else 'NOT met'}; statistics current (ANALYZE); "
                f"{fresh * 1000:.0f} ms for the first tick right after the bulk load, "
                f"before autovacuum has analysed the rows; {n // len(TYPES):,} partitions, "
                f"{IN_FLIGHT_STARTED + IN_FLIGHT_QUEUED} runs in flight holding {held:,} "
                f"integrations, {FINISHED_RUNS} finished runs, {requests} run requests; "
                "sensor evaluation only (not the daemon's run creation)"))
    return figures


if __name__ == "__main__":
    from benchmarks.common import render

    print(render(run()))
