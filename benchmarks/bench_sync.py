"""Sync throughput: retrieval vs a bare requests loop, end to end on SQLite and PostgreSQL,
and an incremental sync of 100 changes vs the full sync of the same object."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import requests
from sqlalchemy import Engine

from akita_pipelines.core.types import Customer, Integration
from akita_pipelines.db.engine import make_engine
from akita_pipelines.db.migrate import upgrade
from akita_pipelines.onboarding import add_customer, add_integration
from akita_pipelines.providers.auth import MemoryCredentialStore
from akita_pipelines.providers.base import ConnectionContext
from akita_pipelines.providers.http import HttpClient
from akita_pipelines.providers.registry import get_provider
from akita_pipelines.sandbox.server import Sandbox, start_sandbox
from akita_pipelines.sync.service import sync_object
from benchmarks.common import Figure, sizes
from benchmarks.remote_sandbox import RemoteSandbox


def _register(engine: Engine, sandbox: Sandbox | RemoteSandbox) -> str:
    info = dict(sandbox.urls["salesforce"])
    base = info.pop("base_url")
    add_customer(engine, Customer(id="bench", name="Bench"))
    add_integration(engine, Integration(id="salesforce.bench", customer_id="bench",
                                        provider="salesforce", config={"base_url": base}), info)
    return "salesforce.bench"


def bare_loop(sandbox: Sandbox | RemoteSandbox) -> tuple[int, float]:
    """The floor: the same query pages fetched and parsed with plain requests."""
    info = sandbox.urls["salesforce"]
    base = info["base_url"]
    token = requests.post(f"{base}/services/oauth2/token", data={
        "grant_type": "refresh_token", "client_id": info["client_id"],
        "client_secret": info["client_secret"], "refresh_token": info["refresh_token"]},
        timeout=30).json()["access_token"]
    stream = get_provider("salesforce").streams["contacts"]
    soql = (f"SELECT {', '.join(stream.fields)} FROM Contact ORDER BY SystemModstamp, Id")
    headers = {"Authorization": f"Bearer {token}"}
    start = time.perf_counter()
    body = requests.get(f"{base}/services/data/v59.0/queryAll", params={"q": soql},
                        headers=headers, timeout=60).json()
    n = len(body["records"])
    while not body["done"]:
        body = requests.get(base + body["nextRecordsUrl"], headers=headers, timeout=60).json()
        n += len(body["records"])
    return n, time.perf_counter() - start


def connector_only(sandbox: Sandbox | RemoteSandbox) -> tuple[int, float]:
    info = dict(sandbox.urls["salesforce"])
    base = info.pop("base_url")
    spec = get_provider("salesforce")
    ctx = ConnectionContext("salesforce.bench", {"base_url": base}, MemoryCredentialStore(info),
                            HttpClient())
    connector = spec.connect(ctx)
    start = time.perf_counter()
    n = sum(len(page.records) for page in connector.read_changes(spec.streams["contacts"], None))
    return n, time.perf_counter() - start


def end_to_end(engine: Engine, sandbox: Sandbox | RemoteSandbox) -> tuple[float, float, int]:
    """(full sync seconds, incremental sync of 100 changes seconds, records fetched)."""
    upgrade(engine)
    integration = _register(engine, sandbox)
    start = time.perf_counter()
    full = sync_object(engine, integration, "contacts")
    full_s = time.perf_counter() - start
    if isinstance(sandbox, RemoteSandbox):
        sandbox.touch("Contact", 100)
    else:
        sandbox.emulators["salesforce"].touch("Contact", count=100)
    start = time.perf_counter()
    incremental = sync_object(engine, integration, "contacts")
    inc_s = time.perf_counter() - start
    assert incremental.processed.processed == 100
    return full_s, inc_s, full.retrieved.records_fetched


def run() -> list[Figure]:
    from akita_pipelines_tests.pg import postgres_server
    from benchmarks.bench_writes import _fresh

    figures: list[Figure] = []
    for n in sizes([10_000], [100_000]):
        with start_sandbox(base_port=0, seed=1, providers=["salesforce"]) as sandbox:
            sandbox.emulators["salesforce"].add_history("Contact", n)
            ours_n, ours_s = connector_only(sandbox)
            bare_n, bare_s = bare_loop(sandbox)
            figures.append(Figure(
                f"retrieval, {ours_n:,} records", f"{ours_n / ours_s:,.0f} rec/s",
                f"{bare_n / bare_s:,.0f} rec/s (bare requests)",
                f"{(ours_n / ours_s) / (bare_n / bare_s):.0%}", "≥ 70 % of the bare loop"))
            with tempfile.TemporaryDirectory() as tmp:
                full_s, inc_s, fetched = end_to_end(
                    make_engine(f"sqlite:///{Path(tmp) / 's.db'}"), sandbox)
            figures.append(Figure(f"end to end, {fetched:,} records (SQLite)",
                                  f"{fetched / full_s:,.0f} rec/s", goal="≥ 2× dlt"))
            figures.append(Figure(f"incremental: 100 changed of {fetched:,} (SQLite)",
                                  f"{inc_s:.2f} s", f"{full_s:.2f} s (full sync)",
                                  f"{inc_s / full_s:.1%}", "≤ 2 % of the full sync"))
        with start_sandbox(base_port=0, seed=1, providers=["salesforce"]) as sandbox:
            sandbox.emulators["salesforce"].add_history("Contact", n)
            with postgres_server() as admin:
                full_s, inc_s, fetched = end_to_end(make_engine(_fresh(admin, "bench_e2e")),
                                                    sandbox)
            figures.append(Figure(f"end to end, {fetched:,} records (PostgreSQL)",
                                  f"{fetched / full_s:,.0f} rec/s", goal="≥ 2× dlt"))
            figures.append(Figure(f"incremental: 100 changed of {fetched:,} (PostgreSQL)",
                                  f"{inc_s:.2f} s", f"{full_s:.2f} s (full sync)",
                                  f"{inc_s / full_s:.1%}", "≤ 2 % of the full sync"))
    return figures


if __name__ == "__main__":
    from benchmarks.common import render

    print(render(run()))
