"""Helpers shared by the benchmarks: a result table, timers, throwaway databases."""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SIZE = os.environ.get("BENCH_SIZE", "quick")
BIN = Path(sys.executable).parent


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


def find_postmaster(port: int) -> int | None:
    """The PostgreSQL server listening on ``port`` (its main process), for CPU accounting."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"postgres") and str(port).encode() in b" ".join(cmd):
            return int(entry)
    return None


@dataclass(frozen=True)
class RealStackBase:
    """What the real-stack benchmarks start from: a throwaway PostgreSQL server with an empty
    Akita database, and the Salesforce emulator.

    Attributes:
        admin_url: the server's admin URL (for more databases: Dagster's storage).
        postmaster: the server's main process, whose CPU counts with the stack's.
        akita_url: the Akita database (migrated by whoever seeds it).
        salesforce: the emulator's base URL and credentials.
        env: what the Dagster processes run with: PATH, the PostgreSQL variables
            deploy/dagster.postgres.yaml reads, the Akita database, and this process's
            AKITA_HOME (the key the seeded credentials are encrypted with).
    """

    admin_url: str
    postmaster: int | None
    akita_url: str
    salesforce: dict[str, Any]
    env: dict[str, str]


def real_stack_base(stack: ExitStack) -> RealStackBase:
    """Start the server and the emulator; both stop with ``stack``."""
    from akita_pipelines.db.engine import akita_home
    from akita_pipelines.sandbox.server import start_sandbox
    from akita_pipelines_tests.e2e.stack import _create_database
    from akita_pipelines_tests.pg import postgres_server

    admin_url = stack.enter_context(postgres_server())
    host, port = admin_url.split("@", 1)[1].split("/", 1)[0].split(":")
    akita_url = _create_database(admin_url, "akita")
    sandbox = stack.enter_context(start_sandbox(base_port=0, seed=11, providers=["salesforce"]))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "DAGSTER_PG_HOST": host, "DAGSTER_PG_PORT": port,
           "DAGSTER_PG_USER": "akita", "DAGSTER_PG_PASSWORD": "unused-trust-auth",
           "AKITA_DATABASE_URL": akita_url, "PYTHONUNBUFFERED": "1",
           "AKITA_HOME": str(akita_home())}
    return RealStackBase(admin_url, find_postmaster(int(port)), akita_url,
                         dict(sandbox.urls["salesforce"]), env)
