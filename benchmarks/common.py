"""Helpers shared by the benchmarks: a result table, timers, throwaway databases."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SIZE = os.environ.get("BENCH_SIZE", "quick")


def sizes(quick: list[int], large: list[int]) -> list[int]:
    return large if SIZE == "large" else quick


@dataclass
class Figure:
    name: str
    ours: str
    floor: str = "—"
    ratio: str = "—"
    goal: str = "—"
    note: str = ""


@dataclass
class Timer:
    wall: float = 0.0
    cpu: float = 0.0


@contextmanager
def timed() -> Iterator[Timer]:
    t = Timer()
    w0, c0 = time.perf_counter(), time.process_time()
    yield t
    t.wall = time.perf_counter() - w0
    t.cpu = time.process_time() - c0


def best_of(n: int, fn: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def render(figures: list[Figure]) -> str:
    headers = ["figure", "ours", "floor / peer", "ratio", "goal", "note"]
    rows = [[f.name, f.ours, f.floor, f.ratio, f.goal, f.note] for f in figures]
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    out = [" | ".join(str(c).ljust(w) for c, w in zip(headers, widths, strict=True))]
    out.append("-+-".join("-" * w for w in widths))
    out += [" | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def sqlite_url(tmp: Path) -> str:
    return f"sqlite:///{tmp / 'bench.db'}"
