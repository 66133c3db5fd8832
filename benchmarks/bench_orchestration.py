"""Orchestration cost per sync run: a fresh process imports the code location and executes one
partition's run with run bookkeeping on a SQLite Dagster instance — what every run launched by
the default run launcher pays. The floor is the same for a trivial one-asset code location."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from benchmarks.common import Figure

OURS = textwrap.dedent("""
    import sys, time
    from dagster import AssetKey, DagsterInstance
    t0 = time.process_time()
    from akita_pipelines.definitions import defs
    import_cpu = time.process_time() - t0
    instance = DagsterInstance.get()
    integration = sys.argv[1]
    if not instance.has_dynamic_partition("salesforce_integrations", integration):
        instance.add_dynamic_partitions("salesforce_integrations", [integration])
    job = defs.resolve_job_def("salesforce_sync")
    result = job.execute_in_process(instance=instance, partition_key=integration,
                                    asset_selection=[AssetKey(["salesforce", "accounts"])])
    assert result.success
    print(import_cpu)
""")

TRIVIAL = textwrap.dedent("""
    import time
    from dagster import DagsterInstance, Definitions, asset, define_asset_job
    t0 = time.process_time()
    @asset
    def trivial() -> int:
        return 1
    defs = Definitions(assets=[trivial], jobs=[define_asset_job("j", selection=[trivial])])
    import_cpu = time.process_time() - t0
    assert defs.resolve_job_def("j").execute_in_process(instance=DagsterInstance.get()).success
    print(import_cpu)
""")


def _child_cpu(code: str, args: list[str], env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-c", code, *args], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    out = done.stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, float(out.strip().splitlines()[-1])


def run() -> list[Figure]:
    from akita_pipelines.db.engine import akita_home, make_engine
    from akita_pipelines.db.migrate import upgrade
    from akita_pipelines.sandbox.server import start_sandbox
    from benchmarks.bench_sync import _register

    with tempfile.TemporaryDirectory() as tmp, \
            start_sandbox(base_port=0, seed=2, providers=["salesforce"]) as sandbox:
        home = Path(tmp) / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        url = f"sqlite:///{Path(tmp) / 'akita.db'}"
        engine = make_engine(url)
        upgrade(engine)
        integration = _register(engine, sandbox)
        root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "DAGSTER_HOME": str(home), "AKITA_DATABASE_URL": url,
               "AKITA_HOME": str(akita_home()), "PYTHONPATH": root}
        _child_cpu(OURS, [integration], env)  # first run: the full sync
        ours = [_child_cpu(OURS, [integration], env) for _ in range(3)]  # incremental runs
        floor = [_child_cpu(TRIVIAL, [], env) for _ in range(3)]
    ours_cpu = min(c for c, _ in ours)
    floor_cpu = min(c for c, _ in floor)
    import_cpu = min(i for _, i in ours)
    print(json.dumps({"ours_cpu": ours_cpu, "floor_cpu": floor_cpu, "import": import_cpu}))
    return [
        Figure("orchestration CPU per sync run (process + import + run)", f"{ours_cpu:.2f} s",
               f"{floor_cpu:.2f} s (trivial asset run)", f"{ours_cpu / floor_cpu:.2f}×",
               "≤ 2.0 s CPU"),
        Figure("code location import (CPU)", f"{import_cpu:.2f} s", goal="≤ 1.0 s"),
    ]


if __name__ == "__main__":
    from benchmarks.common import render

    print(render(run()))
