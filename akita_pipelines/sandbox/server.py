"""Serve every provider emulator, each at the root of its own port."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from akita_pipelines.sandbox.emulator import Emulator, PushingEmulator
from akita_pipelines.sandbox.hubspot import HubSpotEmulator
from akita_pipelines.sandbox.intercom import IntercomEmulator
from akita_pipelines.sandbox.rest_api import RestApiEmulator
from akita_pipelines.sandbox.salesforce import SalesforceEmulator
from akita_pipelines.sandbox.stripe import StripeEmulator
from akita_pipelines.sandbox.world import World
from akita_pipelines.sandbox.zendesk import ZendeskEmulator

#: provider name → factory(world, token_ttl_seconds, churn_per_minute, clock); one line each.
EMULATORS: dict[str, Callable[..., Any]] = {
    "salesforce": SalesforceEmulator,
    "rest": RestApiEmulator,
    "zendesk": ZendeskEmulator,
    "intercom": IntercomEmulator,
    "hubspot": HubSpotEmulator,
    "stripe": StripeEmulator,
}


class QuietHandler(WSGIRequestHandler):
    """No access log line per request: the emulators serve thousands of pages a second."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class Sandbox:
    """Running emulators: ``urls`` has each provider's base URL and demo credentials."""

    def __init__(self, host: str, servers: dict[str, BaseWSGIServer],
                 emulators: dict[str, Emulator]) -> None:
        self.host = host
        self.servers = servers
        self.emulators = emulators
        self.threads: list[threading.Thread] = []
        self._stopped = False
        for emulator in emulators.values():
            if hasattr(emulator, "webhooks"):
                # Changes are applied and pushed without waiting for an API request.
                pushing = cast(PushingEmulator, emulator)
                pushing.webhooks.start(pushing.poke)
        for server in servers.values():
            # A short poll interval: shutdown() waits up to one interval (0.5 s by default).
            thread = threading.Thread(target=server.serve_forever, daemon=True,
                                      kwargs={"poll_interval": 0.05})
            thread.start()
            self.threads.append(thread)

    @property
    def urls(self) -> dict[str, dict[str, Any]]:
        """Per provider: ``base_url``, the demo credentials and, for emulators of configurable
        providers (a customer's REST API), a ready integration ``config``."""
        found: dict[str, dict[str, Any]] = {}
        for name, server in self.servers.items():
            emulator = self.emulators[name]
            base_url = f"http://{self.host}:{server.server_port}"
            entry: dict[str, Any] = {"base_url": base_url, **emulator.credentials()}
            if hasattr(emulator, "integration_config"):
                entry["config"] = emulator.integration_config(base_url)
            found[name] = entry
        return found

    def write_urls(self, path: Path) -> None:
        """Write ``urls`` as JSON, atomically (a poller never reads a half-written file)."""
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.urls, indent=2))
        tmp.replace(path)

    def stop(self) -> None:
        """Stop every server and wait for its thread; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        for emulator in self.emulators.values():
            if hasattr(emulator, "webhooks"):
                emulator.webhooks.stop()
        for server in self.servers.values():
            server.shutdown()
            server.server_close()
        for thread in self.threads:
            thread.join(timeout=5)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def start_sandbox(host: str = "127.0.0.1", base_port: int = 0, seed: int = 7, *,
                  token_ttl_seconds: float = 3600, churn_per_minute: float = 0.0,
                  clock: Callable[[], datetime] | None = None,
                  providers: list[str] | None = None, history_contacts: int = 0) -> Sandbox:
    """Start the emulators, each on its own port, served by daemon threads.

    Args:
        host: Interface to listen on.
        base_port: ``0`` for ephemeral ports; otherwise provider ``i`` of ``EMULATORS`` in
            name order listens on ``base_port + i`` (stable even when ``providers`` skips some).
        seed: The world's seed, shared by every emulator.
        token_ttl_seconds: Access-token lifetime.
        churn_per_minute: Records each emulator changes per minute of clock time.
        clock: A fake clock for tests; the world's history ends at its current time.
        providers: Only these emulators (default: all).
        history_contacts: Extra contacts spread over the past year (benchmarks).

    Returns:
        The running :class:`Sandbox`; use it as a context manager or call ``stop()``.
    """
    # The world's history ends at the emulators' "now", so changes made later sort after it.
    world = World(seed=seed, now=clock().replace(microsecond=0) if clock else None)
    servers: dict[str, BaseWSGIServer] = {}
    emulators: dict[str, Emulator] = {}
    for i, (name, factory) in enumerate(sorted(EMULATORS.items())):
        if providers is not None and name not in providers:
            continue
        emulator = factory(world, token_ttl_seconds=token_ttl_seconds,
                           churn_per_minute=churn_per_minute, clock=clock)
        if history_contacts and hasattr(emulator, "add_history"):
            emulator.add_history("contacts", history_contacts)
        port = base_port + i if base_port else 0
        servers[name] = make_server(host, port, emulator.wsgi_app, threaded=True,
                                    request_handler=QuietHandler)
        emulators[name] = emulator
    return Sandbox(host, servers, emulators)
