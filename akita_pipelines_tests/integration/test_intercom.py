"""Intercom: the emulator against the official client and the OpenAPI description, and the
connector against each trap of Intercom's API, over real HTTP with a fake clock."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import requests
import yaml
from intercom import Intercom
from intercom.core.api_error import ApiError
from intercom.types import SingleFilterSearchRequest, StartingAfterPaging
from openapi_schema_validator import OAS30Validator
from sqlalchemy import Engine, select
from werkzeug.serving import make_server

from akita_pipelines.core.clock import parse_datetime, set_clock
from akita_pipelines.core.errors import AuthError, ConfigError
from akita_pipelines.db.integrations import get_integration
from akita_pipelines.db.schema import interactions
from akita_pipelines.providers.auth import MemoryCredentialStore
from akita_pipelines.providers.base import ConnectionContext, Page
from akita_pipelines.providers.http import HttpClient
from akita_pipelines.providers.intercom import PROVIDER
from akita_pipelines.providers.intercom.connector import IntercomConnector, search_bound
from akita_pipelines.providers.intercom.streams import STREAMS
from akita_pipelines.sandbox.intercom import IntercomEmulator
from akita_pipelines.sandbox.server import QuietHandler, Sandbox, start_sandbox
from akita_pipelines.sandbox.world import World
from akita_pipelines.sync.service import sync_object
from akita_pipelines_tests.integration.conftest import register_sandbox

SPECS = Path(__file__).resolve().parents[1] / "provider_specs" / "intercom"
LA = ZoneInfo("America/Los_Angeles")


def pdt(day: int, hour: int, minute: int = 0) -> datetime:
    """A wall-clock time in the emulated workspace's zone (June 2026: UTC-7)."""
    return datetime(2026, 6, day, hour, minute, tzinfo=LA)


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    fake = FakeClock(pdt(15, 10).astimezone(UTC))
    set_clock(fake)  # X-RateLimit-Reset is read against the same clock the emulator keeps
    yield fake
    set_clock(None)


def make_emulator(clock: FakeClock, companies: int = 120, **options: Any) -> IntercomEmulator:
    # The seeded history ends on June 1st: everything the tests change is newer.
    world = World(seed=5, n_companies=companies, now=datetime(2026, 6, 1, tzinfo=UTC))
    return IntercomEmulator(world, clock=clock, **options)


@pytest.fixture
def emulator(clock: FakeClock) -> IntercomEmulator:
    return make_emulator(clock)


@pytest.fixture
def base_url(emulator: IntercomEmulator) -> Iterator[str]:
    with serve(emulator) as url:
        yield url


@contextlib.contextmanager
def serve(emulator: IntercomEmulator) -> Iterator[str]:
    """Serve one emulator (built with test options) over HTTP; yields its base URL."""
    server = make_server("127.0.0.1", 0, emulator.wsgi_app, threaded=True,
                         request_handler=QuietHandler)
    with Sandbox("127.0.0.1", {"intercom": server}, {"intercom": emulator}) as sandbox:
        yield str(sandbox.urls["intercom"]["base_url"])


def connect(base_url: str, emulator: IntercomEmulator, clock: FakeClock, page_size: int = 150,
            **config: Any) -> tuple[IntercomConnector, HttpClient]:
    http = HttpClient(sleep=clock.advance)
    ctx = ConnectionContext("intercom.test", {"base_url": base_url, **config},
                            MemoryCredentialStore(emulator.credentials()), http, page_size)
    return IntercomConnector(ctx), http


def read(connector: IntercomConnector, kind: str, since: datetime | None) -> list[Page]:
    return list(connector.read_changes(STREAMS[kind], since))


def ids_of(pages: list[Page]) -> list[str]:
    return [str(r["id"]) for page in pages for r in page.records]


def api(base_url: str, emulator: IntercomEmulator, method: str, path: str,
        version: str = "2.16", **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {emulator.credentials()['access_token']}",
               "Intercom-Version": version}
    return requests.request(method, base_url + path, headers=headers, timeout=10, **kwargs)


def search(base_url: str, emulator: IntercomEmulator, kind: str, query: dict[str, Any],
           version: str = "2.16", **body: Any) -> requests.Response:
    return api(base_url, emulator, "POST", f"/{kind}/search", version,
               json={"query": query, **body})


