"""The real stack for end-to-end tests: PostgreSQL, the emulators, the Dagster daemon and webserver.

``running_stack()`` starts a throwaway PostgreSQL server (two databases: Dagster's storage and
the Akita database), writes ``$DAGSTER_HOME/dagster.yaml`` from ``deploy/dagster.postgres.yaml``
(so the production file itself is what runs), serves the Salesforce emulator, registers three
integrations and starts ``dagster-daemon run`` and ``dagster-webserver`` on ``workspace.yaml``.
Every process it starts runs in its own process group, which is killed on the way out, even when
a test fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, text

from akita_pipelines.control.client import ControlError, DagsterControl
from akita_pipelines.core.types import Customer, Integration
from akita_pipelines.db.engine import akita_home, make_engine
from akita_pipelines.db.migrate import upgrade
from akita_pipelines.onboarding import add_customer, add_integration
from akita_pipelines.sandbox.server import Sandbox, start_sandbox
from akita_pipelines_tests.pg import postgres_server

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
BIN = Path(sys.executable).parent
CUSTOMERS = ("acme", "globex", "initech")
#: Added to every emulator response. The daemon launches runs a few seconds apart and an
#: emulator sync takes about a second, so without it two runs of one partition would hardly
#: ever overlap even with no concurrency limit, and the non-overlap check could not fail.
API_LATENCY_SECONDS = 0.4

T = TypeVar("T")

RUNS_QUERY = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    ... on Runs { results { runId status creationTime startTime endTime
                            tags { key value } } }
  }
}
"""


