"""The real stack with push: PostgreSQL, the pushing emulators, the webhook receiver
(``akita push serve``), the Dagster daemon and webserver.

Integrations poll at the default frequency (4 a day), so once their first sync is done a
change can only reach the database within minutes through a notification. Used by the e2e
test and by the freshness benchmark.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select

from akita_pipelines.db.schema import account_links, interactions
from akita_pipelines.push.subscribe import subscribe_sandbox
from akita_pipelines.sandbox.server import Sandbox
from akita_pipelines_tests.e2e.stack import BIN, Stack, free_port, start_stack, wait_for


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
        push_port = free_port()
        result, sandbox, engine = start_stack(
            stack, label="push-e2e", providers=providers, customers=customers,
            services={"receiver": [str(BIN / "akita"), "push", "serve",
                                   "--port", str(push_port)]})
        receiver_url = f"http://127.0.0.1:{push_port}"
        subscribe_sandbox(engine, receiver_url)
        pushed = PushStack(result, sandbox, engine, receiver_url, result.integrations)
        time.sleep(0.5)
        result.check_alive()
        yield pushed