# -- the official client ------------------------------------------------------------------
def test_official_client_reads_the_emulator(clock: FakeClock) -> None:
    emulator = make_emulator(clock, companies=300)  # more than one scroll page of companies
    with serve(emulator) as url, httpx.Client() as transport:
        client = Intercom(token=emulator.credentials()["access_token"], base_url=url,
                          httpx_client=transport)
        me = client.admins.identify()
        assert me is not None
        assert me.app is not None
        assert me.app.timezone == "America/Los_Angeles"

        everything = SingleFilterSearchRequest(field="updated_at", operator=">", value="0")
        contacts: list[str] = []
        cursor: str | None = None
        while True:
            # Page by hand: the client's own pager re-sends the first page's body.
            page = client.contacts.search(query=everything, pagination=StartingAfterPaging(
                per_page=40, starting_after=cursor))
            contacts += [c.id for c in page.items or [] if c.id]
            following = page.response.pages.next if page.response.pages else None
            if following is None or not following.starting_after:
                break
            cursor = following.starting_after
        assert sorted(contacts) == sorted(r["id"] for r in emulator.records("contacts"))

        companies = [c.id for c in client.companies.scroll()]
        assert len(companies) > 100
        assert sorted(companies) == sorted(r["id"] for r in emulator.records("accounts"))

        found = client.conversations.search(query=everything,
                                            pagination=StartingAfterPaging(per_page=150))
        conversations = found.items or []
        tickets = {r["id"] for r in emulator.records("tickets")}
        assert found.response.total_count == len(tickets)
        assert len(conversations) == 150
        assert {c.id for c in conversations} <= tickets
        assert conversations[0].contacts is not None
        owner = conversations[0].contacts.contacts[0].id
        contact = client.contacts.find(owner)
        assert contact.id == owner
        assert contact.companies is not None


def test_official_client_gets_intercoms_errors(emulator: IntercomEmulator,
                                               base_url: str) -> None:
    token = emulator.credentials()["access_token"]
    everything = SingleFilterSearchRequest(field="updated_at", operator=">", value="0")
    with httpx.Client() as transport:
        old_version = Intercom(token=token, base_url=base_url, httpx_client=transport,
                               headers={"Intercom-Version": "1.4"})
        with pytest.raises(ApiError) as refused:
            old_version.contacts.search(query=everything)
        assert refused.value.status_code == 400
        emulator.expire_tokens()
        revoked = Intercom(token=token, base_url=base_url, httpx_client=transport)
        with pytest.raises(ApiError) as unauthorised:
            revoked.admins.identify()
    assert unauthorised.value.status_code == 401
    body = unauthorised.value.body
    assert body["type"] == "error.list"
    assert body["errors"][0]["code"] == "unauthorized"


# -- the OpenAPI description --------------------------------------------------------------
@functools.cache
def _components(version: str) -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with (SPECS / f"api.intercom.io.{version}.yaml").open() as spec:
        components: dict[str, Any] = yaml.load(spec, Loader=loader)["components"]
    return components


def violations(version: str, schema: str, body: Any) -> list[str]:
    validator = OAS30Validator({"components": _components(version),
                                "$ref": f"#/components/schemas/{schema}"})
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]


@pytest.mark.parametrize("version", ["2.15", "2.16"])
def test_responses_match_the_openapi_description(version: str, emulator: IntercomEmulator,
                                                 base_url: str) -> None:
    everything = {"field": "updated_at", "operator": ">", "value": 0}
    checked: list[tuple[str, Any]] = []
    first = search(base_url, emulator, "contacts", everything, version,
                   pagination={"per_page": 5})
    assert first.json()["pages"]["next"]["starting_after"]
    checked.append(("contact_list", first.json()))
    checked.append(("conversation_list", search(base_url, emulator, "conversations", everything,
                                                version, pagination={"per_page": 5}).json()))
    scroll = api(base_url, emulator, "GET", "/companies/scroll", version).json()
    checked.append(("company_scroll", scroll))
    busy = api(base_url, emulator, "GET", "/companies/scroll", version)
    assert busy.status_code == 400
    checked.append(("error", busy.json()))
    end = api(base_url, emulator, "GET", "/companies/scroll", version,
              params={"scroll_param": scroll["scroll_param"]}).json()
    assert end["data"] == []
    checked.append(("company_scroll", end))
    checked.append(("admin_with_app", api(base_url, emulator, "GET", "/me", version).json()))
    emulator.delete("tickets", [emulator.records("tickets")[0]["id"]])
    deleted = api(base_url, emulator, "GET", "/conversations/deleted", version)
    if version == "2.16":
        assert deleted.json()["conversations"]
        checked.append(("deleted_conversation_list", deleted.json()))
    else:  # listed from 2.16 on
        assert deleted.status_code == 400
        checked.append(("error", deleted.json()))
    emulator.inject("rate_limit")
    limited = api(base_url, emulator, "GET", "/me", version)
    assert limited.status_code == 429
    checked.append(("error", limited.json()))
    for schema, body in checked:
        assert violations(version, schema, body) == [], schema
    assert violations(version, "contact_list", {**first.json(), "total_count": "many"})


