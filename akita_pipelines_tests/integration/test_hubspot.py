"""HubSpot: the emulator against the official client and the OpenAPI descriptions, and the
connector against each trap of the real API (10,000-result cap, one timestamp shared by more
than 10,000 records, rate-limit headers and 429 bodies, OAuth expiry, archived records)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from hubspot import HubSpot
from hubspot.crm.associations.v4 import (
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicFetchAssociationsBatchRequest,
)
from hubspot.crm.contacts import ApiException, Filter, FilterGroup, PublicObjectSearchRequest
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_schema_validator import OAS30Validator
from sqlalchemy import Engine, func, select
from werkzeug.serving import make_server

from akita_pipelines.core.clock import set_clock
from akita_pipelines.core.errors import ConfigError, RateLimited
from akita_pipelines.core.types import Customer, Integration
from akita_pipelines.db.schema import contacts, interactions
from akita_pipelines.onboarding import add_customer, add_integration
from akita_pipelines.providers.auth import MemoryCredentialStore
from akita_pipelines.providers.base import ConnectionContext, Page
from akita_pipelines.providers.http import HttpClient
from akita_pipelines.providers.hubspot import PROVIDER
from akita_pipelines.providers.hubspot.connector import HubSpotConnector
from akita_pipelines.providers.hubspot.streams import object_info
from akita_pipelines.sandbox.hubspot import HubSpotEmulator, epoch_ms
from akita_pipelines.sandbox.server import QuietHandler, start_sandbox
from akita_pipelines.sandbox.world import World
from akita_pipelines.sync.service import sync_object
from akita_pipelines_tests.integration.conftest import register_sandbox

SPECS = Path(__file__).resolve().parents[1] / "provider_specs" / "hubspot"
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    """A clock the test moves by hand (and the HTTP door's sleeps move it too)."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Portal:
    """One served emulator, plus helpers to read it with the connector."""

    def __init__(self, base_url: str, emulator: HubSpotEmulator, clock: FakeClock) -> None:
        self.base_url = base_url
        self.emulator = emulator
        self.clock = clock
        self.store = MemoryCredentialStore(emulator.credentials())
        self.http = HttpClient(sleep=clock.advance)

    def connector(self, page_size: int = 200, **config: Any) -> HubSpotConnector:
        return HubSpotConnector(ConnectionContext(
            integration_id="hubspot.test", config={"base_url": self.base_url, **config},
            credentials=self.store, http=self.http, page_size=page_size))

    def read(self, kind: str, since: datetime | None = None, *, page_size: int = 200,
             max_pages: int = 1000, **config: Any) -> list[Page]:
        pages = []
        stream = PROVIDER.streams[kind]
        for page in self.connector(page_size, **config).read_changes(stream, since):
            pages.append(page)
            # A connector that loops on one window must fail here, not hang.
            assert len(pages) <= max_pages, "the connector is not making progress"
        return pages

    def token(self) -> str:
        creds = self.emulator.credentials()
        response = requests.post(f"{self.base_url}/oauth/v1/token", timeout=5, data={
            "grant_type": "refresh_token", **creds})
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    fake = FakeClock()
    set_clock(fake)  # the connector's token expiry check reads the project clock
    yield fake
    set_clock(None)


class SearchHook:
    """The emulator's WSGI app, counting searches and running ``callback(n)`` once the
    ``n``-th search has been answered, before the client sees the answer (so before it can
    ask for the next page)."""

    def __init__(self, emulator: HubSpotEmulator,
                 callback: Callable[[int], None] = lambda n: None) -> None:
        self.emulator = emulator
        self.callback = callback
        self.searches = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        answer = self.emulator.wsgi_app(environ, start_response)
        if environ["REQUEST_METHOD"] == "POST" and environ["PATH_INFO"].endswith("/search"):
            self.searches += 1
            self.callback(self.searches)
        return answer


@contextmanager
def serve(emulator: HubSpotEmulator, clock: FakeClock,
          app: SearchHook | None = None) -> Iterator[Portal]:
    server = make_server("127.0.0.1", 0, app or emulator.wsgi_app, threaded=True,
                         request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True,
                              kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Portal(f"http://127.0.0.1:{server.server_port}", emulator, clock)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _emulator(clock: FakeClock, **options: Any) -> HubSpotEmulator:
    return HubSpotEmulator(World(seed=5, now=clock()), clock=clock, **options)


@pytest.fixture
def portal(clock: FakeClock) -> Iterator[Portal]:
    with serve(_emulator(clock), clock) as running:
        yield running


def _ids(pages: list[Page]) -> set[str]:
    return {r["id"] for p in pages for r in p.records}


def _live_ids(emulator: HubSpotEmulator, kind: str) -> set[str]:
    return {r["id"] for r in emulator.records(kind)}


# -- (a) the official client reads the emulator ----------------------------------------------

def test_official_client_refreshes_searches_pages_and_reads_associations(
        portal: Portal) -> None:
    creds = portal.emulator.credentials()
    anonymous = HubSpot(host=portal.base_url)
    grant = anonymous.oauth.tokens_api.create(
        grant_type="refresh_token", client_id=creds["client_id"],
        client_secret=creds["client_secret"], refresh_token=creds["refresh_token"])
    assert grant.expires_in == 1800
    client = HubSpot(access_token=grant.access_token, host=portal.base_url)

    since = str(epoch_ms(T0 - timedelta(days=400)))
    request = PublicObjectSearchRequest(
        filter_groups=[FilterGroup(filters=[Filter(property_name="lastmodifieddate",
                                                   operator="GTE", value=since)])],
        sorts=["lastmodifieddate"], properties=["email", "associatedcompanyid"], limit=100)
    seen: list[Any] = []
    while True:
        page = client.crm.contacts.search_api.do_search(public_object_search_request=request)
        seen += page.results
        if page.paging is None:
            break
        request.after = page.paging.next.after
    assert page.total == len(seen) == len(_live_ids(portal.emulator, "contacts"))
    stamps = [c.properties["lastmodifieddate"] for c in seen]
    assert stamps == sorted(stamps)

    companies = client.crm.companies.get_all(properties=["name", "domain"])
    assert {c.id for c in companies} == _live_ids(portal.emulator, "accounts")
    archived = client.crm.companies.basic_api.get_page(archived=True, limit=100)
    assert archived.results
    assert all(c.archived and c.archived_at for c in archived.results)

    linked = [c for c in seen if c.properties.get("associatedcompanyid")][:5]
    batch = client.crm.associations.v4.batch_api.get_page(
        "contacts", "companies", BatchInputPublicFetchAssociationsBatchRequest(
            inputs=[PublicFetchAssociationsBatchRequest(id=c.id) for c in linked]))
    found = {r._from.id: r.to for r in batch.results}
    for contact in linked:
        primary = [t for t in found[contact.id]
                   if any(k.label == "Primary" for k in t.association_types)]
        assert [t.to_object_id for t in primary] == [contact.properties["associatedcompanyid"]]

    portal.emulator.expire_tokens()
    with pytest.raises(ApiException) as refused:
        client.crm.contacts.basic_api.get_page(limit=1)
    assert refused.value.status == 401
    assert json.loads(refused.value.body)["category"] == "EXPIRED_AUTHENTICATION"


# -- (b) responses conform to HubSpot's OpenAPI descriptions ---------------------------------

class Spec:
    """One saved OpenAPI description, served from the emulator's base URL."""

    def __init__(self, name: str, base_url: str) -> None:
        self.document = json.loads((SPECS / name).read_text())
        self.document["servers"] = [{"url": base_url}]
        self.openapi = OpenAPI.from_dict(self.document)

    def check(self, response: requests.Response, status: int) -> dict[str, Any]:
        """Assert the status and validate the response against the description."""
        assert response.status_code == status, response.text
        body: dict[str, Any] = response.json()
        if response.ok:
            self.openapi.validate_response(RequestsOpenAPIRequest(response.request),
                                           RequestsOpenAPIResponse(response))
        else:
            # Errors are declared as ``*/*``, which openapi-core does not parse: validate the
            # JSON body against the Error schema itself.
            OAS30Validator({"$ref": "#/components/schemas/Error",
                            "components": self.document["components"]},
                           format_checker=OAS30Validator.FORMAT_CHECKER).validate(body)
        return body


@pytest.mark.parametrize(("kind", "spec", "modified"), [
    ("companies", "crm-companies-v3.json", "hs_lastmodifieddate"),
    ("contacts", "crm-contacts-v3.json", "lastmodifieddate"),
    ("0-3", "crm-deals-v3.json", "hs_lastmodifieddate"),  # this spec names deals by type id
    ("tickets", "crm-tickets-v3.json", "hs_lastmodifieddate"),
    ("tasks", "crm-tasks-v3.json", "hs_lastmodifieddate"),
])
def test_responses_match_the_openapi_description(portal: Portal, kind: str, spec: str,
                                                 modified: str) -> None:
    openapi = Spec(spec, portal.base_url)
    auth = {"Authorization": f"Bearer {portal.token()}"}
    url = f"{portal.base_url}/crm/v3/objects/{kind}"
    search = {"filterGroups": [{"filters": [{"propertyName": modified, "operator": "GTE",
                                             "value": "0"}]}],
              "sorts": [modified], "properties": [], "limit": 3, "after": "0"}
    body = openapi.check(requests.post(f"{url}/search", json=search, headers=auth,
                                         timeout=5), 200)
    assert len(body["results"]) == 3
    assert body["paging"]["next"]["after"] == "3"
    listed = openapi.check(requests.get(url, params={"limit": 2, "archived": "false"},
                                          headers=auth, timeout=5), 200)
    one = body["results"][0]["id"]
    openapi.check(requests.get(f"{url}/{one}", headers=auth, timeout=5), 200)
    assert listed["paging"]["next"]["after"]
    openapi.check(requests.post(f"{url}/search", json={**search, "after": "10000"},
                                  headers=auth, timeout=5), 400)
    portal.emulator.inject("rate_limit")
    limited = requests.get(url, headers=auth, timeout=5)
    # HubSpot's documented 429 body has no ``category``, so it is outside the Error schema.
    assert limited.status_code == 429
    assert {"status", "message", "errorType", "correlationId", "policyName"} <= \
        set(limited.json())
    openapi.check(requests.get(url, timeout=5), 401)


def test_token_response_matches_the_openapi_description(portal: Portal) -> None:
    openapi = Spec("auth-oauth-v1.json", portal.base_url)
    response = requests.post(f"{portal.base_url}/oauth/v1/token", timeout=5, data={
        "grant_type": "refresh_token", **portal.emulator.credentials()})
    body = openapi.check(response, 200)
    assert body["token_use"] == "access_token"
    assert body["expires_in"] == 1800


# -- (c) the traps ---------------------------------------------------------------------------

def test_search_pages_stop_at_10000_results_with_a_400(clock: FakeClock) -> None:
    emulator = _emulator(clock)
    emulator.create("accounts", 10_050)
    with serve(emulator, clock) as portal:
        auth = {"Authorization": f"Bearer {portal.token()}"}
        url = f"{portal.base_url}/crm/v3/objects/companies/search"
        last = requests.post(url, headers=auth, timeout=5,
                             json={"limit": 200, "after": "9800"}).json()
        assert last["paging"]["next"]["after"] == "10000"  # offered, but ...
        past = requests.post(url, headers=auth, timeout=5, json={"limit": 200, "after": "10000"})
        assert past.status_code == 400  # ... following it fails
        capped = emulator.stats["capped"]
        assert _ids(portal.read("accounts", max_pages=200)) >= _live_ids(emulator, "accounts")
        assert emulator.stats["capped"] == capped  # the connector never pages by offset


def test_windows_read_past_the_cap_and_through_one_shared_timestamp(clock: FakeClock) -> None:
    """10,050 companies changed in the same millisecond (a bulk import) behind the seeded
    ones: the first window hits the cap inside that millisecond, and a restart ``GTE`` it would
    hit the cap again forever; the split by ``hs_object_id`` gets through."""
    emulator = _emulator(clock)
    clock.advance(60)
    bulk = set(emulator.create("accounts", 10_050))
    clock.advance(60)
    later = set(emulator.create("accounts", 3))
    with serve(emulator, clock) as portal:
        pages = portal.read("accounts", max_pages=200)
        assert _ids(pages) == {r["id"] for r in emulator.records("accounts",
                                                                  include_deleted=True)}
        assert bulk | later <= _ids(pages)
        assert emulator.stats["capped"] == 0
        stamps = [p.checkpoint for p in pages if p.checkpoint is not None]
        assert stamps == sorted(stamps)  # resumable at every page


def _search_order(emulator: HubSpotEmulator) -> list[str]:
    """Live company ids in the order search sorts them (last-modified, ties by id)."""
    return [r["id"] for r in sorted(emulator.records("accounts"), key=lambda r: (
        r["properties"]["hs_lastmodifieddate"], int(r["id"])))]


def _all_ids(emulator: HubSpotEmulator) -> set[str]:
    return {r["id"] for r in emulator.records("accounts", include_deleted=True)}


def test_records_changed_while_paging_are_all_stored(sqlite_engine: Engine,
                                                     clock: FakeClock) -> None:
    """Search is live and ``after`` is an offset: records changed between two pages move to
    the end and shift unread ones onto pages already read. Records already read are changed
    after the first, third and fifth search; the sync must still store every record, in not
    many more searches than paging by ``after`` would have made."""
    emulator = _emulator(clock)
    emulator.add_history("accounts", 2_000)
    pages = -(-len(_live_ids(emulator, "accounts")) // 200)  # 200 a page, changes aside
    changed: list[str] = []

    def change_records_already_read(search: int) -> None:
        if search in (1, 3, 5):
            clock.advance(1)
            # The earliest changed records are on the first page.
            changed.extend(emulator.touch("accounts", ids=_search_order(emulator)[:7]))

    hook = SearchHook(emulator, change_records_already_read)
    with serve(emulator, clock, hook) as portal:
        add_customer(sqlite_engine, Customer(id="acme", name="Acme"))
        add_integration(sqlite_engine, Integration(
            id="hubspot.acme", customer_id="acme", provider="hubspot",
            config={"base_url": portal.base_url}), emulator.credentials())
        sync_object(sqlite_engine, "hubspot.acme", "accounts",
                    http=HttpClient(sleep=clock.advance))
    with sqlite_engine.connect() as conn:
        stored = {i for (i,) in conn.execute(select(interactions.c.external_id).where(
            interactions.c.integration_id == "hubspot.acme",
            interactions.c.interaction_type == "accounts"))}
    assert len(set(changed)) == 21
    assert stored == _all_ids(emulator)
    assert hook.searches <= 2 * pages + 3


def test_records_changed_while_one_timestamp_is_paged_are_not_lost(clock: FakeClock) -> None:
    """The same trap inside one millisecond: 450 companies imported at once are more than a
    page, so they are read by id; changing some already read takes them out of that
    millisecond, which must not shift the ones not yet read."""
    emulator = _emulator(clock)
    emulator.add_history("accounts", 300)
    clock.advance(60)
    bulk = set(emulator.create("accounts", 450))
    clock.advance(60)
    emulator.create("accounts", 30)
    pages = -(-len(_live_ids(emulator, "accounts")) // 100)
    hook = SearchHook(emulator)
    changed: list[str] = []
    read: list[Page] = []
    with serve(emulator, clock, hook) as portal:
        for page in portal.connector(100).read_changes(PROVIDER.streams["accounts"], None):
            read.append(page)
            assert len(read) <= 100, "the connector is not making progress"
            bulk_read = bulk & _ids(read)
            if len(bulk_read) >= 200 and not changed:
                clock.advance(1)
                changed = emulator.touch("accounts", ids=sorted(bulk_read, key=int)[:10])
    assert changed
    assert _ids(read) == _all_ids(emulator)
    stamps = [p.checkpoint for p in read if p.checkpoint is not None]
    assert stamps == sorted(stamps)
    assert hook.searches <= 2 * pages + 5


def test_every_checkpoint_is_safe_to_resume_from(clock: FakeClock) -> None:
    """Groups of 60 records share a millisecond, so pages of 100 end inside a group; a bulk
    import of 250 in one millisecond is read by id. Resuming ``GTE`` any page's checkpoint
    must read every record the pages up to it did not."""
    emulator = _emulator(clock)
    for _ in range(5):
        clock.advance(1)
        emulator.create("accounts", 60)
    clock.advance(1)
    emulator.create("accounts", 250)
    clock.advance(1)
    emulator.create("accounts", 30)
    everything = _all_ids(emulator)
    with serve(emulator, clock) as portal:
        pages = portal.read("accounts", page_size=100)
        assert _ids(pages) == everything
        # No record is read twice from search (the archived list comes first).
        searched = [r["id"] for p in pages for r in p.records if not r.get("archived")]
        assert len(searched) == len(set(searched))
        bounds = [(min(stamps), max(stamps)) for p in pages
                  if (stamps := [r["updatedAt"] for r in p.records if not r.get("archived")])]
        assert any(high == low for (_, high), (low, _) in zip(bounds, bounds[1:], strict=False))
        for k, page in enumerate(pages):
            if page.checkpoint is not None:
                rest = portal.read("accounts", page.checkpoint, page_size=100)
                assert _ids(pages[:k + 1]) | _ids(rest) == everything, k


def test_contacts_are_filtered_on_lastmodifieddate(portal: Portal, clock: FakeClock) -> None:
    auth = {"Authorization": f"Bearer {portal.token()}"}
    wrong = {"filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate",
                                            "operator": "GTE", "value": "0"}]}]}
    response = requests.post(f"{portal.base_url}/crm/v3/objects/contacts/search", json=wrong,
                             headers=auth, timeout=5)
    assert response.status_code == 400
    clock.advance(5)
    since = clock()
    touched = set(portal.emulator.touch("contacts", 4))
    assert _ids(portal.read("contacts", since)) == touched


