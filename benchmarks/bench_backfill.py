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
from pathlib import Path

from benchmarks.common import Figure, sizes
from benchmarks.remote_sandbox import HISTORY_SYNC, history_sandbox


def measure(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "AKITA_HOME": tmp}
        with history_sandbox(Path(tmp) / "urls.json", n, env) as urls:
            done = subprocess.run([sys.executable, "-c", HISTORY_SYNC, str(urls),
                                   f"sqlite:///{Path(tmp) / 'b.db'}"], env=env,
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(done.stderr[-2000:])
            return dict(json.loads(done.stdout.strip().splitlines()[-1]))


#: Issue 17's targets: peak RSS at any size, and the largest read's rate against 100k's.
RSS_GOAL_MB = 200
FLAT_SHARE = 0.8


def run() -> list[Figure]:
    figures = []
    rate_100k: float | None = None
    for n in sizes([20_000, 100_000], [10_000, 100_000, 1_000_000]):
        got = measure(n)
        rate = got["records"] / got["seconds"]
        rate_100k = rate if n == 100_000 else rate_100k
        rss_ok = got["rss_mb"] <= RSS_GOAL_MB
        goal = f"≤ {RSS_GOAL_MB} MB {'✓' if rss_ok else '✗'}"
        ratio = "—"
        if n > 100_000 and rate_100k:
            share = rate / rate_100k
            ratio = f"{share:.0%} of 100k"
            goal += f"; ≥ {FLAT_SHARE:.0%} of the 100k rate {'✓' if share >= FLAT_SHARE else '✗'}"
        figures.append(Figure(f"history backfill, {int(got['records']):,} records (SQLite)",
                              f"peak RSS {got['rss_mb']:.0f} MB", ratio=ratio, goal=goal,
                              note=f"{rate:,.0f} rec/s"))
    return figures


if __name__ == "__main__":
    from benchmarks.common import render

    print(render(run()))