# -- trap: date filters match calendar days in the workspace's zone -----------------------
def test_search_matches_dates_by_day_in_the_workspace_zone(
        clock: FakeClock, emulator: IntercomEmulator, base_url: str) -> None:
    clock.now = pdt(15, 23, 30)  # 06:30 UTC on the 16th
    [late] = emulator.touch("contacts", 1)
    clock.now = pdt(16, 0, 30)  # 07:30 UTC on the 16th: the same UTC day, the next local one
    [next_day] = emulator.touch("contacts", 1)

    def found(operator: str, at: datetime) -> set[str]:
        response = search(base_url, emulator, "contacts", {
            "field": "updated_at", "operator": operator, "value": int(at.timestamp())},
            pagination={"per_page": 150})
        assert response.status_code == 200, response.text
        return {r["id"] for r in response.json()["data"]}

    after_ten = found(">", pdt(15, 22))
    assert next_day in after_ten
    assert late not in after_ten
    same_day = found("=", pdt(15, 1))
    assert late in same_day
    assert next_day not in same_day
    refused = search(base_url, emulator, "contacts", {
        "field": "updated_at", "operator": ">=", "value": int(pdt(15, 22).timestamp())})
    assert refused.status_code == 400
    assert refused.json()["type"] == "error.list"


@pytest.mark.parametrize("kind", ["contacts", "tickets"])
def test_connector_reads_the_cursors_day_and_drops_what_is_older(
        kind: str, clock: FakeClock, emulator: IntercomEmulator, base_url: str) -> None:
    clock.now = pdt(14, 12)
    [day_before] = emulator.touch(kind, 1)
    clock.now = pdt(15, 9)
    [before_cursor] = emulator.touch(kind, 1)
    clock.now = pdt(15, 11)
    [after_cursor] = emulator.touch(kind, 1)
    clock.now = pdt(15, 12)
    connector, _ = connect(base_url, emulator, clock)
    pages = read(connector, kind, pdt(15, 10).astimezone(UTC))
    # A plain `updated_at > cursor` search finds nothing of the cursor's own day.
    assert ids_of(pages) == [after_cursor]
    assert pages[-1].checkpoint == pdt(15, 11).astimezone(UTC)
    assert {before_cursor, day_before}.isdisjoint(ids_of(pages))
    staged = pages[0].records[0]
    assert parse_datetime(staged["updated_at"]) == pdt(15, 11).astimezone(UTC)
    assert STREAMS[kind].to_typed(staged).updated_at == pdt(15, 11).astimezone(UTC)


def test_search_bound_falls_on_the_local_day_before_the_cursor() -> None:
    since = pdt(15, 20).astimezone(UTC)  # 03:00 UTC on the 16th
    bound = datetime.fromtimestamp(search_bound(since, LA), LA)
    assert bound.date() == pdt(14, 12).date()  # not the UTC day before (the 15th)
    zoneless = datetime.fromtimestamp(search_bound(since, None), UTC)
    assert zoneless.date() < (since - timedelta(days=1)).date()


