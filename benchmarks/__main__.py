"""Run every benchmark and print one table (``make bench``; ``BENCH_SIZE=large`` for full)."""

from __future__ import annotations

import importlib
import sys
import traceback

from benchmarks.common import SIZE, Figure, render

MODULES = ["bench_orchestration", "bench_batches", "bench_scheduler", "bench_sync",
           "bench_writes", "bench_dlt", "bench_backfill", "bench_bulk", "bench_faults",
           "bench_matching", "matching_sets", "bench_push", "bench_sql_sources",
           "bench_scale"]  # bench_scale: BENCH_SCALE=1 or large


def main() -> int:
    figures: list[Figure] = []
    for name in MODULES:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
            figures.extend(module.run())
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others
            traceback.print_exc()
            figures.append(Figure(name, "failed", note="see the traceback above"))
    print(f"\nAkita Pipelines benchmarks (size: {SIZE})\n")
    print(render(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
