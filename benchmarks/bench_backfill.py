"""History backfill memory: a full read of N contacts streamed page by page; the syncing
process's peak RSS must stay flat as history grows (the emulator runs in its own process).
With the default settings a history read this large goes through a Salesforce Bulk API 2.0 job
(CSV sets of 10,000); ``bench_bulk`` compares it with REST."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from benchmarks.common import Figure, sizes
from benchmarks.remote_sandbox import history_sandbox

SYNC = textwrap.dedent("""
    import json, sys, time
    from akita_pipelines.core.types import Customer, Integration
    from akita_pipelines.db.engine import make_engine
    from akita_pipelines.db.migrate import upgrade
    from akita_pipelines.onboarding import add_customer, add_integration
    from akita_pipelines.sync.service import sync_object
    urls = json.load(open(sys.argv[1]))["salesforce"]
    engine = make_engine(sys.argv[2]); upgrade(engine)
    base = urls.pop("base_url")
    add_customer(engine, Customer(id="b", name="B"))
    add_integration(engine, Integration(id="salesforce.b", customer_id="b",
                    provider="salesforce", config={"base_url": base}), urls)
    t0 = time.perf_counter()
    result = sync_object(engine, "salesforce.b", "contacts", full=True, since="2000-01-01")
    # VmHWM, not ru_maxrss: ru_maxrss keeps the forking parent's high-water mark across exec.
    hwm = next(int(line.split()[1]) for line in open("/proc/self/status")
               if line.startswith("VmHWM:"))
    print(json.dumps({"records": result.retrieved.records_fetched,
                      "seconds": time.perf_counter() - t0, "rss_mb": hwm / 1024}))
""")


def measure(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "AKITA_HOME": tmp}
        with history_sandbox(Path(tmp) / "urls.json", n, env) as urls:
            done = subprocess.run([sys.executable, "-c", SYNC, str(urls),
                                   f"sqlite:///{Path(tmp) / 'b.db'}"], env=env,
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(done.stderr[-2000:])
            return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def run() -> list[Figure]:
    figures = []
    for n in sizes([20_000, 100_000], [10_000, 100_000, 1_000_000]):
        got = measure(n)
        figures.append(Figure(f"history backfill, {int(got['records']):,} records (SQLite)",
                              f"peak RSS {got['rss_mb']:.0f} MB",
                              goal="≤ 300 MB, flat as history grows",
                              note=f"{got['records'] / got['seconds']:,.0f} rec/s"))
    return figures


if __name__ == "__main__":
    from benchmarks.common import render

    print(render(run()))
