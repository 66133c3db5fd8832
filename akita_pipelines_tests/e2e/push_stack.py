"""The real stack with push: PostgreSQL, the pushing emulators, the webhook receiver
(``akita push serve``), the Dagster daemon and webserver.

Integrations poll at the default frequency (4 a day), so once their first sync is done a
change can only reach the database within minutes through a notification. Used by the e2e
test and by the freshness benchmark.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from akita_pipelines.core.types import Customer, Integration
from akita_pipelines.db.engine import akita_home, make_engine
from akita_pipelines.db.migrate import upgrade
from akita_pipelines.db.schema import account_links, interactions
from akita_pipelines.onboarding import add_customer, add_integration
from akita_pipelines.push.subscribe import subscribe_sandbox
from akita_pipelines.sandbox.server import Sandbox, start_sandbox
from akita_pipelines_tests.e2e.stack import (
    ARTIFACTS,
    BIN,
    ROOT,
    Stack,
    _create_database,
    _kill_strays,
    _spawn,
    _stop,
    free_port,
    wait_for,
)
from akita_pipelines_tests.pg import postgres_server


@dataclass
class PushStack:
    stack: Stack
    sandbox: Sandbox
    engine: Engine
    receiver_url: str
    integrations: list[str] = field(default_factory=list)

    def linked_at(self, integration_id: str, external_id: str) -> Any:
        """When the record was linked to a matched account (``None`` until it is)."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(account_links.c.linked_at)
                .join(interactions, interactions.c.id == account_links.c.interaction_id)
                .where(interactions.c.integration_id == integration_id,
                       interactions.c.external_id == external_id)).scalar_one_or_none()

    def wait_first_syncs(self, timeout: float = 240) -> None:
        """Until every integration's first (polling) run succeeded."""
        def done() -> bool:
            self.stack.check_alive()
            runs = self.stack.stored_runs()
            ok = {r.partition for r in runs if r.status == "SUCCESS"}
            return ok >= set(self.integrations)
        wait_for(done, timeout=timeout, what="first syncs of every integration")


@contextmanager
def running_push_stack(providers: tuple[str, ...] = ("stripe",),
                       customers: tuple[str, ...] = ("acme",)) -> Iterator[PushStack]:
    """Start everything; yield the :class:`PushStack`; stop everything (also on errors)."""
    with ExitStack() as stack:
        admin_url = stack.enter_context(postgres_server())
        dagster_db_url = _create_database(admin_url, "dagster")
        akita_db_url = _create_database(admin_url, "akita")
        home = Path(tempfile.mkdtemp(prefix="akita-push-e2e-"))
        stack.callback(shutil.rmtree, home, True)
        dagster_home = home / "dagster_home"
        dagster_home.mkdir()
        shutil.copy(ROOT / "deploy" / "dagster.postgres.yaml", dagster_home / "dagster.yaml")
        logs = ARTIFACTS / "push-e2e-logs"
        shutil.rmtree(logs, ignore_errors=True)
        logs.mkdir(parents=True)

        sandbox = stack.enter_context(start_sandbox(providers=list(providers), seed=11))
        engine = make_engine(akita_db_url)
        stack.callback(engine.dispose)
        upgrade(engine)
        ids = []
        for customer in customers:
            add_customer(engine, Customer(id=customer, name=customer.title()))
            for provider in providers:
                info = dict(sandbox.urls[provider])
                integration_id = f"{provider}.{customer}"
                add_integration(engine, Integration(
                    id=integration_id, customer_id=customer, provider=provider,
                    config={"base_url": info.pop("base_url")}), info)
                ids.append(integration_id)

        rest = admin_url.split("@", 1)[1]
        host, port = rest.split("/", 1)[0].split(":")
        env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "DAGSTER_HOME": str(dagster_home),
            "DAGSTER_PG_HOST": host, "DAGSTER_PG_PORT": port, "DAGSTER_PG_USER": "akita",
            "DAGSTER_PG_PASSWORD": "unused-trust-auth", "DAGSTER_PG_DB": "dagster",
            "AKITA_DATABASE_URL": akita_db_url,
            # The processes decrypt what this one encrypted: the same home, the same key.
            "AKITA_HOME": str(akita_home()),
            "PYTHONUNBUFFERED": "1",
        }
        subprocess.run([str(BIN / "dagster"), "instance", "migrate"], env=env, cwd=ROOT,
                       check=True, capture_output=True, timeout=120)
        web_port, push_port = free_port(), free_port()
        result = Stack(url=f"http://127.0.0.1:{web_port}", dagster_home=dagster_home,
                       dagster_db_url=dagster_db_url, akita_db_url=akita_db_url, env=env,
                       integrations=ids, logs=logs)
        stack.callback(_kill_strays, dagster_home)
        for name, cmd in (
            ("receiver", [str(BIN / "akita"), "push", "serve", "--port", str(push_port)]),
            ("webserver", [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p",
                           str(web_port), "-w", "workspace.yaml"]),
            ("daemon", [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"]),
        ):
            proc = _spawn(name, cmd, env, logs)
            result.processes[name] = proc
            stack.callback(_stop, proc)
        receiver_url = f"http://127.0.0.1:{push_port}"
        subscribe_sandbox(engine, receiver_url)
        pushed = PushStack(result, sandbox, engine, receiver_url, ids)
        time.sleep(0.5)
        result.check_alive()
        yield pushed