def test_rate_limit_headers_throttle_before_hubspot_says_429(clock: FakeClock) -> None:
    with serve(_emulator(clock, burst_limit=5), clock) as portal:
        pages = portal.read("contacts", page_size=20)  # one associations call per page
        assert _ids(pages) >= _live_ids(portal.emulator, "contacts")
        assert portal.emulator.stats["throttled"] == 0
        assert portal.http.stats.rate_limit_waits >= 1


def test_429_body_policy_decides_between_waiting_and_failing(portal: Portal) -> None:
    portal.emulator.inject("rate_limit")
    portal.read("accounts")
    assert portal.http.stats.retries == 1
    assert portal.http.stats.waited_seconds >= 10  # the bucket's interval, from the headers
    portal.emulator.inject("rate_limit_daily")
    before = portal.http.stats.requests
    with pytest.raises(RateLimited):
        portal.read("accounts")
    assert portal.http.stats.requests == before + 1  # no hammering a spent daily quota


def test_token_is_refreshed_before_expires_in_runs_out(portal: Portal,
                                                       clock: FakeClock) -> None:
    portal.read("accounts")
    assert portal.emulator.stats["token_refreshes"] == 1
    clock.advance(1600)  # still valid for 200 s: inside the refresh margin
    portal.read("accounts")
    assert portal.emulator.stats["token_refreshes"] == 2
    assert portal.emulator.stats["unauthorized"] == 0
    assert "expires_at" in portal.store.load()
    portal.emulator.expire_tokens()  # revoked early: the 401 still recovers
    portal.read("accounts")
    assert portal.emulator.stats["token_refreshes"] == 3


