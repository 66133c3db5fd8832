"""Cost per Integration Object sync on the real stack: batch runs vs one run per integration.

Each phase starts its own ``dagster-daemon run`` (which starts the code server, which launches
every run worker) on PostgreSQL storage from deploy/dagster.postgres.yaml (a fresh Dagster
database per phase), against generated tenants on the Salesforce emulator whose objects are
all due all the time and whose cursors are at the emulator's now: the steady state where
syncs find little or nothing new. Over a measured window it reads CPU from /proc for the
daemon's whole session (daemon, code server, run workers, reaped children included) plus the
PostgreSQL server, the object syncs that finished (the Akita database's sync_runs) and the
event-log rows written. The floor is a trivial one-asset Dagster run through the same daemon,
code server and run launcher, measured in the same invocation.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from benchmarks.common import BIN, SIZE, Figure, real_stack_base
from benchmarks.common import find_postmaster as find_postmaster  # bench_scale imports it here

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")

TRIVIAL = textwrap.dedent("""
    import os
    from dagster import (DefaultSensorStatus, Definitions, RunRequest, SensorResult, asset,
                         define_asset_job, sensor)

    @asset
    def trivial() -> None:
        return None

    job = define_asset_job("trivial_job", selection=[trivial])

    @sensor(job=job, minimum_interval_seconds=1, default_status=DefaultSensorStatus.RUNNING)
    def trivial_sensor(context):
        path = os.environ["BENCH_TRIVIAL_RUNS"]
        want = int(open(path).read().strip() or 0) if os.path.exists(path) else 0
        done = int(context.cursor or 0)
        return SensorResult(run_requests=[RunRequest() for _ in range(max(0, want - done))],
                            cursor=str(max(want, done)))

    defs = Definitions(assets=[trivial], jobs=[job], sensors=[trivial_sensor])
""")


def _stat(pid: str) -> tuple[int, int, int] | None:
    """(session id, parent pid, CPU ticks incl. reaped children) of a process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    # fields[0] is field 3 (state): ppid=4, session=6, utime=14, stime=15, cutime=16, cstime=17
    ppid, session = int(fields[1]), int(fields[3])
    return session, ppid, sum(int(f) for f in fields[11:15])


def tree_cpu(session: int, postmaster: int | None) -> float:
    """CPU seconds of every process of ``session`` plus the PostgreSQL server's processes."""
    ticks = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        found = _stat(entry)
        if found is None:
            continue
        sid, ppid, cpu = found
        if sid == session or (postmaster is not None
                              and (int(entry) == postmaster or ppid == postmaster)):
            ticks += cpu
    return ticks / TICKS


@dataclass
class Phase:
    name: str
    cpu: float
    units: int  # object syncs (or trivial runs) finished in the window
    runs: int
    event_rows: int
    seconds: float

    @property
    def cpu_per_unit(self) -> float:
        return self.cpu / self.units if self.units else float("nan")

    @property
    def rows_per_unit(self) -> float:
        return self.event_rows / self.units if self.units else float("nan")


def _count(url: str, sql: str, **params: object) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql), params).scalar_one())
    finally:
        engine.dispose()


