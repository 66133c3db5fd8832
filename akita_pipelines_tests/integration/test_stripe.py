"""Stripe: the official client reads the emulator, the emulator matches Stripe's OpenAPI
description, and the connector survives Stripe's traps (newest-first lists, the 30-day events
window, deletions only in events, secret keys that cannot be refreshed, 429 bodies)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import stripe
import yaml
from openapi_schema_validator import OAS31Validator
from sqlalchemy import Engine, select

from akita_pipelines.core.clock import set_clock
from akita_pipelines.core.errors import AuthError, ProviderError, RateLimited, TransientError
from akita_pipelines.core.types import Customer, Integration
from akita_pipelines.db.integrations import get_integration
from akita_pipelines.db.schema import account_links, integration_objects, interactions
from akita_pipelines.onboarding import add_customer, add_integration
from akita_pipelines.processing.features import cross_ids
from akita_pipelines.providers.auth import MemoryCredentialStore
from akita_pipelines.providers.base import ConnectionContext, Page
from akita_pipelines.providers.http import HttpClient
from akita_pipelines.providers.stripe import PROVIDER
from akita_pipelines.providers.stripe.connector import StripeConnector, error_hook
from akita_pipelines.providers.stripe.streams import CHANGED_AT
from akita_pipelines.sandbox.server import Sandbox, start_sandbox
from akita_pipelines.sandbox.stripe import StripeEmulator
from akita_pipelines.sync.service import SyncResult, sync_object

SPEC = Path(__file__).resolve().parents[1] / "provider_specs" / "stripe" / "spec3.2023-09-12.yaml"
START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


class FakeClock:
    """One clock for the emulator and for Akita, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    fake = FakeClock(START)
    set_clock(fake)
    yield fake
    set_clock(None)


@pytest.fixture
def sandbox(clock: FakeClock) -> Iterator[Sandbox]:
    with start_sandbox(seed=5, providers=["stripe"], clock=clock) as running:
        yield running


@pytest.fixture
def emulator(sandbox: Sandbox) -> StripeEmulator:
    found: StripeEmulator = sandbox.emulators["stripe"]
    return found


def _register(engine: Engine, sandbox: Sandbox, page_size: int = 100,
              provider: str = "stripe") -> str:
    info = dict(sandbox.urls[provider])
    add_customer(engine, Customer(id="acme", name="Acme"))
    integration_id = f"{provider}.acme"
    add_integration(engine, Integration(
        id=integration_id, customer_id="acme", provider=provider,
        config={"base_url": info.pop("base_url")},
        settings={"types": {"accounts": {"page_size": page_size}}}), info)
    return integration_id


def _sync(engine: Engine, integration: str, kind: str = "accounts") -> SyncResult:
    return sync_object(engine, integration, kind, http=HttpClient(sleep=lambda s: None))


def _stored(engine: Engine, integration: str, kind: str = "accounts") -> dict[str, Any]:
    with engine.connect() as conn:
        rows = conn.execute(select(interactions).where(
            interactions.c.integration_id == integration,
            interactions.c.interaction_type == kind)).mappings().all()
    return {r["external_id"]: r for r in rows}


def _connector(sandbox: Sandbox, page_size: int = 100) -> StripeConnector:
    info = dict(sandbox.urls["stripe"])
    ctx = ConnectionContext(integration_id="stripe.test",
                            config={"base_url": info.pop("base_url")},
                            credentials=MemoryCredentialStore(info),
                            http=HttpClient(sleep=lambda s: None), page_size=page_size)
    return StripeConnector(ctx)


# -- (a) the official client against the emulator ------------------------------------------

@pytest.fixture
def client(sandbox: Sandbox) -> Any:
    info = sandbox.urls["stripe"]
    return stripe.StripeClient(info["api_key"], base_addresses={"api": info["base_url"]},
                               max_network_retries=0).v1