def test_archived_records_arrive_as_deleted(portal: Portal, clock: FakeClock) -> None:
    clock.advance(5)
    since = clock()
    gone = sorted(_live_ids(portal.emulator, "contacts"))[:2]
    portal.emulator.delete("contacts", gone)
    pages = portal.read("contacts", since)
    assert _ids(pages) == set(gone)
    stream = PROVIDER.streams["contacts"]
    assert all(stream.to_typed(r).deleted for p in pages for r in p.records)
    assert pages[0].checkpoint is None  # deletions never move the cursor on their own


def _linked(emulator: HubSpotEmulator, obj: str, record_id: str, other: str) -> set[str]:
    """Live ``other`` records linked to a record, primary ones only when there are any."""
    links = {(oid, primary) for (kind, oid), primary in emulator.links.get((obj, record_id),
                                                                           {}).items()
             if kind == other and emulator.objects[kind][oid].archived_at is None}
    return {oid for oid, primary in links if primary} or {oid for oid, _ in links}


@pytest.mark.parametrize("kind", ["contacts", "deals", "tickets", "tasks"])
def test_associations_become_account_and_contact_refs(portal: Portal, kind: str) -> None:
    emulator = portal.emulator
    stream = PROVIDER.streams[kind]
    typed = [stream.to_typed(r) for p in portal.read(kind) for r in p.records]
    live = [t for t in typed if not t.deleted]
    assert live
    for record in live:
        companies = _linked(emulator, kind, record.external_id, "companies")
        assert record.account_ref == (min(companies) if companies else None)
        if kind != "contacts":
            people = _linked(emulator, kind, record.external_id, "contacts")
            assert record.contact_ref == (min(people) if people else None)
    assert any(t.account_ref for t in live)


