"""The peer: dlt's ``rest_api`` source with ``write_disposition="merge"`` loading the same
emulator data into the same database, beside our end-to-end sync (retrieve → stage → type →
match → write). dlt is a benchmark-only dependency (``pip install -e '.[bench]'``)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from benchmarks.common import Figure, sizes
from benchmarks.remote_sandbox import RemoteSandbox


def _token(info: dict[str, Any]) -> str:
    return str(requests.post(f"{info['base_url']}/services/oauth2/token", data={
        "grant_type": "refresh_token", "client_id": info["client_id"],
        "client_secret": info["client_secret"], "refresh_token": info["refresh_token"]},
        timeout=30).json()["access_token"])


def dlt_load(info: dict[str, Any], destination: Any, workdir: str) -> tuple[int, float]:
    import dlt
    from dlt.sources.rest_api import rest_api_source

    from akita_pipelines.providers.registry import get_provider

    stream = get_provider("salesforce").streams["contacts"]
    soql = f"SELECT {', '.join(stream.fields)} FROM Contact ORDER BY SystemModstamp, Id"
    source = rest_api_source({
        "client": {"base_url": info["base_url"] + "/",
                   "auth": {"type": "bearer", "token": _token(info)},
                   "paginator": {"type": "json_link", "next_url_path": "nextRecordsUrl"}},
        "resources": [{"name": "contacts", "primary_key": "Id", "write_disposition": "merge",
                       "endpoint": {"path": "services/data/v59.0/queryAll",
                                    "params": {"q": soql}, "data_selector": "records"}}],
    })
    pipeline = dlt.pipeline(pipeline_name="akita_bench", destination=destination,
                            dataset_name="dlt_bench", pipelines_dir=workdir)
    start = time.perf_counter()
    pipeline.run(source)
    seconds = time.perf_counter() - start
    rows = pipeline.last_trace.last_normalize_info.row_counts.get("contacts", 0)
    return int(rows), seconds


def _sqlite_pair(sandbox: RemoteSandbox, round_: int) -> tuple[float, float, int]:
    """(our rec/s, dlt's rec/s, records) for one run of each into fresh SQLite files."""
    import dlt

    from akita_pipelines.db.engine import make_engine
    from benchmarks.bench_sync import end_to_end

    with tempfile.TemporaryDirectory() as tmp:
        info = dict(sandbox.urls["salesforce"])
        ours_s, _, fetched = end_to_end(make_engine(f"sqlite:///{Path(tmp) / 'o.db'}"), sandbox)
        rows, dlt_s = dlt_load(info, dlt.destinations.sqlalchemy(
            f"sqlite:///{Path(tmp) / 'd.db'}"), tmp)
    return fetched / ours_s, rows / dlt_s, fetched


def _postgres_pair(sandbox: RemoteSandbox, round_: int, admin: str
                   ) -> tuple[float, float, int]:
    """(our rec/s, dlt's rec/s, records) for one run of each into fresh PostgreSQL databases."""
    import dlt

    from akita_pipelines.db.engine import make_engine
    from benchmarks.bench_sync import end_to_end
    from benchmarks.bench_writes import _fresh

    with tempfile.TemporaryDirectory() as tmp:
        info = dict(sandbox.urls["salesforce"])
        ours_s, _, fetched = end_to_end(make_engine(_fresh(admin, f"ours{round_}")), sandbox)
        # dlt insists on a password; the throwaway server trusts local logins.
        peer = _fresh(admin, f"peer{round_}").replace("+psycopg2", "").replace("akita@",
                                                                            "akita:x@")
        rows, dlt_s = dlt_load(info, dlt.destinations.postgres(credentials=peer), tmp)
    return fetched / ours_s, rows / dlt_s, fetched


def _floor(sandbox: RemoteSandbox, label: str, ours: float, peer: float) -> Figure:
    """What blocks 2× dlt: the retrieval alone (our connector reading the same pages, no
    database) in the same run, and the time per record that 2× dlt leaves for the rest."""
    from benchmarks.bench_sync import connector_only

    n, seconds = connector_only(sandbox)
    fetch_us = seconds / n * 1e6
    budget_us = 1e6 / (2 * peer) - fetch_us
    rest_us = 1e6 / ours - fetch_us
    return Figure(f"floor: retrieval alone, {n:,} records ({label} run)",
                  f"{n / seconds:,.0f} rec/s ({fetch_us:.0f} µs a record)",
                  f"2× dlt leaves {budget_us:.0f} µs a record for stage + type + match + "
                  f"write; ours takes {rest_us:.0f}", goal="—",
                  note="the processor works beside the retrieval, but one Python process")


#: Each side's best of this many runs: one run of either moved by ±30 % on a shared machine.
ROUNDS = 2
#: A provider's round trip per query page (both peers wait for it); 0 = the emulator's own pace.
LATENCIES = (0.0, 0.3)


def run() -> list[Figure]:
    from akita_pipelines_tests.pg import postgres_server

    figures = []
    with postgres_server() as admin:
        for n in sizes([10_000], [10_000, 100_000]):
            for latency in LATENCIES:
                with RemoteSandbox(n, latency) as sandbox:
                    for label in ("SQLite", "PostgreSQL"):
                        runs = [_sqlite_pair(sandbox, r) if label == "SQLite"
                                else _postgres_pair(sandbox, r + int(latency * 10) * 10 + n,
                                                    admin)
                                for r in range(ROUNDS)]
                        ours = max(r[0] for r in runs)
                        peer = max(r[1] for r in runs)
                        ratio = ours / peer
                        wait = f", {latency * 1000:.0f} ms a page" if latency else ""
                        figures.append(Figure(
                            f"end to end vs dlt, {runs[0][2]:,} records ({label}{wait})",
                            f"{ours:,.0f} rec/s", f"{peer:,.0f} rec/s (dlt rest_api merge)",
                            f"{ratio:.2f}×", f"≥ 2× dlt {'✓' if ratio >= 2 else '✗'}",
                            note=f"best of {ROUNDS} runs each; emulator in its own process"))
                        if not latency:
                            figures.append(_floor(sandbox, label, ours, peer))
    return figures


if __name__ == "__main__":
    from benchmarks.common import render

    print(render(run()))