@contextmanager
def _daemon(env: dict[str, str], workspace: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        yield proc
    finally:
        from akita_pipelines_tests.e2e.stack import _kill_strays, _stop

        _stop(proc)
        _kill_strays(Path(env["DAGSTER_HOME"]))


def _new_dagster(admin_url: str, name: str, base_env: dict[str, str], tmp: Path
                 ) -> tuple[dict[str, str], str]:
    from akita_pipelines_tests.e2e.stack import _create_database

    url = _create_database(admin_url, name)
    home = tmp / name
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.postgres.yaml", home / "dagster.yaml")
    env = {**base_env, "DAGSTER_HOME": str(home), "DAGSTER_PG_DB": name}
    subprocess.run([str(BIN / "dagster"), "instance", "migrate"], env=env, cwd=ROOT,
                   check=True, capture_output=True, timeout=180)
    return env, url


def _sync_phase(name: str, env: dict[str, str], dagster_url: str, akita_url: str,
                workspace: Path, logs: Path, postmaster: int | None, window: float) -> Phase:
    started = "SELECT count(*) FROM runs"
    synced = ("SELECT count(*) FROM sync_runs WHERE status = 'succeeded' AND run_id IS NOT NULL"
              " AND finished_at >= :since")
    with _daemon(env, workspace, logs / f"daemon-{name}.log") as proc:
        deadline = time.monotonic() + 300
        # Warm up: the first runs have finished (code server loaded, queue flowing).
        while _count(akita_url, synced, since=_ts(0)) < 2:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name}: no run finished; see {logs}")
            time.sleep(1)
        t0 = time.monotonic()
        since = _count(akita_url, "SELECT extract(epoch FROM now())::bigint")
        cpu0 = tree_cpu(proc.pid, postmaster)
        rows0 = _count(dagster_url, "SELECT count(*) FROM event_logs")
        runs0 = _count(dagster_url, started)
        time.sleep(window)
        cpu1 = tree_cpu(proc.pid, postmaster)
        rows1 = _count(dagster_url, "SELECT count(*) FROM event_logs")
        runs1 = _count(dagster_url, started)
        units = _count(akita_url, synced, since=_ts(since))
        failed = _count(akita_url, synced.replace("'succeeded'", "'failed'"), since=_ts(since))
        seconds = time.monotonic() - t0
    if failed:
        raise RuntimeError(f"{name}: {failed} syncs failed in the window; see {logs}")
    return Phase(name, cpu1 - cpu0, units, runs1 - runs0, rows1 - rows0, seconds)


def _ts(epoch: int) -> object:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC)


def _floor_phase(env: dict[str, str], dagster_url: str, workspace: Path, logs: Path,
                 postmaster: int | None, runs: int) -> Phase:
    flag = Path(env["BENCH_TRIVIAL_RUNS"])
    flag.write_text("0")
    ok = "SELECT count(*) FROM runs WHERE status = 'SUCCESS'"
    with _daemon(env, workspace, logs / "daemon-floor.log") as proc:
        flag.write_text("1")  # warm up: one run through, code server loaded
        deadline = time.monotonic() + 300
        while _count(dagster_url, ok) < 1:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"floor: no run finished; see {logs}")
            time.sleep(0.5)
        time.sleep(2)
        t0 = time.monotonic()
        cpu0 = tree_cpu(proc.pid, postmaster)
        rows0 = _count(dagster_url, "SELECT count(*) FROM event_logs")
        flag.write_text(str(1 + runs))
        while _count(dagster_url, ok) < 1 + runs:
            if time.monotonic() > deadline + 600:
                raise RuntimeError("floor: runs did not finish")
            time.sleep(0.5)
        cpu1 = tree_cpu(proc.pid, postmaster)
        rows1 = _count(dagster_url, "SELECT count(*) FROM event_logs")
    return Phase("floor", cpu1 - cpu0, runs, runs, rows1 - rows0, time.monotonic() - t0)


def _seed(akita_url: str, sandbox_info: dict[str, str], n: int) -> None:
    from akita_pipelines.core.types import Customer, Integration
    from akita_pipelines.db.engine import make_engine
    from akita_pipelines.db.migrate import upgrade
    from akita_pipelines.onboarding import add_customer, add_integration

    engine = make_engine(akita_url)
    upgrade(engine)
    info = dict(sandbox_info)
    base = info.pop("base_url")
    for i in range(n):
        add_customer(engine, Customer(id=f"t{i:05d}", name=f"Tenant {i}"))
        add_integration(engine, Integration(id=f"salesforce.t{i:05d}", customer_id=f"t{i:05d}",
                                            provider="salesforce",
                                            config={"base_url": base}), info)
    with engine.begin() as conn:
        # Nothing new since the cursor, due again half a second after each sync.
        conn.execute(text("UPDATE integration_objects SET cursor = now(), "
                          "frequency_per_day = 172800, next_due_at = now()"))
    engine.dispose()