@pytest.mark.parametrize("broken", [
    {"properties": {}, "updatedAt": "2026-01-01T00:00:00.000Z"},
    {"id": "1", "properties": {}, "updatedAt": 5},
    {"id": "1", "properties": {"dealname": 3}, "updatedAt": "2026-01-01T00:00:00.000Z"},
    {"id": "1", "properties": {}, "updatedAt": "yesterday"},
    {"id": "1", "properties": {}, "updatedAt": "2026-01-01T00:00:00.000Z",
     "associations": {"companies": {"results": "9"}}},
])
def test_bad_payloads_raise_so_they_are_quarantined(broken: dict[str, Any]) -> None:
    with pytest.raises((KeyError, TypeError, ValueError)):
        PROVIDER.streams["deals"].to_typed(broken)


def test_custom_objects_are_streams_by_configuration() -> None:
    config = {"streams": {"cars": {"object_type": "2-7654321", "properties": ["make"],
                                   "name_property": "make", "associations": ["companies"]}}}
    stream = PROVIDER.streams_for(config)["cars"]
    assert stream.source_object == "2-7654321"
    assert {"make", "hs_lastmodifieddate"} <= set(stream.fields)
    assert object_info("2-7654321", config).associations == ("companies",)
    typed = stream.to_typed({
        "id": "77", "properties": {"make": "Volvo"}, "updatedAt": "2026-01-01T00:00:00.000Z",
        "archived": False, "associations": {"companies": {"results": [
            {"id": "9", "type": "2-7654321_to_company_unlabeled"}]}}})
    assert (typed.interaction_type, typed.name, typed.account_ref) == ("cars", "Volvo", "9")
    with pytest.raises(ConfigError):
        PROVIDER.streams_for({"streams": {"cars": {"properties": ["make"]}}})


def test_sync_links_contacts_to_the_accounts_of_their_companies(sqlite_engine: Engine) -> None:
    with start_sandbox(base_port=0, seed=13, providers=["hubspot"]) as sandbox:
        register_sandbox(sqlite_engine, sandbox, "hubspot")
        for kind in ("accounts", "contacts"):
            sync_object(sqlite_engine, "hubspot.acme", kind, http=HttpClient(sleep=lambda s: None))
        emulator = sandbox.emulators["hubspot"]
    with sqlite_engine.connect() as conn:
        attached = conn.execute(select(func.count()).select_from(contacts)
                                .where(contacts.c.account_id.is_not(None))).scalar_one()
    expected = [c for c in emulator.records("contacts")
                if c["properties"].get("associatedcompanyid")]
    assert expected
    assert attached == len(expected)
