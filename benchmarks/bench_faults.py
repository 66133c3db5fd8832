"""The fault suite at benchmark size: many syncs under faults, then a clean final sync."""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks.common import Figure, sizes


def run() -> list[Figure]:
    from akita_pipelines.db.engine import make_engine
    from akita_pipelines.db.migrate import upgrade
    from akita_pipelines.sandbox.server import start_sandbox
    from akita_pipelines_tests.fault_suite import run_fault_suite
    from benchmarks.bench_sync import _register

    rounds = sizes([200], [2000])[0]
    with tempfile.TemporaryDirectory() as tmp, \
            start_sandbox(base_port=0, seed=5, providers=["salesforce"]) as sandbox:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'f.db'}")
        upgrade(engine)
        integration = _register(engine, sandbox)
        report = run_fault_suite(engine, sandbox, integration, rounds=rounds, seed=11)
    for name, value in report.rows():
        print(f"{name:26s} {value}")
    return [Figure(f"fault suite, {rounds} rounds", f"lost {report.lost}, dup {report.duplicates}",
                   goal="0 lost, 0 duplicates",
                   note=f"{report.succeeded}/{report.attempted} syncs ok, "
                        f"{sum(report.faults.values())} faults, {report.alerts} alerts")]


if __name__ == "__main__":
    from benchmarks.common import render

    print(render(run()))
