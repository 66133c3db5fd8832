"""Push: emulator change → signed notification → receiver → object due → push sensor run.

The receiver runs for real (uvicorn on an ephemeral port) where an emulator posts to it, and
through Starlette's test client where a test crafts the request itself.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine, select

from akita_pipelines.core.types import Customer, Integration
from akita_pipelines.db import push
from akita_pipelines.db.engine import make_engine
from akita_pipelines.db.schema import interactions, push_due
from akita_pipelines.db.state import get_object
from akita_pipelines.onboarding import add_customer, add_integration
from akita_pipelines.push.app import create_app
from akita_pipelines.push.subscribe import subscribe_sandbox
from akita_pipelines.sandbox.server import Sandbox, start_sandbox
from akita_pipelines.sandbox.stripe import stripe_signature
from akita_pipelines.sync.service import sync_object

PUSHING = ["hubspot", "intercom", "stripe", "zendesk"]


def _register(engine: Engine, sandbox: Sandbox, providers: list[str]) -> None:
    add_customer(engine, Customer(id="acme", name="Acme"))
    for provider in providers:
        info = dict(sandbox.urls[provider])
        add_integration(engine, Integration(
            id=f"{provider}.acme", customer_id="acme", provider=provider,
            config={"base_url": info.pop("base_url")}), info)


class Receiver:
    """The receiver served by uvicorn in a thread, on an ephemeral port."""

    def __init__(self, engine: Engine, max_body: int = 1024 * 1024) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(create_app(engine, max_body=max_body), log_level="warning",
                                access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run,
                                       kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def _wait_for(condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


def _pushed(engine: Engine) -> dict[str, int]:
    """integration/type → notifications counted on its push_due row."""
    with engine.connect() as conn:
        rows = conn.execute(select(push_due.c.integration_object_id,
                                   push_due.c.notifications)).all()
        objects = {o.obj.id: o.obj for o in push.pushed_objects(conn, limit=1000)}
    return {f"{objects[r[0]].integration_id}/{objects[r[0]].interaction_type}": r[1]
            for r in rows if r[0] in objects}


@pytest.fixture
def stack(engine: Engine) -> Iterator[tuple[Engine, Sandbox, Receiver]]:
    with start_sandbox(seed=11, providers=PUSHING) as sandbox, Receiver(engine) as receiver:
        _register(engine, sandbox, PUSHING)
        yield engine, sandbox, receiver


def test_an_emulator_change_makes_its_object_due_through_a_signed_notification(
        stack: tuple[Engine, Sandbox, Receiver]) -> None:
    engine, sandbox, receiver = stack
    done = subscribe_sandbox(engine, receiver.url)
    assert sorted(d.integration_id for d in done) == [f"{p}.acme" for p in PUSHING]
    assert subscribe_sandbox(engine, receiver.url) == []  # subscribed once
    with engine.connect() as conn:
        subs = push.list_subscriptions(conn)
    assert all(s.secret not in repr(s) for s in subs)

    sandbox.emulators["hubspot"].touch("contacts", 3)
    sandbox.emulators["stripe"].touch("customers", 1)
    sandbox.emulators["zendesk"].touch("tickets", 2)
    sandbox.emulators["intercom"].touch("companies", 1)
    expected = {"hubspot.acme/contacts", "stripe.acme/accounts", "zendesk.acme/tickets",
                "intercom.acme/accounts"}
    _wait_for(lambda: expected <= set(_pushed(engine)), "every change notified")
    pushed = _pushed(engine)
    assert pushed["hubspot.acme/contacts"] == 3  # three notifications, one row
    assert set(pushed) == expected
    with engine.connect() as conn:
        counts = push.counts(conn)
        obj = get_object(conn, "zendesk.acme", "tickets")
    assert obj is not None
    assert obj.next_due_at is not None
    assert counts[("hubspot", "hubspot.acme", "accepted")] == 3
    assert not any(o in ("bad_signature", "stale") for (_, _, o) in counts)


def test_duplicates_out_of_order_forged_and_replayed_deliveries_trigger_once(
        stack: tuple[Engine, Sandbox, Receiver]) -> None:
    engine, sandbox, receiver = stack
    subscribe_sandbox(engine, receiver.url)
    stripe = sandbox.emulators["stripe"]
    outbox = stripe.webhooks
    for fault in ("duplicate", "out_of_order", "forged"):
        outbox.inject(fault)
    stripe.touch("customers", 1)
    stripe.touch("invoices", 1)
    stripe.touch("subscriptions", 1)
    _wait_for(lambda: outbox.stats["requests"] >= 5, "five requests sent")
    outbox.inject("replay")
    stripe.touch("customers", 1)
    _wait_for(lambda: outbox.stats["replayed"] == 1, "a request replayed")
    _wait_for(lambda: outbox.stats["requests"] >= 7, "the replay sent")
    with engine.connect() as conn:
        counts = push.counts(conn)
    assert counts[("stripe", "stripe.acme", "accepted")] == 4  # four changes
    assert counts[("stripe", "stripe.acme", "duplicate")] == 2  # the duplicate and the replay
    assert counts[("stripe", "stripe.acme", "bad_signature")] == 1  # the forged one
    pushed = _pushed(engine)
    assert pushed == {"stripe.acme/accounts": 2, "stripe.acme/invoices": 1,
                      "stripe.acme/subscriptions": 1}


def test_receiver_down_loses_nothing_polling_still_syncs(engine: Engine) -> None:
    with start_sandbox(seed=11, providers=["stripe"]) as sandbox:
        _register(engine, sandbox, ["stripe"])
        dead = socket.socket()
        dead.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{dead.getsockname()[1]}"
        dead.close()  # nothing listens there
        subscribe_sandbox(engine, url, retry_scale=0.0001)
        sync_object(engine, "stripe.acme", "accounts")
        stripe = sandbox.emulators["stripe"]
        changed = stripe.touch("customers", 1)
        _wait_for(lambda: stripe.webhooks.stats["gave_up"] >= 1, "the retries given up")
        assert stripe.webhooks.stats["retried"] == 3  # Stripe's test-mode schedule
        assert _pushed(engine) == {}
        result = sync_object(engine, "stripe.acme", "accounts")  # the polling run
        assert result.retrieved.records_fetched >= 1
        with engine.connect() as conn:
            stored = {r.external_id: r.source_updated_at for r in conn.execute(
                select(interactions.c.external_id, interactions.c.source_updated_at)
                .where(interactions.c.integration_id == "stripe.acme"))}
        assert set(changed) <= set(stored)
        assert stored[changed[0]] is not None


def test_receiver_refuses_what_is_not_an_authentic_fresh_notification(engine: Engine) -> None:
    add_customer(engine, Customer(id="acme", name="Acme"))
    add_integration(engine, Integration(id="stripe.acme", customer_id="acme",
                                        provider="stripe",
                                        config={"base_url": "http://127.0.0.1:9"}),
                    {"api_key": "sk_test"})
    now = datetime.now(UTC).replace(microsecond=0)
    with engine.begin() as conn:
        sub = push.create_subscription(conn, "stripe.acme", secret="whsec_abc",
                                       account_ref="acct_1", now=now)
    with Receiver(engine, max_body=64 * 1024) as receiver, \
            httpx.Client(base_url=receiver.url) as client:
        _refusals(engine, client, f"/webhooks/stripe/{sub.path_token}", now)


def _refusals(engine: Engine, client: httpx.Client, url: str, now: datetime) -> None:

    def event(event_id: str, kind: str = "customer.updated") -> bytes:
        return json.dumps({"id": event_id, "object": "event", "type": kind,
                           "account": "acct_1"}).encode()

    body = event("evt_1")
    signed = stripe_signature("whsec_abc", url, body, now)
    assert client.post(url, content=body, headers=signed).status_code == 200
    assert client.post(url, content=body, headers=signed).status_code == 200  # duplicate
    forged = stripe_signature("whsec_other", url, event("evt_2"), now)
    assert client.post(url, content=event("evt_2"), headers=forged).status_code == 401
    stale = stripe_signature("whsec_abc", url, event("evt_3"), now - timedelta(minutes=10))
    assert client.post(url, content=event("evt_3"), headers=stale).status_code == 401
    tampered = event("evt_1", "invoice.paid")
    assert client.post(url, content=tampered, headers=signed).status_code == 401
    assert client.post(url[:-3] + "xyz", content=body, headers=signed).status_code == 404
    assert client.post("/webhooks/nosuch/abc", content=body).status_code == 404
    huge = b"{" + b" " * (70 * 1024) + b"}"
    assert client.post(url, content=huge, headers=stripe_signature(
        "whsec_abc", url, huge, now)).status_code == 413
    # The shared endpoint finds the integration by Stripe's account id.
    other = event("evt_4", "invoice.created")
    answer = client.post("/webhooks/stripe", content=other,
                         headers=stripe_signature("whsec_abc", url, other, now))
    assert answer.status_code == 200
    assert client.post("/webhooks/stripe", content=event("evt_5").replace(b"acct_1", b"acct_9"),
                       headers=signed).status_code == 404
    with engine.connect() as conn:
        counts = push.counts(conn)
    assert counts == {
        ("stripe", "stripe.acme", "accepted"): 2, ("stripe", "stripe.acme", "duplicate"): 1,
        ("stripe", "stripe.acme", "bad_signature"): 2, ("stripe", "stripe.acme", "stale"): 1,
        ("stripe", "", "unknown"): 2, ("stripe", "", "oversized"): 1}
    # Only the authentic events made objects due, one row each.
    assert _pushed(engine) == {"stripe.acme/accounts": 1, "stripe.acme/invoices": 1}
    assert "whsec_abc" not in json.dumps([list(k) for k in counts])


def test_intercom_lists_contacts_for_its_official_client() -> None:
    from intercom import Intercom

    with start_sandbox(seed=11, providers=["intercom"]) as sandbox:
        info = sandbox.urls["intercom"]
        client = Intercom(token=info["access_token"], base_url=info["base_url"])
        listed = [c.id for c in client.contacts.list(per_page=40)]
        expected = [c["id"] for c in sandbox.emulators["intercom"].records("contacts")]
        assert listed == expected
        assert len(listed) > 40  # more than one page


def test_webhook_secrets_are_stored_encrypted_and_never_logged(
        engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from akita_pipelines.db.schema import webhook_subscriptions
    from akita_pipelines.push.receiver import Receiver as Logic

    caplog.set_level(logging.DEBUG)
    add_customer(engine, Customer(id="acme", name="Acme"))
    add_integration(engine, Integration(id="stripe.acme", customer_id="acme",
                                        provider="stripe",
                                        config={"base_url": "http://127.0.0.1:9"}),
                    {"api_key": "sk_test"})
    secret = "whsec_never_shown_0123456789"
    now = datetime.now(UTC)
    with engine.begin() as conn:
        sub = push.create_subscription(conn, "stripe.acme", secret=secret, account_ref=None,
                                       now=now)
    logic = Logic(engine)
    path = f"/webhooks/stripe/{sub.path_token}"
    body = json.dumps({"id": "evt_9", "object": "event", "type": "customer.updated"}).encode()
    answers = [logic.handle("stripe", sub.path_token, method="POST", url=path, path=path,
                            headers=headers, body=body).status
               for headers in (stripe_signature(secret, path, body, now),
                               stripe_signature("whsec_wrong", path, body, now), {})]
    assert answers == [200, 401, 401]
    with engine.connect() as conn:
        stored = conn.execute(select(webhook_subscriptions.c.secret)).scalar_one()
    assert set(stored) == {"fernet"}
    assert secret not in json.dumps(stored)
    assert secret not in caplog.text
    assert secret not in repr(sub)


@pytest.mark.parametrize("version", ["2.15", "2.16"])
def test_intercom_contacts_list_matches_the_openapi_description(version: str) -> None:
    from akita_pipelines_tests.integration.test_intercom import violations

    with start_sandbox(seed=11, providers=["intercom"]) as sandbox:
        info = sandbox.urls["intercom"]
        headers = {"Authorization": f"Bearer {info['access_token']}",
                   "Intercom-Version": version}
        first = httpx.get(f"{info['base_url']}/contacts", params={"per_page": 5},
                          headers=headers).json()
        after = first["pages"]["next"]["starting_after"]
        second = httpx.get(f"{info['base_url']}/contacts",
                           params={"per_page": 5, "starting_after": after},
                           headers=headers).json()
    assert second["pages"]["page"] == 2
    assert not {c["id"] for c in first["data"]} & {c["id"] for c in second["data"]}
    for body in (first, second):
        assert violations(version, "contact_list", body) == []


def test_stripe_and_zendesk_webhooks_are_created_through_their_apis(
        stack: tuple[Engine, Sandbox, Receiver]) -> None:
    import stripe

    engine, sandbox, receiver = stack
    tokens = {}
    # Stripe: the official client creates the endpoint; the answer holds its secret.
    info = sandbox.urls["stripe"]
    client = stripe.StripeClient(info["api_key"], base_addresses={"api": info["base_url"]},
                                 max_network_retries=0).v1
    tokens["stripe"] = push.new_path_token()
    endpoint = client.webhook_endpoints.create({
        "url": f"{receiver.url}/webhooks/stripe/{tokens['stripe']}",
        "enabled_events": ["customer.updated", "customer.created"]})
    assert endpoint.secret.startswith("whsec_")
    assert [e.id for e in client.webhook_endpoints.list().data] == [endpoint.id]
    # Zendesk: POST /api/v2/webhooks, then its signing secret.
    zd = sandbox.emulators["zendesk"]
    auth = (f"{zd.email}/token", zd.api_token)
    base = sandbox.urls["zendesk"]["base_url"]
    tokens["zendesk"] = push.new_path_token()
    created = httpx.post(f"{base}/api/v2/webhooks", auth=auth, json={"webhook": {
        "name": "Akita", "endpoint": f"{receiver.url}/webhooks/zendesk/{tokens['zendesk']}",
        "http_method": "POST", "request_format": "json", "status": "active",
        "subscriptions": ["zen:event-type:ticket.priority_changed"]}})
    assert created.status_code == 201
    webhook_id = created.json()["webhook"]["id"]
    signing = httpx.get(f"{base}/api/v2/webhooks/{webhook_id}/signing_secret", auth=auth)
    zendesk_secret = signing.json()["signing_secret"]["secret"]
    with engine.begin() as conn:
        push.create_subscription(conn, "stripe.acme", secret=endpoint.secret,
                                 account_ref=None, now=datetime.now(UTC),
                                 path_token=tokens["stripe"])
        push.create_subscription(conn, "zendesk.acme", secret=zendesk_secret,
                                 account_ref="12514403", now=datetime.now(UTC),
                                 path_token=tokens["zendesk"])
    sandbox.emulators["stripe"].touch("invoices", 1)  # not an event the endpoint wants
    sandbox.emulators["stripe"].touch("customers", 1)
    zd.touch("tickets", 1)
    zd.touch("accounts", 1)  # not subscribed
    _wait_for(lambda: {"stripe.acme/accounts", "zendesk.acme/tickets"} <= set(_pushed(engine)),
              "both notified")
    assert set(_pushed(engine)) == {"stripe.acme/accounts", "zendesk.acme/tickets"}


def test_push_commands_register_list_count_and_remove_without_showing_secrets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from akita_pipelines.cli import main

    monkeypatch.setenv("AKITA_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    engine = make_engine(f"sqlite:///{tmp_path}/cli.db")
    add_customer(engine, Customer(id="acme", name="Acme"))
    add_integration(engine, Integration(id="stripe.acme", customer_id="acme",
                                        provider="stripe",
                                        config={"base_url": "http://127.0.0.1:9"}),
                    {"api_key": "sk_test"})
    add_integration(engine, Integration(id="salesforce.acme", customer_id="acme",
                                        provider="salesforce",
                                        config={"base_url": "http://127.0.0.1:9"}),
                    {"client_id": "c", "client_secret": "s", "refresh_token": "r"})
    monkeypatch.setenv("SF_SECRET", "x")
    polled = runner.invoke(main, ["push", "add", "salesforce.acme", "--secret-env", "SF_SECRET"])
    assert polled.exit_code != 0
    assert "polled only" in polled.output
    missing = runner.invoke(main, ["push", "add", "stripe.acme", "--secret-env", "NO_SUCH"])
    assert missing.exit_code != 0
    assert "NO_SUCH" in missing.output
    monkeypatch.setenv("STRIPE_WHSEC", "whsec_cli_secret_42")
    added = runner.invoke(main, ["push", "add", "stripe.acme", "--secret-env", "STRIPE_WHSEC",
                                 "--receiver-url", "https://hooks.example.com"])
    assert added.exit_code == 0, added.output
    url = added.output.strip()
    assert url.startswith("https://hooks.example.com/webhooks/stripe/")
    token = url.rsplit("/", 1)[1]
    listed = runner.invoke(main, ["push", "list"])
    assert "stripe.acme" in listed.output
    assert token not in listed.output
    assert "whsec_cli_secret_42" not in listed.output + added.output
    with engine.begin() as conn:
        push.count(conn, "stripe", "stripe.acme", "stale", datetime.now(UTC))
    assert "stale" in runner.invoke(main, ["push", "stats"]).output
    with engine.connect() as conn:
        (sub,) = push.list_subscriptions(conn)
    assert runner.invoke(main, ["push", "remove", str(sub.id)]).exit_code == 0
    assert runner.invoke(main, ["push", "remove", str(sub.id)]).exit_code != 0
    engine.dispose()


def test_push_repository_writes_coalesce_on_both_databases(engine: Engine) -> None:
    """Event ids are new once; an object notified twice is one row holding the later time and
    both counts; the receivers' counts add up (each a one-row upsert through db/bulk.py)."""
    add_customer(engine, Customer(id="acme", name="Acme"))
    add_integration(engine, Integration(id="stripe.acme", customer_id="acme",
                                        provider="stripe",
                                        config={"base_url": "http://127.0.0.1:9"}),
                    {"api_key": "sk_test_x"})
    t0 = datetime(2026, 12, 6, 12, tzinfo=UTC)
    with engine.begin() as conn:
        sub = push.create_subscription(conn, "stripe.acme", secret="whsec_x", account_ref=None,
                                       now=t0)
        assert push.record_events(conn, sub.id, ["e1", "e2", "e1"], t0) == {"e1", "e2"}
        assert push.record_events(conn, sub.id, ["e2", "e3"], t0) == {"e3"}
        first = push.push(conn, "stripe.acme", ["accounts"], t0 + timedelta(minutes=5), 2)
        again = push.push(conn, "stripe.acme", ["accounts"], t0, 3)  # an older notification
        assert first == again
        assert len(first) == 1
        for n in (1, 4):
            push.count(conn, "stripe", "stripe.acme", "accepted", t0 + timedelta(minutes=n))
            push.count(conn, "stripe", None, "bad_signature", t0, n)
    with engine.connect() as conn:
        row = conn.execute(select(push_due)).one()
        assert (row.notifications, row.last_notified_at) == (5, t0 + timedelta(minutes=5))
        assert push.counts(conn) == {("stripe", "stripe.acme", "accepted"): 2,
                                     ("stripe", "", "bad_signature"): 5}
