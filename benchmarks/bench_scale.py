"""Scale run: many generated tenants on the Salesforce emulator through the real stack.

``dagster-daemon run`` (which starts the code server, which launches every run worker) on
PostgreSQL storage from deploy/dagster.postgres.yaml with batch runs as deployed (up to 50
integrations per run, 5 runs per provider, 20 concurrent requests). Every Integration Object is
due at the start, its cursor at the emulator's now and its next due time a day after each sync,
so within a due period an object syncs once unless something syncs it twice. A period lasts
until every object has synced or ``BENCH_SCALE_TIMEOUT`` (900 s) passes; then, with the same
daemon still running, every object is made due again (its next due time moved to now, as the
clock reaching it would) and the next period starts (``BENCH_SCALE_PERIODS``, default 2). The
first period includes registering every integration as a partition and the planner's first
look at the freshly loaded tables; later ones are the steady state.

Per period it reports: objects synced, lost (never synced), duplicates (synced more than once),
failed syncs, the time and CPU (the daemon's whole session plus the PostgreSQL server) to sync
them all, the runs, the daemon's scheduler ticks (duration of each tick of
``akita_scheduler_sensor``: evaluation plus creating its runs) and queue times (run created to
run started).

Off by default (it takes minutes): ``BENCH_SCALE=1`` or ``BENCH_SIZE=large`` runs it, with
``BENCH_SCALE_INTEGRATIONS`` tenants (default 10,000 at large, 1,000 otherwise).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
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

# Syncs of one period: the sync_runs ids it wrote (ids only grow; nothing is in flight between
# periods, so an id range is exactly a period's syncs).
IN_PERIOD = "run_id IS NOT NULL AND id > :lo AND id <= :hi"
SYNCED = ("SELECT count(DISTINCT integration_object_id) FROM sync_runs "
          f"WHERE status = 'succeeded' AND {IN_PERIOD}")
SUCCEEDED = f"SELECT count(*) FROM sync_runs WHERE status = 'succeeded' AND {IN_PERIOD}"
FAILED = f"SELECT count(*) FROM sync_runs WHERE status = 'failed' AND {IN_PERIOD}"
DUPLICATES = ("SELECT count(*) FROM (SELECT integration_object_id FROM sync_runs "
              f"WHERE status = 'succeeded' AND {IN_PERIOD} GROUP BY 1 HAVING count(*) > 1) d")
LAST_SYNC = "SELECT coalesce(max(id), 0) FROM sync_runs"
ALL = 2 ** 62
#: After the last object synced: long enough for another scheduler tick (30 s) and its runs to
#: start, so a duplicate would show in the period.
SETTLE = 35.0


@dataclass
class Period:
    number: int
    started: float  # epoch seconds
    ended: float = 0.0  # after the settle
    wall: float = 0.0  # to the last object synced (or the timeout)
    cpu: float = 0.0
    finished: bool = False
    synced: int = 0
    syncs: int = 0
    failed: int = 0
    duplicates: int = 0
    ticks: list[float] = field(default_factory=list)
    queue: list[float] = field(default_factory=list)
    runs: int = 0


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _dagster_figures(env: dict[str, str]
                     ) -> tuple[list[tuple[float, float]], list[tuple[float, float | None]]]:
    """From the Dagster instance: (tick start, tick seconds) of every finished scheduler tick,
    oldest first, and (created, started or None) of every run, both as epoch seconds."""
    from dagster import DagsterInstance, RunsFilter
    from dagster._core.scheduler.instigation import InstigatorType

    saved = {k: os.environ.get(k) for k in env if k.startswith("DAGSTER_")}
    os.environ.update({k: v for k, v in env.items() if k.startswith("DAGSTER_")})
    try:
        instance = DagsterInstance.from_config(env["DAGSTER_HOME"])
        ticks: list[tuple[float, float]] = []
        for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
            if state.name != "akita_scheduler_sensor":
                continue
            for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id,
                                           limit=100_000):
                if tick.end_timestamp:
                    ticks.append((tick.timestamp, tick.end_timestamp - tick.timestamp))
        runs = [(r.create_timestamp.timestamp(), r.start_time)
                for r in instance.get_run_records(filters=RunsFilter())]
        instance.dispose()
        return sorted(ticks), runs  # get_ticks returns newest first
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _tick_note(ticks: list[float]) -> str:
    if not ticks:
        return "no ticks read"
    return (f"median {statistics.median(ticks):.1f} s, p95 {_pct(ticks, 0.95):.1f} s, "
            f"max {max(ticks):.1f} s over {len(ticks)} ticks")


def _queue_note(queue: list[float]) -> str:
    if not queue:
        return "no runs started"
    return (f"median {statistics.median(queue):.0f} s, p95 {_pct(queue, 0.95):.0f} s, "
            f"max {max(queue):.0f} s over {len(queue)} runs")


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
    n_periods = int(os.environ.get("BENCH_SCALE_PERIODS", 2))
    logs = ROOT / "test-artifacts" / "bench-scale"
    logs.mkdir(parents=True, exist_ok=True)
    periods: list[Period] = []
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
            # Nothing new since the cursor; every object due now, then a day after its sync
            # (the next period comes from making them all due again, below).
            conn.execute(text("UPDATE integration_objects SET cursor = now(), "
                              "frequency_per_day = 1, next_due_at = now()"))
        seeding = time.monotonic() - s0
        objects = _count(akita_url, "SELECT count(*) FROM integration_objects")
        print(f"scale: seeded {wanted:,} tenants / {objects:,} objects in {seeding:.0f} s",
              flush=True)
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
        with _daemon(env, workspace, logs / "daemon-scale.log") as proc:
            lo = _count(akita_url, LAST_SYNC)
            for number in range(1, n_periods + 1):
                if number > 1:
                    with engine.begin() as conn:
                        conn.execute(text("UPDATE integration_objects SET next_due_at = now()"))
                period = Period(number, started=time.time())
                t0 = time.monotonic()
                cpu0 = tree_cpu(proc.pid, postmaster)
                while time.monotonic() - t0 < timeout and proc.poll() is None:
                    time.sleep(5)
                    synced = _count(akita_url, SYNCED, lo=lo, hi=ALL)
                    print(f"scale: period {number}: {synced:,}/{objects:,} objects synced after "
                          f"{time.monotonic() - t0:.0f} s", flush=True)
                    if synced >= objects:
                        period.finished = True
                        break
                period.wall = time.monotonic() - t0
                period.cpu = tree_cpu(proc.pid, postmaster) - cpu0
                time.sleep(SETTLE)
                period.ended = time.time()
                hi = _count(akita_url, LAST_SYNC)
                period.synced = _count(akita_url, SYNCED, lo=lo, hi=hi)
                period.syncs = _count(akita_url, SUCCEEDED, lo=lo, hi=hi)
                period.failed = _count(akita_url, FAILED, lo=lo, hi=hi)
                period.duplicates = _count(akita_url, DUPLICATES, lo=lo, hi=hi)
                lo = hi
                periods.append(period)
                print(f"scale: period {number} {'finished' if period.finished else 'NOT finished'}"
                      f": {period.synced:,} synced, {objects - period.synced:,} lost, "
                      f"{period.duplicates:,} duplicates, {period.failed:,} failed; "
                      f"{period.cpu:.0f} CPU-s in {period.wall:.0f} s", flush=True)
                if not period.finished:
                    break
        engine.dispose()
        ticks, runs = _dagster_figures(env)
    for period in periods:
        window = (period.started, period.ended)
        period.ticks = [d for t, d in ticks if window[0] <= t < window[1]]
        in_window = [(c, s) for c, s in runs if window[0] <= c < window[1]]
        period.runs = len(in_window)
        period.queue = [s - c for c, s in in_window if s is not None]
        print(f"scale: period {period.number}: scheduler ticks, s, in order: "
              + " ".join(f"{t:.1f}" for t in period.ticks), flush=True)

    def met(ok: bool) -> str:
        return "met" if ok else "NOT met"

    figures = []
    for p in periods:
        lost = objects - p.synced
        status = "finished" if p.finished else f"NOT finished in {timeout:.0f} s"
        where = (f"{wanted:,} tenants / {objects:,} objects, {status}; {p.runs} runs"
                 + (f"; seeding {seeding:.0f} s" if p.number == 1 else ""))
        name = f"scale run, {wanted:,} integrations, due period {p.number}"
        print(f"scale: period {p.number}: {where}; {p.synced:,} synced, {lost:,} lost, "
              f"{p.duplicates:,} duplicates, {p.syncs:,} syncs, {p.failed} failed, "
              f"{p.cpu:.0f} CPU-s in {p.wall:.0f} s; ticks {_tick_note(p.ticks)}; "
              f"queue {_queue_note(p.queue)}", flush=True)
        figures += [
            Figure(f"{name}: objects synced / lost / duplicates / failed",
                   f"{p.synced:,} / {lost:,} / {p.duplicates:,} / {p.failed:,}", "—", "—",
                   "every object once: 0 lost, 0 duplicates",
                   f"{met(p.finished and lost == 0 and p.duplicates == 0 and not p.failed)}; "
                   f"{where}"),
            Figure(f"{name}: time and CPU to sync every object once", f"{p.wall:.0f} s",
                   "—", "—", "—",
                   f"{p.cpu:.0f} CPU-s ({p.cpu / max(1, p.syncs):.3f} per object sync), "
                   "daemon+code server+run workers+PostgreSQL, emulator excluded"),
            Figure(f"{name}: scheduler tick (daemon: sensor + creating its runs)",
                   f"{statistics.median(p.ticks):.1f} s" if p.ticks else "—", "—", "—",
                   "≤ 1 s", f"{met(bool(p.ticks) and _pct(p.ticks, 0.95) <= 1.0)} (p95); "
                   f"{_tick_note(p.ticks)}"),
            Figure(f"{name}: run queue time (created → started)",
                   f"{statistics.median(p.queue):.0f} s" if p.queue else "—", "—", "—", "—",
                   _queue_note(p.queue)),
        ]
    return figures


if __name__ == "__main__":
    from benchmarks.common import render

    print(render(run()))
