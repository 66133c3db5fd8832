"""Scale run: many generated tenants on the Salesforce emulator through the real stack.

``dagster-daemon run`` (which starts the code server, which launches every run worker) on
PostgreSQL storage from deploy/dagster.postgres.yaml with batch runs as deployed (up to 50
integrations per run, 5 runs per provider, 20 concurrent requests). Every Integration Object is
due once at the start and then hourly (``frequency_per_day`` 24), its cursor at the emulator's
now. The run lasts until every object has synced or ``BENCH_SCALE_TIMEOUT`` (900 s) passes, and
reports: objects, objects synced, lost (never synced), duplicates (synced more than once in the
period), failed syncs, the daemon's sensor ticks (duration of each tick of
``akita_scheduler_sensor``: evaluation plus creating its runs), queue times (run created to run
started) and the CPU of the daemon's whole session plus the PostgreSQL server.

Off by default (it takes minutes): ``BENCH_SCALE=1`` or ``BENCH_SIZE=large`` runs it, with
``BENCH_SCALE_INTEGRATIONS`` tenants (default 10,000 at large, 1,000 otherwise).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from benchmarks.bench_batches import (
    BIN,
    ROOT,
    _count,
    _daemon,
    _new_dagster,
    _seed,
    find_postmaster,
    tree_cpu,
)
from benchmarks.common import SIZE, Figure

SYNCED = ("SELECT count(DISTINCT integration_object_id) FROM sync_runs "
          "WHERE status = 'succeeded' AND run_id IS NOT NULL")


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _dagster_figures(env: dict[str, str]) -> tuple[list[float], list[float], int]:
    """(sensor tick seconds, run queue seconds, runs) from the phase's Dagster instance."""
    from dagster import DagsterInstance, RunsFilter
    from dagster._core.scheduler.instigation import InstigatorType

    saved = {k: os.environ.get(k) for k in env if k.startswith("DAGSTER_")}
    os.environ.update({k: v for k, v in env.items() if k.startswith("DAGSTER_")})
    try:
        instance = DagsterInstance.from_config(env["DAGSTER_HOME"])
        timed: list[tuple[float, float]] = []
        for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
            if state.name != "akita_scheduler_sensor":
                continue
            for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id,
                                           limit=100_000):
                if tick.end_timestamp:
                    timed.append((tick.timestamp, tick.end_timestamp - tick.timestamp))
        ticks = [d for _, d in sorted(timed)]  # oldest first
        queue: list[float] = []
        records = instance.get_run_records(filters=RunsFilter())
        for record in records:
            if record.start_time is not None:
                queue.append(record.start_time - record.create_timestamp.timestamp())
        instance.dispose()
        return ticks, queue, len(records)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run() -> list[Figure]:
    if SIZE != "large" and os.environ.get("BENCH_SCALE") != "1":
        return []
    from sqlalchemy import create_engine, text

    from akita_pipelines.db.engine import akita_home
    from akita_pipelines.sandbox.server import start_sandbox
    from akita_pipelines_tests.e2e.stack import _create_database
    from akita_pipelines_tests.pg import postgres_server

    wanted = int(os.environ.get("BENCH_SCALE_INTEGRATIONS",
                                10_000 if SIZE == "large" else 1_000))
    timeout = float(os.environ.get("BENCH_SCALE_TIMEOUT", 900))
    logs = ROOT / "test-artifacts" / "bench-scale"
    logs.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        admin_url = stack.enter_context(postgres_server())
        port = int(admin_url.rsplit(":", 1)[1].split("/")[0])
        postmaster = find_postmaster(port)
        akita_url = _create_database(admin_url, "akita")
        sandbox = stack.enter_context(start_sandbox(base_port=0, seed=11,
                                                    providers=["salesforce"]))
        s0 = time.monotonic()
        _seed(akita_url, sandbox.urls["salesforce"], wanted)
        engine = create_engine(akita_url)
        with engine.begin() as conn:
            # Nothing new since the cursor; every object due now, then hourly.
            conn.execute(text("UPDATE integration_objects SET cursor = now(), "
                              "frequency_per_day = 24, next_due_at = now()"))
        engine.dispose()
        seeding = time.monotonic() - s0
        objects = _count(akita_url, "SELECT count(*) FROM integration_objects")
        workspace = tmp / "akita.yaml"
        workspace.write_text(f"load_from:\n  - python_module:\n      module_name: "
                             f"akita_pipelines.definitions\n      location_name: akita_pipelines\n"
                             f"      working_directory: {ROOT}\n")
        host, pg_port = admin_url.split("@", 1)[1].split("/", 1)[0].split(":")
        base_env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                    "DAGSTER_PG_HOST": host, "DAGSTER_PG_PORT": pg_port,
                    "DAGSTER_PG_USER": "akita", "DAGSTER_PG_PASSWORD": "unused-trust-auth",
                    "AKITA_DATABASE_URL": akita_url, "PYTHONUNBUFFERED": "1",
                    "AKITA_HOME": str(akita_home()),
                    "AKITA_BATCH_MAX_SIZE": "50", "AKITA_BATCH_RUNS_PER_PROVIDER": "5",
                    "AKITA_BATCH_REQUESTS_PER_PROVIDER": "20"}
        env, _ = _new_dagster(admin_url, "dagster_scale", base_env, tmp)
        finished = False
        with _daemon(env, workspace, logs / "daemon-scale.log") as proc:
            t0 = time.monotonic()
            cpu0 = tree_cpu(proc.pid, postmaster)
            synced = 0
            while time.monotonic() - t0 < timeout and proc.poll() is None:
                time.sleep(5)
                synced = _count(akita_url, SYNCED)
                print(f"scale: {synced:,}/{objects:,} objects synced after "
                      f"{time.monotonic() - t0:.0f} s", flush=True)
                if synced >= objects:
                    finished = True
                    break
            wall = time.monotonic() - t0
            cpu = tree_cpu(proc.pid, postmaster) - cpu0
            # Let the last tick and runs settle so a duplicate would show.
            time.sleep(35)
        synced = _count(akita_url, SYNCED)
        syncs = _count(akita_url, "SELECT count(*) FROM sync_runs WHERE status = 'succeeded'")
        failed = _count(akita_url, "SELECT count(*) FROM sync_runs WHERE status = 'failed'")
        duplicates = _count(akita_url, "SELECT count(*) FROM (SELECT integration_object_id "
                            "FROM sync_runs WHERE status = 'succeeded' GROUP BY 1 "
                            "HAVING count(*) > 1) d")
        ticks, queue, runs = _dagster_figures(env)
    lost = objects - synced
    print("scale: scheduler ticks, s, in order: "
          + " ".join(f"{t:.1f}" for t in ticks), flush=True)
    tick_note = (f"median {statistics.median(ticks) * 1000:.0f} ms, p95 "
                 f"{_pct(ticks, 0.95) * 1000:.0f} ms, max {max(ticks) * 1000:.0f} ms over "
                 f"{len(ticks)} ticks" if ticks else "no ticks read")
    queue_note = (f"median {statistics.median(queue):.0f} s, p95 {_pct(queue, 0.95):.0f} s, "
                  f"max {max(queue):.0f} s over {len(queue)} runs" if queue else "no runs")
    status = "finished" if finished else f"NOT finished in {timeout:.0f} s"
    where = (f"{wanted:,} tenants / {objects:,} objects, {status}; seeding {seeding:.0f} s; "
             f"{runs} runs")
    print(f"scale: {where}; {synced:,} synced, {lost:,} lost, {duplicates:,} duplicates, "
          f"{syncs:,} syncs, {failed} failed, {cpu:.0f} CPU-s in {wall:.0f} s; ticks {tick_note};"
          f" queue {queue_note}")

    def met(ok: bool) -> str:
        return "met" if ok else "NOT met"

    return [
        Figure(f"scale run, {wanted:,} integrations: objects synced / lost / duplicates",
               f"{synced:,} / {lost:,} / {duplicates:,}", "—", "—",
               "all synced, 0 lost, 0 duplicates",
               f"{met(finished and lost == 0 and duplicates == 0 and not failed)}; "
               f"{failed} failed syncs; {where}"),
        Figure(f"scale run, {wanted:,} integrations: time and CPU to sync every object once",
               f"{wall:.0f} s", "—", "—", "—",
               f"{cpu:.0f} CPU-s ({cpu / max(1, syncs):.3f} per object sync), daemon+code "
               "server+run workers+PostgreSQL, emulator excluded"),
        Figure(f"scale run, {wanted:,} integrations: scheduler sensor tick (daemon)",
               f"{statistics.median(ticks) * 1000:.0f} ms" if ticks else "—", "—", "—",
               "≤ 1 s", f"{met(bool(ticks) and _pct(ticks, 0.95) <= 1.0)} (p95); {tick_note}"),
        Figure(f"scale run, {wanted:,} integrations: run queue time (created → started)",
               f"{statistics.median(queue):.0f} s" if queue else "—", "—", "—", "—",
               queue_note),
    ]


if __name__ == "__main__":
    from benchmarks.common import render

    print(render(run()))