def test_new_contacts_surface_through_the_lookback(clock: FakeClock) -> None:
    emulator = make_emulator(clock, index_delay_seconds=300)
    with serve(emulator) as url:
        connector, _ = connect(url, emulator, clock)
        clock.now = pdt(15, 0, 4)
        [created] = emulator.create("contacts", 1)
        clock.now = pdt(15, 0, 5)
        [touched] = emulator.touch("contacts", 1)
        clock.now = pdt(15, 0, 6)
        first = read(connector, "contacts", pdt(15, 0).astimezone(UTC))
        assert ids_of(first) == [touched]  # the new contact is not searchable yet
        checkpoint = first[-1].checkpoint
        assert checkpoint is not None
        clock.now = pdt(15, 0, 12)
        assert created not in ids_of(read(connector, "contacts", checkpoint))
        lookback = timedelta(seconds=int(PROVIDER.settings["lookback_seconds"]))
        assert created in ids_of(read(connector, "contacts", checkpoint - lookback))


# -- trap: the search cursor travels in the body ------------------------------------------
def test_search_cursor_goes_in_the_body(clock: FakeClock, emulator: IntercomEmulator,
                                        base_url: str) -> None:
    everything = {"field": "updated_at", "operator": ">", "value": 0}
    first = search(base_url, emulator, "contacts", everything, pagination={"per_page": 5})
    cursor = first.json()["pages"]["next"]["starting_after"]
    in_query = api(base_url, emulator, "POST", "/contacts/search",
                   params={"starting_after": cursor},
                   json={"query": everything, "pagination": {"per_page": 5}})
    assert [r["id"] for r in in_query.json()["data"]] == [r["id"] for r in first.json()["data"]]

    connector, _ = connect(base_url, emulator, clock, page_size=20)
    pages = connector.read_changes(STREAMS["contacts"], None)
    seen = [r["id"] for r in next(pages).records]
    clock.advance(60)
    [moved] = emulator.touch("contacts", 1)  # changes while we page: it moves behind us
    rest = ids_of(list(pages))
    everyone = {r["id"] for r in emulator.records("contacts")}
    assert set(seen) | set(rest) == everyone
    assert len(seen) + len(rest) == len(everyone) + (moved in seen)
    assert moved in rest


# -- trap: one company scroll at a time, expiring after a minute --------------------------
def test_waits_out_another_open_scroll(clock: FakeClock, emulator: IntercomEmulator,
                                       base_url: str) -> None:
    assert api(base_url, emulator, "GET", "/companies/scroll").status_code == 200  # elsewhere
    connector, http = connect(base_url, emulator, clock)
    pages = read(connector, "accounts", None)
    assert sorted(ids_of(pages)) == sorted(r["id"] for r in emulator.records("accounts"))
    assert http.stats.rate_limit_waits >= 1
    assert http.stats.waited_seconds >= 60