@dataclass(frozen=True)
class StoredRun:
    """One row of Dagster's run storage (``runs`` + its tags)."""

    run_id: str
    status: str
    partition: str | None
    start_time: float | None
    end_time: float | None
    tags: dict[str, str]

    @property
    def trigger(self) -> str:
        return "backfill" if "dagster/backfill" in self.tags else self.tags.get(
            "akita/trigger", "?")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], T | None], *, timeout: float, what: str,
             interval: float = 0.5) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Stack:
    url: str
    dagster_home: Path
    dagster_db_url: str
    akita_db_url: str
    env: dict[str, str]
    integrations: list[str]
    logs: Path
    #: The emulators' base URLs and credentials, by provider.
    sandbox_urls: dict[str, dict[str, Any]] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def control(self) -> DagsterControl:
        return DagsterControl(self.url, timeout=60)

    def akita(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        """Run the ``akita`` command against this stack; output is kept for the test log."""
        done = subprocess.run([str(BIN / "akita"), *args], env=self.env, cwd=ROOT, text=True,
                              capture_output=True, timeout=timeout, check=False)
        sys.stdout.write(f"$ akita {' '.join(args)}\n{done.stdout}{done.stderr}")
        return done

    def stored_runs(self) -> list[StoredRun]:
        """Every run, read from the run storage tables themselves (not through the webserver)."""
        engine = create_engine(self.dagster_db_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(text(
                    "SELECT run_id, status, partition, start_time, end_time FROM runs")).all()
                tags: dict[str, dict[str, str]] = {}
                for run_id, key, value in conn.execute(text(
                        "SELECT run_id, key, value FROM run_tags")):
                    tags.setdefault(run_id, {})[key] = value
        finally:
            engine.dispose()
        return [StoredRun(r.run_id, r.status, r.partition, r.start_time, r.end_time,
                          tags.get(r.run_id, {})) for r in rows]

    def run_creation_times(self) -> dict[str, float]:
        """When each run was created (queued), as the webserver reports it."""
        data = self.control.execute(RUNS_QUERY, {"filter": {}})
        return {r["runId"]: r["creationTime"] for r in data["runsOrError"]["results"]}

    def akita_sql(self, statement: str, **params: Any) -> None:
        """Change the Akita database directly (what only time or an outage would do)."""
        engine = create_engine(self.akita_db_url)
        try:
            with engine.begin() as conn:
                conn.execute(text(statement), params)
        finally:
            engine.dispose()

    def dagster(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the ``dagster`` command against this stack's instance and workspace."""
        done = subprocess.run([str(BIN / "dagster"), *args, "-w", "workspace.yaml"],
                              env=self.env, cwd=ROOT, text=True, capture_output=True,
                              timeout=120, check=False)
        sys.stdout.write(f"$ dagster {' '.join(args)}\n{done.stdout}{done.stderr}")
        return done

    def check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.logs}")

    def wait_for_sensor_runs(self, timeout: float = 150) -> list[StoredRun]:
        """Until every integration has a successful run launched by the scheduler sensor."""
        def done() -> list[StoredRun] | None:
            self.check_alive()
            runs = [r for r in self.stored_runs() if r.tags.get("akita/trigger") == "sensor"]
            failed = [r for r in runs if r.status == "FAILURE"]
            if failed:
                raise AssertionError(f"sensor runs failed: {[r.run_id for r in failed]}")
            ok = {r.partition for r in runs if r.status == "SUCCESS"}
            return runs if ok >= set(self.integrations) else None
        return wait_for(done, timeout=timeout, what="successful sensor runs of every integration")


def _spawn(name: str, cmd: list[str], env: dict[str, str], logs: Path
           ) -> subprocess.Popen[bytes]:
    with (logs / f"{name}.log").open("ab") as out:
        # A new session: the process and everything it starts (code servers, run workers)
        # share one process group that we kill as a whole.
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left of it."""
    for sig, grace in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; its group may not be.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return


def _strays(dagster_home: Path) -> list[int]:
    """Processes still running with our DAGSTER_HOME (e.g. a run worker that left the group)."""
    marker = f"DAGSTER_HOME={dagster_home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def _kill_strays(dagster_home: Path) -> None:
    for pid in _strays(dagster_home):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _with_latency(app: Callable[..., Any], seconds: float) -> Callable[..., Any]:
    def slow(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        time.sleep(seconds)
        return app(environ, start_response)
    return slow


def _create_database(admin_url: str, name: str) -> str:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def register(engine: Engine, sandbox_urls: Mapping[str, Mapping[str, Any]],
             providers: Sequence[str], customers: Sequence[str]) -> list[str]:
    """One integration per customer and provider, pointing at the emulators; their ids."""
    ids = []
    for customer in customers:
        add_customer(engine, Customer(id=customer, name=customer.title()))
        for provider in providers:
            info = dict(sandbox_urls[provider])
            integration_id = f"{provider}.{customer}"
            add_integration(engine, Integration(
                id=integration_id, customer_id=customer, provider=provider,
                config={"base_url": info.pop("base_url")}), info)
            ids.append(integration_id)
    return ids


def start_stack(stack: ExitStack, *, label: str, providers: Sequence[str],
                customers: Sequence[str], latency: float = 0.0,
                services: Mapping[str, list[str]] | None = None
                ) -> tuple[Stack, Sandbox, Engine]:
    """Start PostgreSQL, the emulators of ``providers`` (each response ``latency`` seconds
    late), the integrations, ``services`` (name → command) and the Dagster webserver and
    daemon; every stop is registered on ``stack``. Logs go to ``test-artifacts/<label>-logs``.
    Returns the stack, the sandbox and an engine on the Akita database."""
    admin_url = stack.enter_context(postgres_server())
    dagster_db_url = _create_database(admin_url, "dagster")
    akita_db_url = _create_database(admin_url, "akita")
    home = Path(tempfile.mkdtemp(prefix=f"akita-{label}-"))
    stack.callback(shutil.rmtree, home, True)
    dagster_home = home / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.postgres.yaml", dagster_home / "dagster.yaml")
    logs = ARTIFACTS / f"{label}-logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)

    sandbox = stack.enter_context(start_sandbox(providers=list(providers), seed=11))
    if latency:
        for server in sandbox.servers.values():
            server.app = _with_latency(server.app, latency)
    engine = make_engine(akita_db_url)
    stack.callback(engine.dispose)
    upgrade(engine)
    integrations = register(engine, sandbox.urls, providers, customers)

    # host:port/db of the throwaway server, in the variables the production file reads.
    rest = admin_url.split("@", 1)[1]
    host, port = rest.split("/", 1)[0].split(":")
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DAGSTER_HOME": str(dagster_home),
        "DAGSTER_PG_HOST": host, "DAGSTER_PG_PORT": port, "DAGSTER_PG_USER": "akita",
        "DAGSTER_PG_PASSWORD": "unused-trust-auth", "DAGSTER_PG_DB": "dagster",
        "AKITA_DATABASE_URL": akita_db_url,
        # The processes decrypt the credentials this one encrypted: the same home, the same key.
        "AKITA_HOME": str(akita_home()),
        "PYTHONUNBUFFERED": "1",
    }
    # Create Dagster's tables once, before two processes race to create them.
    subprocess.run([str(BIN / "dagster"), "instance", "migrate"], env=env, cwd=ROOT,
                   check=True, capture_output=True, timeout=120)

    web_port = free_port()
    result = Stack(url=f"http://127.0.0.1:{web_port}", dagster_home=dagster_home,
                   dagster_db_url=dagster_db_url, akita_db_url=akita_db_url, env=env,
                   integrations=integrations, logs=logs, sandbox_urls=dict(sandbox.urls))
    stack.callback(_kill_strays, dagster_home)
    for name, cmd in {
        **(services or {}),
        "webserver": [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(web_port),
                      "-w", "workspace.yaml"],
        "daemon": [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
    }.items():
        proc = _spawn(name, cmd, env, logs)
        result.processes[name] = proc
        stack.callback(_stop, proc)
    return result, sandbox, engine


@contextmanager
def running_stack() -> Iterator[Stack]:
    """Start everything; yield the :class:`Stack`; stop everything (also on errors)."""
    with ExitStack() as stack:
        result, _, _ = start_stack(stack, label="e2e", providers=["salesforce"],
                                   customers=CUSTOMERS, latency=API_LATENCY_SECONDS)

        def ready() -> bool:
            result.check_alive()
            try:
                return bool(result.control.group_assets("salesforce"))
            except ControlError:
                return False

        wait_for(ready, timeout=120, what="the webserver to load the code location")
        (result.logs / "stack.json").write_text(json.dumps(
            {"url": result.url, "integrations": result.integrations}, indent=2))
        yield result
