"""Reading a large customer table through the sql provider, engine by engine.

For MariaDB, PostgreSQL (throwaway servers), DuckDB and SQLite files: rows per second and
the process's RSS growth while ``read_changes`` streams a table of ~600-byte rows, against
the bare driver reading the same rows, and (MariaDB, PostgreSQL) against a buffered cursor,
which is what the connector would hold without server-side cursors. Each read runs in a fresh
process.

``python -m benchmarks.bench_sql_sources`` (200,000 rows; ``BENCH_SIZE=large``: 1,000,000).
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from akita_pipelines.providers.auth import MemoryCredentialStore
from akita_pipelines.providers.base import ConnectionContext
from akita_pipelines.providers.http import HttpClient
from akita_pipelines.providers.sql import PROVIDER
from benchmarks.common import Figure, sizes

PAGE = 5000  # the provider's default page size

_FILL = {
    "mariadb": "INSERT INTO events SELECT seq, REPEAT(MD5(seq), 16), "
               "FROM_UNIXTIME(1704067200 + seq) FROM seq_1_to_{n}",
    "postgres": "INSERT INTO events SELECT g, repeat(md5(g::text), 16), "
                "timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' "
                "FROM generate_series(1, {n}) g",
    "duckdb": "INSERT INTO events SELECT g, repeat(md5(g::VARCHAR), 16), "
              "TIMESTAMPTZ '2024-01-01 00:00:00+00' + g * INTERVAL 1 SECOND "
              "FROM range(1, {n} + 1) r(g)",
    "sqlite": "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {n}) "
              "INSERT INTO events SELECT i, hex(randomblob(256)), "
              "datetime(1704067200 + i, 'unixepoch') FROM g",
}
_STAMP = {"mariadb": "TIMESTAMP", "postgres": "timestamptz", "duckdb": "TIMESTAMPTZ",
          "sqlite": "TEXT"}


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _connector_pages(url: str) -> Iterator[int]:
    config = {"url": url, "streams": {"product_usage": {
        "table": "events", "primary_key": "id", "updated_at": "updated_at"}}}
    ctx = ConnectionContext("sql.bench", config, MemoryCredentialStore({}), HttpClient(),
                            page_size=PAGE)
    stream = PROVIDER.streams_for(config)["product_usage"]
    for page in PROVIDER.connect(ctx).read_changes(stream, None):
        yield len(page.records)


def _driver_rows(url: str, stream: bool) -> Iterator[int]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=stream).exec_driver_sql(
                "SELECT * FROM events ORDER BY updated_at, id")
            while rows := result.fetchmany(PAGE):
                yield len(rows)
    finally:
        engine.dispose()


def _measure(how: str, url: str) -> tuple[int, float, float]:
    """In a fresh process: rows, seconds, and the peak RSS growth (MiB) while reading."""
    batches = (_connector_pages(url) if how == "connector"
               else _driver_rows(url, stream=how == "driver"))
    # Load the dialect and driver first: their import is not the read's memory.
    warm = create_engine(url, poolclass=NullPool)
    with warm.connect() as conn:
        conn.exec_driver_sql("SELECT 1").all()
    warm.dispose()
    base, peak, rows = _rss(), 0, 0
    started = time.perf_counter()
    for count in batches:
        rows += count
        peak = max(peak, _rss() - base)
    return rows, time.perf_counter() - started, peak / 2**20


def _isolated(how: str, url: str) -> tuple[int, float, float]:
    # One process per measurement: memory one read freed would hide the next one's growth.
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_measure, how, url).result()


def _servers(stack: ExitStack, tmp: Path) -> dict[str, str]:
    from akita_pipelines_tests.mariadb import mariadb_server
    from akita_pipelines_tests.pg import postgres_server

    maria = stack.enter_context(mariadb_server())
    pg = stack.enter_context(postgres_server())
    admin = create_engine(maria, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(text("CREATE DATABASE bench"))
    admin.dispose()
    admin = create_engine(pg, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text("CREATE DATABASE bench"))
    admin.dispose()
    return {"mariadb": maria.rstrip("/") + "/bench",
            "postgres": pg.rsplit("/", 1)[0] + "/bench",
            "duckdb": f"duckdb:///{tmp / 'bench.duckdb'}",
            "sqlite": f"sqlite:///{tmp / 'bench.db'}"}


def run() -> list[Figure]:
    n = sizes([200_000], [1_000_000])[0]
    figures: list[Figure] = []
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        urls = _servers(stack, Path(tmp))
        for kind, url in urls.items():
            engine = create_engine(url, poolclass=NullPool)
            with engine.begin() as conn:
                conn.execute(text(f"CREATE TABLE events (id BIGINT PRIMARY KEY, payload TEXT, "
                                  f"updated_at {_STAMP[kind]} NOT NULL)"))
                conn.execute(text(_FILL[kind].format(n=n)))
            engine.dispose()
            rows, seconds, rss = _isolated("connector", url)
            assert rows == n, (kind, rows)
            _, floor_s, floor_rss = _isolated("driver", url)
            note = f"RSS +{rss:.0f} MiB (bare driver +{floor_rss:.0f} MiB)"
            if kind in ("mariadb", "postgres"):
                _, _, buffered = _isolated("buffered", url)
                note += f"; a buffered cursor +{buffered:.0f} MiB"
            elif kind == "duckdb":
                note += "; DuckDB's client does not stream: the result sits in its memory"
            figures.append(Figure(
                f"sql source {kind}: read {n:,} rows", f"{rows / seconds:,.0f} rows/s",
                floor=f"{n / floor_s:,.0f} rows/s bare driver",
                ratio=f"{seconds / floor_s:.1f}x", note=note))
    return figures


def main() -> None:
    for figure in run():
        print(f"{figure.name}: {figure.ours} | {figure.floor} | {figure.ratio} | {figure.note}")


if __name__ == "__main__":
    main()