def test_official_client_pages_lists_newest_first_with_filters(
        client: Any, emulator: StripeEmulator) -> None:
    customers = list(client.customers.list({"limit": 7}).auto_paging_iter())
    assert [c.id for c in customers] == [c["id"] for c in emulator.records("accounts")]
    created = [c.created for c in customers]
    assert created == sorted(created, reverse=True)  # newest first
    middle = created[len(created) // 2]
    recent = client.customers.list({"limit": 100, "created": {"gte": middle}})
    assert {c.id for c in recent.data} == {c.id for c in customers if c.created >= middle}
    # Canceled subscriptions are listed only on request, as in Stripe.
    live = list(client.subscriptions.list({"limit": 100}).auto_paging_iter())
    every = list(client.subscriptions.list({"limit": 100, "status": "all"}).auto_paging_iter())
    assert {s.status for s in live} <= {"active", "past_due", "trialing"}
    assert "canceled" in {s.status for s in every}
    assert len(every) > len(live)
    invoices = list(client.invoices.list({"limit": 100}).auto_paging_iter())
    assert len(invoices) == len(emulator.records("invoices"))


def test_official_client_module_level_api_base(sandbox: Sandbox, emulator: StripeEmulator,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    info = sandbox.urls["stripe"]
    monkeypatch.setattr(stripe, "api_base", info["base_url"])
    monkeypatch.setattr(stripe, "api_key", info["api_key"])
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    first = stripe.Customer.list(limit=3)
    assert [c.id for c in first.data] == [c["id"] for c in emulator.records("accounts")[:3]]
    assert first.has_more is True
    # HTTP Basic with the key as the user name is accepted too, as by Stripe.
    basic = requests.get(f"{info['base_url']}/v1/customers", auth=(info["api_key"], ""),
                         timeout=10)
    assert basic.status_code == 200


def test_official_client_writes_form_encoded_and_reads_the_events(
        client: Any, clock: FakeClock) -> None:
    created = client.customers.create({"name": "Initech", "email": "ap@initech.com",
                                       "metadata": {"salesforce_account_id": "001A000001"}})
    assert created.metadata.to_dict() == {"salesforce_account_id": "001A000001"}
    clock.advance(seconds=5)
    client.customers.update(created.id, {"description": "vip"})
    clock.advance(seconds=5)
    client.customers.delete(created.id)
    assert client.customers.retrieve(created.id).to_dict() == {
        "id": created.id, "object": "customer", "deleted": True}
    since = int(START.timestamp())
    events = client.events.list({"types": ["customer.created", "customer.updated",
                                           "customer.deleted"],
                                 "created": {"gte": since}, "limit": 100})
    ours = [e for e in events.data if e.data.object.id == created.id]
    assert [e.type for e in ours] == ["customer.deleted", "customer.updated", "customer.created"]
    assert ours[1].data.previous_attributes.to_dict() == {"description": None}
    assert ours[1].data.object.description == "vip"
    # A wildcard type filter, as Stripe accepts: customer.* takes customer.subscription.* too.
    wild = {e.type for e in client.events.list({"type": "customer.*", "limit": 100}).data}
    assert {"customer.deleted", "customer.subscription.created"} <= wild
    assert all(t.startswith("customer.") for t in wild)


def _code(error: stripe.StripeError) -> Any:
    """The ``error.code`` of Stripe's body (the client leaves ``.code`` empty on 401/429)."""
    body: Any = error.json_body
    return body["error"].get("code")


def test_official_client_sees_stripe_errors(client: Any, sandbox: Sandbox,
                                            emulator: StripeEmulator) -> None:
    emulator.inject("rate_limit")
    with pytest.raises(stripe.RateLimitError) as throttled:
        client.customers.list()
    assert throttled.value.http_status == 429
    assert _code(throttled.value) == "rate_limit"
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.customers.list({"starting_after": "cus_doesnotexist"})
    assert (missing.value.code, missing.value.param) == ("resource_missing", "starting_after")
    base = sandbox.urls["stripe"]["base_url"]
    with pytest.raises(stripe.AuthenticationError):
        stripe.StripeClient("sk_test_wrong", base_addresses={"api": base}).v1.customers.list()
    old_key = emulator.api_key
    emulator.expire_tokens()
    with pytest.raises(stripe.AuthenticationError) as expired:
        stripe.StripeClient(old_key, base_addresses={"api": base}).v1.customers.list()
    assert _code(expired.value) == "api_key_expired"
    assert old_key not in str(expired.value)  # Stripe masks the key it echoes


# -- (b) the emulator's responses against Stripe's OpenAPI description ------------------------

def _json_schema(node: Any) -> Any:
    """Stripe writes ``{"anyOf": [...], "nullable": true}``: OpenAPI 3.0 ``nullable`` as the
    JSON Schema it means, so the 2020-12 validator can check it."""
    if isinstance(node, dict):
        out = {k: _json_schema(v) for k, v in node.items()
               if not (k == "nullable" and isinstance(v, bool))}
        if node.get("nullable") is True:
            return {"anyOf": [out, {"type": "null"}]}
        return out
    if isinstance(node, list):
        return [_json_schema(v) for v in node]
    return node


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    """The 4 MB description, loaded once for the module."""
    with SPEC.open() as handle:
        loaded: dict[str, Any] = yaml.load(handle, Loader=yaml.CSafeLoader)
    return {"paths": loaded["paths"], "components": _json_schema(loaded["components"])}


def _validator(spec: dict[str, Any], schema: dict[str, Any]) -> OAS31Validator:
    return OAS31Validator({**_json_schema(schema), "components": spec["components"]})


def _errors(validator: OAS31Validator, body: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message[:200]}"
            for e in list(validator.iter_errors(body))[:5]]


@pytest.mark.parametrize(("path", "params"), [
    ("customers", {}), ("subscriptions", {"status": "all"}), ("invoices", {}), ("events", {})])
def test_list_responses_match_the_openapi_description(
        spec: dict[str, Any], sandbox: Sandbox, path: str, params: dict[str, Any]) -> None:
    info = sandbox.urls["stripe"]
    body = requests.get(f"{info['base_url']}/v1/{path}", params={**params, "limit": 100},
                        headers={"Authorization": f"Bearer {info['api_key']}"},
                        timeout=10).json()
    assert body["data"]
    operation = spec["paths"][f"/v1/{path}"]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert _errors(_validator(spec, schema), body) == []
    if path == "events":
        # An event's data.object is a free-form object in the description: check it against
        # the schema of the resource it carries.
        for event in body["data"]:
            carried = event["data"]["object"]
            assert carried["object"] in ("customer", "subscription", "invoice")
            object_schema = {"$ref": f"#/components/schemas/{carried['object']}"}
            assert _errors(_validator(spec, object_schema), carried) == []


def test_error_and_deleted_bodies_match_the_openapi_description(
        spec: dict[str, Any], sandbox: Sandbox, emulator: StripeEmulator) -> None:
    info = sandbox.urls["stripe"]
    auth = {"Authorization": f"Bearer {info['api_key']}"}
    error = _validator(spec, {"$ref": "#/components/schemas/error"})
    emulator.inject("rate_limit")
    throttled = requests.get(f"{info['base_url']}/v1/customers", headers=auth, timeout=10)
    assert throttled.status_code == 429
    assert throttled.headers["Stripe-Should-Retry"] == "true"
    assert _errors(error, throttled.json()) == []
    refused = requests.get(f"{info['base_url']}/v1/customers", timeout=10,
                           headers={"Authorization": "Bearer sk_test_nope"})
    assert refused.status_code == 401
    assert _errors(error, refused.json()) == []
    assert refused.json()["error"]["type"] == "invalid_request_error"
    gone = emulator.records("accounts", include_deleted=True)[-1]
    assert gone.get("deleted") is True
    deleted = requests.get(f"{info['base_url']}/v1/customers/{gone['id']}", headers=auth,
                           timeout=10).json()
    assert _errors(_validator(spec, {"$ref": "#/components/schemas/deleted_customer"}),
                   deleted) == []


# -- (c) the traps ---------------------------------------------------------------------------

def test_full_read_pages_the_newest_first_list_and_checkpoints_only_at_its_end(
        sqlite_engine: Engine, sandbox: Sandbox, emulator: StripeEmulator) -> None:
    pages = list(_connector(sandbox, page_size=7).read_changes(PROVIDER.streams["accounts"],
                                                               None))
    listed = [p for p in pages if p.records and "deleted" not in p.records[0]]
    assert len(listed) > 5
    assert all(p.checkpoint is None for p in listed)
    checkpoints = [p.checkpoint for p in pages if p.checkpoint is not None]
    assert checkpoints == sorted(checkpoints)
    assert checkpoints[-1] == START
    # A customer created while the list is paged sorts before the cursor, so the list never
    # shows it: the events from the read's start do.
    reading = _connector(sandbox, page_size=7).read_changes(PROVIDER.streams["accounts"], None)
    next(reading)
    (late,) = emulator.create("accounts", 1)
    rest = list(reading)
    assert late not in {r.get("id") for p in rest for r in p.records}
    final = rest[-1].checkpoint
    assert final is not None
    after = _connector(sandbox).read_changes(PROVIDER.streams["accounts"],
                                             final - timedelta(seconds=300))
    assert late in {r["id"] for p in after for r in p.records}
    # Through the sync: every customer, and the ones deleted within the retention as deleted.
    integration = _register(sqlite_engine, sandbox, page_size=7)
    _sync(sqlite_engine, integration)
    stored = _stored(sqlite_engine, integration)
    every = emulator.records("accounts", include_deleted=True)
    assert set(stored) == {c["id"] for c in every}
    deleted = {c["id"] for c in every if c.get("deleted")}
    assert deleted
    assert {i for i, r in stored.items() if r["deleted_at"]} == deleted


def test_incremental_sync_follows_the_events_not_the_lists(
        sqlite_engine: Engine, sandbox: Sandbox, emulator: StripeEmulator,
        clock: FakeClock) -> None:
    integration = _register(sqlite_engine, sandbox)
    _sync(sqlite_engine, integration)
    clock.advance(minutes=10)
    (touched,) = emulator.touch("accounts", 1)
    clock.advance(seconds=30)
    emulator.delete("accounts", [touched])
    (created,) = emulator.create("accounts", 1)
    lists_before = emulator.stats["list_calls"]
    second = _sync(sqlite_engine, integration)
    assert emulator.stats["list_calls"] == lists_before  # the events feed, not a re-read
    assert second.processed.processed == 2
    stored = _stored(sqlite_engine, integration)
    assert stored[touched]["deleted_at"] is not None  # customer.deleted → a deleted record
    assert stored[created]["deleted_at"] is None
    # The newest event per object wins: the deletion, not the update before it.
    assert stored[touched]["source_updated_at"].replace(tzinfo=UTC) == clock.now.replace(
        microsecond=0)


def test_a_cursor_older_than_the_event_retention_triggers_a_full_reread_and_says_so(
        sqlite_engine: Engine, sandbox: Sandbox, emulator: StripeEmulator, clock: FakeClock,
        caplog: pytest.LogCaptureFixture) -> None:
    integration = _register(sqlite_engine, sandbox)
    _sync(sqlite_engine, integration)
    clock.advance(days=1)
    (changed,) = emulator.touch("accounts", 1)
    clock.advance(days=31)  # the integration was down for a month
    info = sandbox.urls["stripe"]
    query: dict[str, Any] = {"type": "customer.updated", "limit": 100}
    feed = requests.get(f"{info['base_url']}/v1/events", timeout=10, params=query,
                        headers={"Authorization": f"Bearer {info['api_key']}"}).json()
    assert changed not in {e["data"]["object"]["id"] for e in feed["data"]}  # expired
    caplog.set_level(logging.WARNING, logger="akita_pipelines.providers.stripe.connector")
    result = _sync(sqlite_engine, integration)
    assert "older than Stripe's 30-day event retention" in caplog.text
    assert result.retrieved.records_fetched >= len(emulator.records("accounts"))
    # The run reports it too (it becomes the materialisation's metadata).
    assert any("30-day event retention" in n for n in result.retrieved.notices)
    # Only the re-read can know this change: its event is gone.
    stored = _stored(sqlite_engine, integration)
    assert stored[changed]["fields"]["description"].endswith("(updated)")
    # The connector also records why, for the sync layer to report.
    connector = _connector(sandbox)
    list(connector.read_changes(PROVIDER.streams["accounts"], START))
    assert [r.interaction_type for r in connector.full_rereads] == ["accounts"]
    assert "30-day event retention" in connector.full_rereads[0].reason


def test_a_crash_after_the_list_resumes_from_the_events_feed(
        sandbox: Sandbox, emulator: StripeEmulator) -> None:
    stream = PROVIDER.streams["accounts"]
    first: Page | None = None
    for page in _connector(sandbox, page_size=10).read_changes(stream, None):
        if page.checkpoint is not None:
            first = page
            break  # the process dies here: the list is staged, the deletion scan is not done
    assert first is not None
    assert first.checkpoint is not None
    lists_before = emulator.stats["list_calls"]
    resumed = list(_connector(sandbox).read_changes(stream,
                                                    first.checkpoint - timedelta(seconds=300)))
    assert emulator.stats["list_calls"] == lists_before  # not re-listed from the start
    deleted = {r["id"] for p in resumed for r in p.records if r.get("deleted")}
    assert deleted == {c["id"] for c in emulator.records("accounts", include_deleted=True)
                       if c.get("deleted")}


def test_bad_event_payload_is_quarantined_and_asked_for_again(
        sqlite_engine: Engine, sandbox: Sandbox, emulator: StripeEmulator,
        clock: FakeClock) -> None:
    integration = _register(sqlite_engine, sandbox)
    _sync(sqlite_engine, integration)
    clock.advance(minutes=5)
    (changed,) = emulator.touch("accounts", 1)
    emulator.inject("bad_record")  # the event's data.object loses its id
    first = _sync(sqlite_engine, integration)
    assert first.retrieved.quarantined == 1
    assert not _stored(sqlite_engine, integration)[changed]["fields"]["description"]
    second = _sync(sqlite_engine, integration)  # the checkpoint was held back
    assert second.processed.processed == 1
    assert _stored(sqlite_engine, integration)[changed]["fields"]["description"]


def test_a_revoked_key_sends_the_integration_to_needs_reauth(
        sqlite_engine: Engine, sandbox: Sandbox, emulator: StripeEmulator) -> None:
    integration = _register(sqlite_engine, sandbox)
    _sync(sqlite_engine, integration)
    old_key = emulator.api_key
    emulator.expire_tokens()
    with pytest.raises(AuthError):
        _sync(sqlite_engine, integration)
    with sqlite_engine.connect() as conn:
        assert get_integration(conn, integration).state == "needs_reauth"
        error = conn.execute(select(integration_objects.c.last_error).where(
            integration_objects.c.integration_id == integration,
            integration_objects.c.interaction_type == "accounts")).scalar_one()
    assert "api_key_expired" in error
    assert old_key not in error


def _response(status: int, body: str, **headers: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body.encode()  # a hand-made response
    response.headers.update(headers)
    return response


def test_error_table_reads_stripes_bodies_and_retry_advice(
        sandbox: Sandbox, emulator: StripeEmulator) -> None:
    limit = '{"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "x"}}'
    assert isinstance(error_hook(_response(429, limit)), RateLimited)
    # Older API versions throttle with 400 code=rate_limit.
    assert isinstance(error_hook(_response(400, limit)), RateLimited)
    api_error = '{"error": {"type": "api_error", "message": "boom"}}'
    assert isinstance(error_hook(_response(500, api_error)), TransientError)
    advised = error_hook(_response(500, api_error, **{"Stripe-Should-Retry": "false"}))
    assert isinstance(advised, ProviderError)
    assert not isinstance(advised, TransientError)
    assert isinstance(error_hook(_response(401, '{"error": {"type": "x"}}')), AuthError)
    # Over HTTP: a 429 is retried by the door, not turned into a failed sync.
    emulator.inject("rate_limit", 2)
    connector = _connector(sandbox)
    pages = list(connector.read_changes(PROVIDER.streams["subscriptions"], None))
    assert sum(len(p.records) for p in pages) == len(emulator.records("subscriptions"))
    assert connector.ctx.http.stats.rate_limit_waits == 2


def test_salesforce_account_id_in_metadata_links_to_the_salesforce_account(
        sqlite_engine: Engine, clock: FakeClock) -> None:
    with start_sandbox(seed=5, providers=["salesforce", "stripe"], clock=clock) as both:
        salesforce = _register(sqlite_engine, both, provider="salesforce")
        stripe_id = "stripe.acme"
        info = dict(both.urls["stripe"])
        add_integration(sqlite_engine, Integration(
            id=stripe_id, customer_id="acme", provider="stripe",
            config={"base_url": info.pop("base_url")}), info)
        _sync(sqlite_engine, salesforce)
        _sync(sqlite_engine, stripe_id)
        customers = both.emulators["stripe"].records("accounts")
    tagged = {c["id"]: c["metadata"]["salesforce_account_id"] for c in customers
              if c["metadata"].get("salesforce_account_id")}
    assert tagged
    record = PROVIDER.streams["accounts"].to_typed(
        {**next(c for c in customers if c["id"] in tagged), CHANGED_AT: "2026-01-01T00:00:00Z"})
    assert any(i.startswith("id:salesforce:") for i in cross_ids("accounts", record.fields))
    with sqlite_engine.connect() as conn:
        rows = conn.execute(select(interactions.c.external_id, account_links.c.account_id)
                            .join(account_links,
                                  account_links.c.interaction_id == interactions.c.id)).all()
    account_of = {external: account for external, account in rows}
    for customer_id, crm_id in tagged.items():
        crm = next(a for e, a in account_of.items() if e[:15] == crm_id[:15])
        assert account_of[customer_id] == crm, customer_id


def test_customers_map_to_accounts_with_email_and_no_website(emulator: StripeEmulator) -> None:
    stream = PROVIDER.streams["accounts"]
    customer = next(c for c in emulator.records("accounts") if c["email"])
    record = stream.to_typed({**customer, CHANGED_AT: "2026-01-01T00:00:00Z"})
    assert (record.email, record.website, record.name) == (customer["email"], None,
                                                           customer["name"])
    assert record.fields["metadata"] == customer["metadata"]
    assert CHANGED_AT not in record.fields
    invoice = emulator.records("invoices")[0]
    typed = PROVIDER.streams["invoices"].to_typed(invoice)
    assert (typed.account_ref, typed.email) == (invoice["customer"], invoice["customer_email"])
    with pytest.raises(TypeError):
        stream.to_typed({**customer, "email": 42})
    assert PROVIDER.types_in_order() == ["accounts", "invoices", "subscriptions"]


def test_account_domain_comes_from_the_billing_email(sqlite_engine: Engine, sandbox: Sandbox,
                                                     emulator: StripeEmulator) -> None:
    integration = _register(sqlite_engine, sandbox)
    _sync(sqlite_engine, integration)
    stored = _stored(sqlite_engine, integration)
    work = next(c for c in emulator.records("accounts")
                if c["email"] and c["email"].split("@")[1].lower() not in
                ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com"))
    assert stored[work["id"]]["domain"] == work["email"].split("@")[1].lower()