def run() -> list[Figure]:
    integrations = 2000 if SIZE == "large" else int(os.environ.get("BENCH_BATCH_TENANTS", 200))
    window = float(os.environ.get("BENCH_BATCH_WINDOW", 120))
    logs = ROOT / "test-artifacts" / "bench-batches"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        base = real_stack_base(stack)
        admin_url, akita_url, postmaster = base.admin_url, base.akita_url, base.postmaster
        _seed(akita_url, base.salesforce, integrations)
        objects = _count(akita_url, "SELECT count(*) FROM integration_objects")
        (tmp / "trivial.py").write_text(TRIVIAL)
        akita_ws, trivial_ws = tmp / "akita.yaml", tmp / "trivial.yaml"
        akita_ws.write_text(f"load_from:\n  - python_module:\n      module_name: "
                            f"akita_pipelines.definitions\n      location_name: akita_pipelines\n"
                            f"      working_directory: {ROOT}\n")
        trivial_ws.write_text(f"load_from:\n  - python_file:\n      relative_path: "
                              f"{tmp / 'trivial.py'}\n      location_name: trivial\n")
        base_env = {**base.env, "BENCH_TRIVIAL_RUNS": str(tmp / "trivial_runs")}
        # The runs-per-provider figure matches deploy/dagster.postgres.yaml's limit of 5.
        phases = []
        for name, size in (("batch", "50"), ("single", "1")):
            env, url = _new_dagster(admin_url, f"dagster_{name}",
                                    {**base_env, "AKITA_BATCH_MAX_SIZE": size,
                                     "AKITA_BATCH_RUNS_PER_PROVIDER": "5",
                                     "AKITA_BATCH_REQUESTS_PER_PROVIDER": "20"}, tmp)
            phases.append(_sync_phase(name, env, url, akita_url, akita_ws, logs, postmaster,
                                      window))
        env, url = _new_dagster(admin_url, "dagster_floor", base_env, tmp)
        floor = _floor_phase(env, url, trivial_ws, logs, postmaster,
                             runs=int(os.environ.get("BENCH_FLOOR_RUNS", 10)))
    batch, single = phases
    for p in (*phases, floor):
        print(f"{p.name}: {p.units} units, {p.runs} runs started, {p.cpu:.1f} CPU-s, "
              f"{p.event_rows} event rows in {p.seconds:.0f} s")
    capacity = 2 * 3600 / batch.cpu_per_unit if batch.units else 0.0
    capacity_single = 2 * 3600 / single.cpu_per_unit if single.units else 0.0
    where = (f"{integrations} tenants / {objects} objects all due, {window:.0f} s window, "
             "daemon+code server+run workers+PostgreSQL")

    def met(ok: bool) -> str:
        return "met" if ok else "NOT met"

    return [
        Figure("CPU per object sync, batch runs (real stack)", f"{batch.cpu_per_unit:.3f} s",
               f"{floor.cpu_per_unit:.2f} s per trivial run", "—",
               "≤ 0.1 s at ≥ 1,000 due",
               f"{met(batch.cpu_per_unit <= 0.1 and objects >= 1000)}; {batch.units} syncs in "
               f"{batch.runs} runs; {where}"),
        Figure("CPU per object sync, one run per integration", f"{single.cpu_per_unit:.3f} s",
               f"{floor.cpu_per_unit:.2f} s per trivial run",
               f"{single.cpu_per_unit / batch.cpu_per_unit:.1f}× batch" if batch.units else "—",
               "—", f"{single.units} syncs in {single.runs} runs"),
        Figure("event-log rows per object sync, batch", f"{batch.rows_per_unit:.1f}",
               f"{floor.rows_per_unit:.0f} per trivial run", "—", "≤ 10",
               met(batch.rows_per_unit <= 10)),
        Figure("event-log rows per object sync, one run per integration",
               f"{single.rows_per_unit:.1f}", f"{floor.rows_per_unit:.0f} per trivial run"),
        Figure("objects one 2-core machine keeps synced hourly (from batch CPU)",
               f"{capacity:,.0f}", f"{capacity_single:,.0f} one run per integration",
               f"{capacity / capacity_single:.1f}×" if capacity_single else "—",
               "≥ 20,000", f"{met(capacity >= 20_000)}; all CPU busy, emulator CPU excluded"),
    ]


if __name__ == "__main__":
    from benchmarks.common import render

    print(render(run()))
