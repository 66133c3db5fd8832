"""Alerts reach a real SMTP server and a webhook receiver: one per incident, never a storm."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, select
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.errors import AkitaError
from akita_pipelines.core.types import Customer
from akita_pipelines.db.integrations import get_integration, set_integration_state
from akita_pipelines.db.schema import alert_deliveries, alerts
from akita_pipelines.onboarding import add_customer
from akita_pipelines.providers.http import HttpClient
from akita_pipelines.sandbox.server import Sandbox
from akita_pipelines.sync.service import sync_object
from akita_pipelines_tests.integration.conftest import register_salesforce


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def webhook() -> Iterator[tuple[list[dict[str, Any]], str]]:
    received: list[dict[str, Any]] = []

    def app(environ: Any, start_response: Any) -> Any:
        received.append(json.loads(Request(environ).get_data()))
        return Response("ok")(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received, f"http://127.0.0.1:{server.server_port}/hook"
    finally:
        server.shutdown()


def test_broken_then_recovered_reaches_operators_customer_and_webhook(
        sqlite_engine: Engine, sandbox: Sandbox, smtp: tuple[Inbox, int],
        webhook: tuple[list[dict[str, Any]], str], monkeypatch: pytest.MonkeyPatch) -> None:
    inbox, port = smtp
    received, url = webhook
    monkeypatch.setenv("AKITA_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("AKITA_SMTP_PORT", str(port))
    monkeypatch.setenv("AKITA_OPERATOR_EMAILS", "oncall@akita.example")
    monkeypatch.setenv("AKITA_ALERT_WEBHOOK_URL", url)
    integration = register_salesforce(sqlite_engine, sandbox)
    add_customer(sqlite_engine, Customer(id="acme", name="Acme", admin_email="admin@acme.example"))
    emulator = sandbox.emulators["salesforce"]
    sync_object(sqlite_engine, integration, "accounts")

    # Transient trouble, three times in a row: one alert to Akita, none to the customer.
    for _ in range(3):
        emulator.inject("server_error", 10)
        with pytest.raises(AkitaError):
            sync_object(sqlite_engine, integration, "accounts",
                        http=HttpClient(max_retries=1, sleep=lambda s: None))
        emulator.faults.clear()
    assert [rcpt for rcpt, _ in inbox.messages] == [["oncall@akita.example"]]
    assert "broken" in inbox.messages[0][1]["Subject"]
    assert len(received) == 1
    assert "salesforce.acme" in received[0]["text"]

    # It recovers: one "recovered" alert, to everyone.
    sync_object(sqlite_engine, integration, "accounts")
    assert sorted(r for rcpt, _ in inbox.messages[1:] for r in rcpt) == [
        "admin@acme.example", "oncall@akita.example"]
    assert "recovered" in received[-1]["text"]

    # A revoked grant: the customer must act, so the customer hears of it at once.
    emulator.refresh_tokens.clear()
    emulator.expire_tokens()
    with pytest.raises(AkitaError):
        sync_object(sqlite_engine, integration, "contacts")
    last = inbox.messages[-2:]
    assert sorted(r for rcpt, _ in last for r in rcpt) == ["admin@acme.example",
                                                          "oncall@akita.example"]
    assert "re-authorising" in last[0][1].get_payload()
    with sqlite_engine.connect() as conn:
        assert get_integration(conn, integration).state == "needs_reauth"
        statuses = {s for (s,) in conn.execute(select(alert_deliveries.c.status))}
        kinds = [k for (k,) in conn.execute(select(alerts.c.kind).order_by(alerts.c.id))]
    assert statuses == {"sent"}
    assert kinds == ["broken", "recovered", "broken"]
    with sqlite_engine.begin() as conn:
        set_integration_state(conn, integration, "active", utcnow())