@pytest.mark.parametrize("interruption", ["idle", "server_error"])
def test_restarts_a_scroll_that_expired_or_failed(interruption: str, clock: FakeClock) -> None:
    emulator = make_emulator(clock, companies=300)
    with serve(emulator) as url:
        connector, _ = connect(url, emulator, clock)
        pages = connector.read_changes(STREAMS["accounts"], None)
        first = next(pages)
        if interruption == "idle":
            clock.advance(61)  # the consumer took over a minute: the scroll is gone
        else:
            emulator.inject("server_error")  # a 500 mid-scroll kills it
        rest = list(pages)
        passes_pages = emulator.stats["scroll_pages"]
    everyone = {r["id"] for r in emulator.records("accounts")}
    assert {*ids_of([first]), *ids_of(rest)} == everyone
    assert passes_pages > -(-len(everyone) // 100) + 1  # more than one pass was needed
    assert first.checkpoint is None
    assert rest[-1].checkpoint is not None
    assert rest[-1].checkpoint == max(parse_datetime(str(r["updated_at"]))
                                      for p in [first, *rest] for r in p.records)


@pytest.mark.parametrize("exact_pages", [False, True])
def test_scroll_that_ends_with_a_404(exact_pages: bool, clock: FakeClock) -> None:
    emulator = make_emulator(clock, companies=300, scroll_ends_with_404=True)
    if exact_pages:
        extra = sorted(r["id"] for r in emulator.records("accounts"))[200:]
        emulator.delete("accounts", extra)
    with serve(emulator) as url:
        connector, _ = connect(url, emulator, clock)
        pages = read(connector, "accounts", None)
    # Whole pages only: the 404 after the last one looks like an expiry until a second pass
    # meets it at the same place (and the first pass's pages come again).
    assert set(ids_of(pages)) == {r["id"] for r in emulator.records("accounts")}
    assert pages[-1].checkpoint is not None
    assert emulator.stats["scroll_pages"] == (4 if exact_pages else 3)


# -- traps: Intercom-Version, revoked tokens, rate limits ---------------------------------
def test_unsupported_intercom_version_is_a_config_error(
        clock: FakeClock, emulator: IntercomEmulator, base_url: str) -> None:
    refused = api(base_url, emulator, "GET", "/me", version="3.0")
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["code"] == "intercom_version_invalid"
    connector, _ = connect(base_url, emulator, clock, api_version="3.0")
    with pytest.raises(ConfigError):
        read(connector, "contacts", None)


def _no_wait(seconds: float) -> None:
    return None


def test_revoked_token_needs_reauthorising(sqlite_engine: Engine) -> None:
    with start_sandbox(base_port=0, seed=21, providers=["intercom"]) as sandbox:
        register_sandbox(sqlite_engine, sandbox, "intercom")
        sync_object(sqlite_engine, "intercom.acme", "contacts", http=HttpClient(sleep=_no_wait))
        revoked = sandbox.emulators["intercom"].credentials()["access_token"]
        sandbox.emulators["intercom"].expire_tokens()
        with pytest.raises(AuthError) as refused:
            sync_object(sqlite_engine, "intercom.acme", "contacts", http=HttpClient(sleep=_no_wait))
    assert revoked not in str(refused.value)
    with sqlite_engine.connect() as conn:
        assert get_integration(conn, "intercom.acme").state == "needs_reauth"


def test_deleted_conversations_are_marked_deleted(sqlite_engine: Engine) -> None:
    with start_sandbox(base_port=0, seed=21, providers=["intercom"]) as sandbox:
        emulator = sandbox.emulators["intercom"]
        register_sandbox(sqlite_engine, sandbox, "intercom")
        sync_object(sqlite_engine, "intercom.acme", "tickets", http=HttpClient(sleep=_no_wait))
        gone = [r["id"] for r in emulator.records("tickets")[:2]]
        emulator.delete("tickets", gone)
        second = sync_object(sqlite_engine, "intercom.acme", "tickets",
                             http=HttpClient(sleep=_no_wait))
    assert second.processed.deleted == 2
    with sqlite_engine.connect() as conn:
        rows = conn.execute(select(interactions.c.external_id, interactions.c.deleted_at).where(
            interactions.c.integration_id == "intercom.acme")).all()
    assert {external_id for external_id, at in rows if at is not None} == set(gone)


def test_waits_for_the_rate_limit_reset(clock: FakeClock) -> None:
    emulator = make_emulator(clock, rate_limit_per_minute=60)  # 10 calls per 10 s window
    with serve(emulator) as url:
        connector, http = connect(url, emulator, clock, page_size=10)
        emulator.inject("rate_limit")
        pages = read(connector, "contacts", None)
    assert sorted(ids_of(pages)) == sorted(r["id"] for r in emulator.records("contacts"))
    assert emulator.stats["rate_limited"] == 1  # the injected one: the budget was never blown
    assert http.stats.retries == 1
    assert http.stats.rate_limit_waits > 1


# -- payloads -----------------------------------------------------------------------------
def test_streams_type_payloads_and_refuse_bad_ones(emulator: IntercomEmulator) -> None:
    contact = next(r for r in emulator.records("contacts") if r["companies"]["data"])
    typed = STREAMS["contacts"].to_typed(contact)
    assert typed.account_ref == contact["companies"]["data"][0]["id"]
    assert typed.email == (contact["email"] or None)
    assert f"{typed.first_name} {typed.last_name}" == contact["name"]
    conversation = emulator.records("tickets")[0]
    ticket = STREAMS["tickets"].to_typed(conversation)
    assert ticket.contact_ref == conversation["contacts"]["contacts"][0]["id"]
    assert ticket.name == conversation["title"]
    company = STREAMS["accounts"].to_typed(emulator.records("accounts")[0])
    assert company.updated_at is not None
    assert company.updated_at.tzinfo is not None
    with pytest.raises(KeyError):
        STREAMS["contacts"].to_typed({k: v for k, v in contact.items() if k != "id"})
    with pytest.raises(TypeError):
        STREAMS["contacts"].to_typed({**contact, "companies": ["not", "an", "object"]})
    with pytest.raises(ValueError, match="updated_at"):
        STREAMS["accounts"].to_typed({"id": "1", "updated_at": "last tuesday"})
