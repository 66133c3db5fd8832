"""Zendesk: the official client (zenpy) against the emulator, and each export trap.

There is no official Zendesk OpenAPI description in provider-specs, so no schema validation
here; zenpy reading every export is the wire-compatibility check. Everything runs on a fake
clock shared by the emulator, the connector (``set_clock``) and the HTTP door's sleep, so
rate-limit waits and "a minute ago" cost no wall time.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, select

from akita_pipelines.core.clock import set_clock
from akita_pipelines.core.errors import AuthError
from akita_pipelines.core.types import Customer, Integration
from akita_pipelines.db.schema import interactions
from akita_pipelines.onboarding import add_customer, add_integration
from akita_pipelines.providers.auth import MemoryCredentialStore
from akita_pipelines.providers.base import ConnectionContext, Page
from akita_pipelines.providers.http import HttpClient
from akita_pipelines.providers.zendesk import PROVIDER
from akita_pipelines.providers.zendesk.connector import ZendeskConnector, export_start_time
from akita_pipelines.sandbox.server import Sandbox, start_sandbox
from akita_pipelines.sandbox.zendesk import ZendeskEmulator, decode_cursor
from akita_pipelines.sync.service import sync_object

START = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self.slept = 0.0

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now += timedelta(seconds=seconds)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    fake = FakeClock(START)
    set_clock(fake)
    try:
        yield fake
    finally:
        set_clock(None)


@pytest.fixture
def sandbox(clock: FakeClock) -> Iterator[Sandbox]:
    with start_sandbox(base_port=0, seed=5, clock=clock, providers=["zendesk"]) as running:
        yield running


@pytest.fixture
def emulator(sandbox: Sandbox) -> ZendeskEmulator:
    found: ZendeskEmulator = sandbox.emulators["zendesk"]
    return found


@pytest.fixture
def base_url(sandbox: Sandbox) -> str:
    return str(sandbox.urls["zendesk"]["base_url"])


def _connector(base_url: str, credentials: dict[str, Any], clock: FakeClock,
               page_size: int = 1000) -> tuple[ZendeskConnector, HttpClient,
                                               MemoryCredentialStore]:
    http = HttpClient(sleep=clock.sleep)
    store = MemoryCredentialStore(credentials)
    ctx = ConnectionContext(integration_id="zendesk.test", config={"base_url": base_url},
                            credentials=store, http=http, page_size=page_size)
    return ZendeskConnector(ctx), http, store


def _read(connector: ZendeskConnector, kind: str, since: datetime | None) -> list[Page]:
    return list(connector.read_changes(PROVIDER.streams[kind], since))


def _ids(pages: list[Page]) -> list[str]:
    return [str(r["id"]) for page in pages for r in page.records]


def _all_ids(emulator: ZendeskEmulator, kind: str) -> set[str]:
    return {str(r["id"]) for r in emulator.records(kind, include_deleted=True)}


def _basic(emulator: ZendeskEmulator) -> tuple[str, str]:
    return (f"{emulator.email}/token", emulator.api_token)


# -- the official client -----------------------------------------------------------------------

@pytest.fixture
def zenpy_env(monkeypatch: pytest.MonkeyPatch, base_url: str, clock: FakeClock) -> None:
    # zenpy builds https://<subdomain>.<domain>/api/v2/...; these two variables are its
    # documented override of host and scheme (zenpy/lib/api.py, BaseApi._build_url).
    monkeypatch.setenv("ZENPY_FORCE_NETLOC", base_url.split("://", 1)[1])
    monkeypatch.setenv("ZENPY_FORCE_SCHEME", "http")
    # zenpy sleeps out Retry-After one second at a time with time.sleep: move the fake
    # clock instead of the wall clock.
    monkeypatch.setattr("zenpy.lib.api.sleep", clock.sleep)


@pytest.mark.usefixtures("zenpy_env")
def test_zenpy_reads_every_export_with_an_api_token(emulator: ZendeskEmulator) -> None:
    from zenpy import Zenpy

    emulator.time_page_size = 25  # several time-based pages, so boundary duplicates occur
    client = Zenpy(subdomain="akita-demo", email=emulator.email, token=emulator.api_token)
    assert client.users.me().email == emulator.email
    tickets = list(client.tickets.incremental(start_time=0, per_page=30))
    users = list(client.users.incremental(start_time=0, per_page=50))
    organizations = list(client.organizations.incremental(start_time=0))
    assert [str(t.id) for t in tickets]
    assert {str(t.id) for t in tickets} == _all_ids(emulator, "tickets")
    assert len(tickets) == len({t.id for t in tickets})
    assert {str(u.id) for u in users} == _all_ids(emulator, "contacts")
    assert {str(o.id) for o in organizations} == _all_ids(emulator, "accounts")
    # The cursor-paginated list (the connector's way past a crowded second): live ones only.
    listed = {str(o.id) for o in client.organizations(cursor_pagination=30)}
    assert listed == {str(o["id"]) for o in emulator.records("accounts")}
    assert any(t.status == "deleted" for t in tickets)
    assert any(u.active is False for u in users)
    first = min(tickets, key=lambda t: t.id)
    assert first.subject == emulator.records("tickets", include_deleted=True)[0]["subject"]


@pytest.mark.usefixtures("zenpy_env")
def test_zenpy_with_an_oauth_token_until_it_expires(emulator: ZendeskEmulator,
                                                    base_url: str) -> None:
    from zenpy import Zenpy
    from zenpy.lib.exception import APIException

    creds = emulator.credentials()
    token = requests.post(f"{base_url}/oauth/tokens", json={
        "grant_type": "refresh_token", **creds}, timeout=5).json()
    assert token["token_type"] == "bearer"
    assert token["expires_in"] > 0
    client = Zenpy(subdomain="akita-demo", oauth_token=token["access_token"])
    assert client.users.me().via == "oauth"
    assert {str(t.id) for t in client.tickets.incremental(start_time=0)} == \
        _all_ids(emulator, "tickets")
    emulator.expire_tokens()
    with pytest.raises(APIException, match="invalid_token"):
        client.users.me()


@pytest.mark.usefixtures("zenpy_env")
def test_zenpy_waits_out_the_export_rate_limit(emulator: ZendeskEmulator,
                                               clock: FakeClock) -> None:
    from zenpy import Zenpy

    client = Zenpy(subdomain="akita-demo", email=emulator.email, token=emulator.api_token)
    users = list(client.users.incremental(start_time=0, per_page=10))
    assert {str(u.id) for u in users} == _all_ids(emulator, "contacts")
    assert emulator.stats["rate_limited"] >= 1
    assert clock.slept > 0


# -- the emulator's wire behaviour -------------------------------------------------------------

def test_export_answers_429_with_retry_after_past_ten_a_minute(
        emulator: ZendeskEmulator, base_url: str, clock: FakeClock) -> None:
    url = f"{base_url}/api/v2/incremental/organizations.json"
    start = {"start_time": "0"}
    for _ in range(10):
        assert requests.get(url, params=start, auth=_basic(emulator), timeout=5).ok
    clock.advance(15)
    limited = requests.get(url, params=start, auth=_basic(emulator), timeout=5)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "45"
    # Per endpoint: the users export still has its own budget.
    users = f"{base_url}/api/v2/incremental/users/cursor.json"
    assert requests.get(users, params=start, auth=_basic(emulator), timeout=5).ok
    clock.advance(45)
    assert requests.get(url, params=start, auth=_basic(emulator), timeout=5).ok


def test_start_time_within_the_last_minute_is_refused(emulator: ZendeskEmulator,
                                                      base_url: str, clock: FakeClock) -> None:
    recent = int((clock.now - timedelta(seconds=30)).timestamp())
    refused = requests.get(f"{base_url}/api/v2/incremental/tickets/cursor.json",
                           params={"start_time": str(recent)}, auth=_basic(emulator), timeout=5)
    assert refused.status_code == 422
    assert refused.json()["description"].startswith("Too recent start_time")


def test_cursor_pages_carry_after_cursor_and_end_of_stream(emulator: ZendeskEmulator,
                                                           base_url: str) -> None:
    url = f"{base_url}/api/v2/incremental/users/cursor.json"
    body = requests.get(url, params={"start_time": "0", "per_page": "100"},
                        auth=_basic(emulator), timeout=5).json()
    assert len(body["users"]) == 100
    assert body["end_of_stream"] is False
    last = body["users"][-1]
    assert decode_cursor(body["after_cursor"])[1] == last["id"]
    assert body["after_url"].startswith(base_url)
    rest = requests.get(url, params={"cursor": body["after_cursor"], "per_page": "1000"},
                        auth=_basic(emulator), timeout=5).json()
    assert rest["end_of_stream"] is True
    assert len(body["users"]) + len(rest["users"]) == len(_all_ids(emulator, "contacts"))


# -- the connector's traps ---------------------------------------------------------------------

def test_cursor_export_pages_to_end_of_stream_in_change_order(
        emulator: ZendeskEmulator, base_url: str, clock: FakeClock) -> None:
    connector, http, _ = _connector(base_url, emulator.api_token_credentials(), clock,
                                    page_size=40)
    for kind in ("contacts", "tickets"):
        pages = _read(connector, kind, None)
        assert len(pages) > 1
        assert sorted(_ids(pages)) == sorted(_all_ids(emulator, kind))
        checkpoints = [p.checkpoint for p in pages if p.checkpoint is not None]
        assert checkpoints == sorted(checkpoints)


def test_time_export_duplicates_across_pages_are_dropped(
        emulator: ZendeskEmulator, base_url: str, clock: FakeClock) -> None:
    # A bulk import: 15 organizations changed in one second, straddling a page boundary.
    emulator.add_same_second("accounts", 15, clock.now - timedelta(minutes=5))
    emulator.time_page_size = 20
    served: list[int] = []
    start = 0
    for _ in range(20):
        body = requests.get(f"{base_url}/api/v2/incremental/organizations.json",
                            params={"start_time": str(start)}, auth=_basic(emulator),
                            timeout=5).json()
        served += [o["id"] for o in body["organizations"]]
        clock.advance(6)  # stay inside the export limit
        if body["end_of_stream"]:
            break
        start = body["end_time"]
    assert body["end_of_stream"]
    assert len(served) > len(set(served)), "the raw export repeats the boundary second"

    connector, _, _ = _connector(base_url, emulator.api_token_credentials(), clock)
    ids = _ids(_read(connector, "accounts", None))
    assert len(ids) == len(set(ids))
    assert set(ids) == _all_ids(emulator, "accounts")


def test_more_than_a_page_sharing_one_second_is_read_from_the_list(
        emulator: ZendeskEmulator, base_url: str, clock: FakeClock) -> None:
    at = clock.now - timedelta(minutes=3)
    bulk = emulator.add_same_second("accounts", 45, at)
    later = emulator.add_same_second("accounts", 2, at + timedelta(seconds=30))
    emulator.time_page_size = 20
    second = str(int(at.timestamp()))
    url = f"{base_url}/api/v2/incremental/organizations.json"
    stuck = requests.get(url, params={"start_time": second}, auth=_basic(emulator),
                         timeout=5).json()
    assert stuck["end_time"] == int(second)
    assert stuck["end_of_stream"] is False, "the export alone cannot get past this second"

    connector, _, _ = _connector(base_url, emulator.api_token_credentials(), clock)
    # Bounded, so a connector that follows end_time blindly fails here instead of hanging.
    pages = list(islice(connector.read_changes(PROVIDER.streams["accounts"],
                                               at - timedelta(minutes=1)), 50))
    assert len(pages) < 50
    ids = _ids(pages)
    assert len(ids) == len(set(ids))
    assert set(ids) == set(bulk) | set(later)


def test_ticket_changed_by_a_system_update_is_read_and_moves_the_checkpoint(
        emulator: ZendeskEmulator, base_url: str, clock: FakeClock) -> None:
    connector, _, _ = _connector(base_url, emulator.api_token_credentials(), clock)
    first = _read(connector, "tickets", None)
    since = max(p.checkpoint for p in first if p.checkpoint)
    clock.advance(600)
    ticket_id = emulator.records("tickets")[0]["id"]
    emulator.system_update([ticket_id])  # generated_timestamp moves, updated_at does not
    clock.advance(120)
    pages = _read(connector, "tickets", since)
    changed = [r for p in pages for r in p.records if r["id"] == ticket_id]
    assert changed
    assert datetime.fromisoformat(changed[0]["updated_at"]) < since
    # Keyed on updated_at alone the checkpoint would fall behind `since`, and every later
    # sync would read this ticket again.
    checkpoint = max(p.checkpoint for p in pages if p.checkpoint)
    assert checkpoint == datetime.fromtimestamp(changed[0]["generated_timestamp"], UTC)
    assert checkpoint > since


def test_start_time_is_clamped_to_a_minute_ago(emulator: ZendeskEmulator, base_url: str,
                                               clock: FakeClock) -> None:
    touched = emulator.touch("contacts", 2)
    clock.advance(30)
    connector, _, _ = _connector(base_url, emulator.api_token_credentials(), clock)
    # A checkpoint seconds old: sent as is, the API would refuse it.
    since = clock.now - timedelta(seconds=5)
    assert export_start_time(since, clock.now) <= (clock.now - timedelta(minutes=1)).timestamp()
    ids = _ids(_read(connector, "contacts", since))
    assert set(touched) <= set(ids)


def test_a_refused_start_time_reads_nothing_instead_of_failing(
        emulator: ZendeskEmulator, base_url: str, clock: FakeClock) -> None:
    connector, _, _ = _connector(base_url, emulator.api_token_credentials(), clock)
    # Our clock ten minutes ahead of Zendesk's: the clamp cannot help, the API refuses.
    set_clock(lambda: clock.now + timedelta(minutes=10))
    try:
        pages = _read(connector, "tickets", clock.now - timedelta(seconds=5))
    finally:
        set_clock(clock)
    assert pages == []
    assert emulator.stats["exports"] == 1


def test_records_withheld_in_the_last_minute_arrive_on_the_next_sync(
        emulator: ZendeskEmulator, base_url: str, clock: FakeClock) -> None:
    emulator.exclude_recent = timedelta(seconds=60)  # as Zendesk does
    connector, _, _ = _connector(base_url, emulator.api_token_credentials(), clock)
    first = _read(connector, "contacts", None)
    checkpoint = max(p.checkpoint for p in first if p.checkpoint)
    a, b, c, d = (str(u["id"]) for u in emulator.records("contacts")[:4])
    clock.advance(10)
    early = emulator.touch("contacts", ids=[a])
    clock.advance(90)
    late = emulator.touch("contacts", ids=[b, c, d])
    clock.advance(20)
    second = _read(connector, "contacts", checkpoint)
    assert set(early) <= set(_ids(second))
    assert not set(late) & set(_ids(second)), "withheld: changed within the last minute"
    # The checkpoint must stay before them (the latest change served, never the time of
    # the request), or the next sync would start after them.
    checkpoint = max(p.checkpoint for p in second if p.checkpoint)
    clock.advance(120)
    third = _read(connector, "contacts", checkpoint)
    assert set(late) <= set(_ids(third))


def test_export_rate_limit_is_waited_out_through_retry_after(
        emulator: ZendeskEmulator, base_url: str, clock: FakeClock) -> None:
    connector, http, _ = _connector(base_url, emulator.api_token_credentials(), clock,
                                    page_size=10)
    before = clock.now
    ids = _ids(_read(connector, "contacts", None))
    assert set(ids) == _all_ids(emulator, "contacts")
    assert emulator.stats["rate_limited"] >= 1
    assert http.stats.rate_limit_waits >= 1
    # About 20 pages at 10 a minute: the waits came from Retry-After, on the fake clock.
    assert clock.now - before >= timedelta(seconds=60)
    assert http.stats.retries == emulator.stats["rate_limited"]


def test_api_token_basic_auth(emulator: ZendeskEmulator, base_url: str,
                              clock: FakeClock) -> None:
    connector, _, _ = _connector(base_url, emulator.api_token_credentials(), clock)
    assert _ids(_read(connector, "accounts", None))
    wrong = {**emulator.api_token_credentials(), "api_token": "revoked"}
    connector, _, _ = _connector(base_url, wrong, clock)
    with pytest.raises(AuthError):
        _read(connector, "accounts", None)


def test_oauth_refreshes_before_expiry_and_after_a_401_and_keeps_rotated_tokens(
        emulator: ZendeskEmulator, base_url: str, clock: FakeClock) -> None:
    emulator.rotate = True
    original = emulator.credentials()
    connector, _, store = _connector(base_url, dict(original), clock)
    assert _ids(_read(connector, "tickets", None))
    assert emulator.stats["token_refreshes"] == 1
    rotated = store.load()["refresh_token"]
    assert rotated != original["refresh_token"]
    assert rotated == emulator.current_refresh_token

    # Proactive: close to expires_in the token is refreshed before a request is refused.
    clock.advance(emulator.token_ttl.total_seconds() - 30)
    assert _ids(_read(connector, "tickets", None))
    assert emulator.stats["token_refreshes"] == 2
    assert emulator.stats["unauthorized"] == 0

    # Reactive: a token revoked early answers 401 invalid_token; refresh once and go on.
    emulator.expire_tokens()
    assert _ids(_read(connector, "tickets", None))
    assert emulator.stats["token_refreshes"] == 3
    assert emulator.stats["unauthorized"] == 1

    # The rotated-out refresh token is dead: had it not been persisted, this is where the
    # integration would have broken.
    stale, _, _ = _connector(base_url, dict(original), clock)
    with pytest.raises(AuthError):
        _read(stale, "tickets", None)


def test_sync_stores_links_and_deletions(sqlite_engine: Engine, sandbox: Sandbox,
                                         emulator: ZendeskEmulator, clock: FakeClock) -> None:
    info = dict(sandbox.urls["zendesk"])
    add_customer(sqlite_engine, Customer(id="zd", name="ZD"))
    add_integration(sqlite_engine, Integration(
        id="zendesk.zd", customer_id="zd", provider="zendesk",
        config={"base_url": info.pop("base_url")}), info)

    def sync_all() -> None:
        for kind in PROVIDER.types_in_order():
            sync_object(sqlite_engine, "zendesk.zd", kind, http=HttpClient(sleep=clock.sleep))
            clock.advance(10)

    sync_all()
    user = next(u for u in emulator.records("contacts") if u["organization_id"])
    ticket = emulator.records("tickets")[0]
    emulator.delete("contacts", [user["id"]])
    emulator.delete("tickets", [ticket["id"]])
    clock.advance(120)
    sync_all()
    with sqlite_engine.connect() as conn:
        rows = {(r.interaction_type, r.external_id): r for r in conn.execute(
            select(interactions).where(interactions.c.integration_id == "zendesk.zd"))}
    assert rows[("contacts", str(user["id"]))].deleted_at is not None
    assert rows[("contacts", str(user["id"]))].account_ref == str(user["organization_id"])
    assert rows[("tickets", str(ticket["id"]))].deleted_at is not None
    assert rows[("tickets", str(ticket["id"]))].contact_ref == str(ticket["requester_id"])
    live = next(u for u in emulator.records("contacts") if u["organization_id"])
    assert rows[("contacts", str(live["id"]))].deleted_at is None
    assert {k for k, _ in rows} == {"accounts", "contacts", "tickets"}


# -- payloads ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "broken"), [
    ("accounts", {"id": "360000000001"}),
    ("accounts", {"domain_names": "acme.com"}),
    ("contacts", {"organization_id": "360000000001"}),
    ("contacts", {"active": "no"}),
    ("tickets", {"updated_at": 1700000000}),
])
def test_bad_payloads_raise_so_they_are_quarantined(emulator: ZendeskEmulator, kind: str,
                                                    broken: dict[str, Any]) -> None:
    payload = {**emulator.records(kind)[0], **broken}
    with pytest.raises((KeyError, TypeError, ValueError)):
        PROVIDER.streams[kind].to_typed(payload)
    missing = {k: v for k, v in emulator.records(kind)[0].items() if k != "id"}
    with pytest.raises(KeyError):
        PROVIDER.streams[kind].to_typed(missing)


def test_payloads_become_typed_records(emulator: ZendeskEmulator) -> None:
    org = next(o for o in emulator.records("accounts") if o["domain_names"])
    typed = PROVIDER.streams["accounts"].to_typed(org)
    assert typed.external_id == str(org["id"])
    assert typed.website == org["domain_names"][0]
    assert typed.name == org["name"]
    assert not typed.deleted
    user = next(u for u in emulator.records("contacts") if u["organization_id"])
    contact = PROVIDER.streams["contacts"].to_typed(user)
    assert contact.account_ref == str(user["organization_id"])
    assert f"{contact.first_name} {contact.last_name}" == user["name"]
    deleted = next(t for t in emulator.records("tickets", include_deleted=True)
                   if t["status"] == "deleted")
    assert PROVIDER.streams["tickets"].to_typed(deleted).deleted
