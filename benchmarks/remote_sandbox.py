"""The Salesforce emulator in its own process, as a provider is: its CPU is not the syncing
process's, and both peers of a comparison read the same server. ``latency`` delays every query
page (a provider's round trip; Salesforce answers a 2,000-record page in a few hundred ms)."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import requests


def _serve(records: int, latency: float, urls: Any, stop: Any) -> None:
    from akita_pipelines.sandbox.server import start_sandbox

    with start_sandbox(base_port=0, seed=1, providers=["salesforce"]) as sandbox:
        sandbox.emulators["salesforce"].add_history("Contact", records)
        server = sandbox.servers["salesforce"]
        inner = server.app

        def delayed(environ: dict[str, Any], start_response: Any) -> Any:
            if "/query" in environ.get("PATH_INFO", ""):
                time.sleep(latency)  # outside the emulator's lock: pages may overlap
            return inner(environ, start_response)

        if latency:
            server.app = delayed
        urls.put(sandbox.urls)
        stop.wait()


class RemoteSandbox:
    """``with RemoteSandbox(10_000) as sandbox:`` → ``sandbox.urls`` as ``Sandbox.urls``."""

    def __init__(self, records: int, latency: float = 0.0) -> None:
        context = multiprocessing.get_context("spawn")
        self._urls, self._stop = context.Queue(), context.Event()
        self._process = context.Process(target=_serve, daemon=True,
                                        args=(records, latency, self._urls, self._stop))
        self.urls: dict[str, dict[str, Any]] = {}

    def __enter__(self) -> RemoteSandbox:
        self._process.start()
        self.urls = self._urls.get(timeout=600)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._process.join(30)

    def touch(self, sobject: str, count: int) -> None:
        """Change ``count`` records (the emulator's admin API)."""
        requests.post(f"{self.urls['salesforce']['base_url']}/__sandbox/touch",
                      json={"sobject": sobject, "count": count}, timeout=60).raise_for_status()


@contextmanager
def history_sandbox(urls: Path, contacts: int, env: Mapping[str, str], *,
                    timeout: float = 600) -> Iterator[Path]:
    """``akita sandbox serve`` in its own process with ``contacts`` contacts of history and no
    churn; yields the file its URLs are written to once it is serving (the syncs under
    measurement run in processes of their own and read it)."""
    server = subprocess.Popen([sys.executable, "-m", "akita_pipelines.cli", "sandbox", "serve",
                               "--base-port", "0", "--urls-file", str(urls),
                               "--churn-per-minute", "0", "--history-contacts", str(contacts)],
                              env=dict(env), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while not urls.exists() and time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"the sandbox exited with {server.returncode}")
            time.sleep(0.5)
        yield urls
    finally:
        server.terminate()
        server.wait(timeout=30)


#: A history read of the sandbox's contacts in a process of its own: ``python -c HISTORY_SYNC
#: <urls file> <database url> [bulk_threshold]``; prints one JSON line (records, seconds,
#: retrieve_seconds, api_calls, rss_mb).
HISTORY_SYNC = textwrap.dedent("""
    import json, sys, time
    from akita_pipelines.core.types import Customer, Integration
    from akita_pipelines.db.engine import make_engine
    from akita_pipelines.db.migrate import upgrade
    from akita_pipelines.onboarding import add_customer, add_integration
    from akita_pipelines.sync.service import sync_object
    urls = json.load(open(sys.argv[1]))["salesforce"]
    engine = make_engine(sys.argv[2]); upgrade(engine)
    config = {"base_url": urls.pop("base_url")}
    if len(sys.argv) > 3:
        config["bulk_threshold"] = int(sys.argv[3])
    add_customer(engine, Customer(id="b", name="B"))
    add_integration(engine, Integration(id="salesforce.b", customer_id="b",
                    provider="salesforce", config=config), urls)
    t0 = time.perf_counter()
    result = sync_object(engine, "salesforce.b", "contacts", full=True, since="2000-01-01")
    # VmHWM, not ru_maxrss: ru_maxrss keeps the forking parent's high-water mark across exec.
    hwm = next(int(line.split()[1]) for line in open("/proc/self/status")
               if line.startswith("VmHWM:"))
    print(json.dumps({"records": result.retrieved.records_fetched,
                      "seconds": time.perf_counter() - t0,
                      "retrieve_seconds": result.retrieved.seconds,
                      "api_calls": result.retrieved.http["api_calls"], "rss_mb": hwm / 1024}))
""")
