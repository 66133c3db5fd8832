"""The Salesforce emulator over real HTTP: OAuth, SOQL paging, incremental filters, limits."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server

from akita_pipelines.sandbox.salesforce import (
    SalesforceEmulator,
    parse_sf_datetime,
    sf_datetime,
    sf_id,
    sf_id18,
)
from akita_pipelines.sandbox.server import QuietHandler, Sandbox, start_sandbox
from akita_pipelines.sandbox.world import World

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
V = "/services/data/v59.0"


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class Org:
    """A client for one served emulator: token handling and query helpers."""

    def __init__(self, base_url: str, emulator: SalesforceEmulator) -> None:
        self.base_url = base_url
        self.emulator = emulator
        self.http = requests.Session()
        self.token = ""

    def grant(self, refresh_token: str | None = None, **form: str) -> requests.Response:
        creds = self.emulator.credentials()
        data = {"grant_type": "refresh_token", "client_id": creds["client_id"],
                "client_secret": creds["client_secret"],
                "refresh_token": refresh_token or creds["refresh_token"], **form}
        return self.http.post(f"{self.base_url}/services/oauth2/token", data=data, timeout=5)

    def login(self) -> None:
        response = self.grant()
        assert response.status_code == 200, response.text
        self.token = response.json()["access_token"]

    def get(self, path: str, params: dict[str, str] | None = None,
            headers: dict[str, str] | None = None) -> requests.Response:
        return self.http.get(self.base_url + path, params=params, timeout=5,
                             headers={"Authorization": f"Bearer {self.token}", **(headers or {})})

    def query_all_pages(self, soql: str, *, endpoint: str = "query",
                        batch: int | None = None) -> tuple[list[dict[str, Any]], int]:
        headers = {"Sforce-Query-Options": f"batchSize={batch}"} if batch else None
        response = self.get(f"{V}/{endpoint}", {"q": soql}, headers)
        assert response.status_code == 200, response.text
        body = response.json()
        records, pages = list(body["records"]), 1
        while not body["done"]:
            response = self.get(body["nextRecordsUrl"])
            assert response.status_code == 200, response.text
            body = response.json()
            records += body["records"]
            pages += 1
        return records, pages

    def admin(self, action: str, **body: Any) -> requests.Response:
        return self.http.post(f"{self.base_url}/__sandbox/{action}", json=body, timeout=5)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(clock: FakeClock) -> Iterator[Sandbox]:
    with start_sandbox(base_port=0, seed=7, clock=clock, providers=["salesforce"]) as running:
        yield running


@pytest.fixture
def org(sandbox: Sandbox) -> Org:
    client = Org(sandbox.urls["salesforce"]["base_url"], sandbox.emulators["salesforce"])
    client.login()
    return client


@contextmanager
def serve(emulator: SalesforceEmulator) -> Iterator[Org]:
    """Serve an emulator built with non-default options, as start_sandbox would."""
    server = make_server("127.0.0.1", 0, emulator.wsgi_app, threaded=True,
                         request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True,
                              kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Org(f"http://127.0.0.1:{server.server_port}", emulator)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_token_grant_has_salesforce_shape_and_sessions_expire(
        sandbox: Sandbox, clock: FakeClock) -> None:
    emulator = sandbox.emulators["salesforce"]
    org = Org(sandbox.urls["salesforce"]["base_url"], emulator)
    response = org.grant()
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "instance_url", "id", "token_type", "issued_at",
                         "signature", "scope"}  # no expires_in, as in Salesforce
    assert body["instance_url"] == org.base_url
    assert body["token_type"] == "Bearer"
    assert body["issued_at"] == str(int(T0.timestamp() * 1000))
    org.token = body["access_token"]
    assert org.get(f"{V}/query", {"q": "SELECT Id FROM Account LIMIT 1"}).status_code == 200

    clock.advance(seconds=3601)
    expired = org.get(f"{V}/query", {"q": "SELECT Id FROM Account LIMIT 1"})
    assert expired.status_code == 401
    assert expired.json() == [{"message": "Session expired or invalid",
                               "errorCode": "INVALID_SESSION_ID"}]
    org.login()  # the refresh token still works
    assert org.get(f"{V}/query", {"q": "SELECT Id FROM Account LIMIT 1"}).status_code == 200
    emulator.expire_tokens()
    assert org.get(f"{V}/limits").status_code == 401
    assert emulator.stats["token_refreshes"] == 2


def test_token_errors(org: Org) -> None:
    assert org.grant(client_id="nope").json()["error"] == "invalid_client_id"
    assert org.grant(client_secret="nope").json()["error"] == "invalid_client"
    bad = org.grant(refresh_token="not-a-token")
    assert bad.status_code == 400
    assert bad.json() == {"error": "invalid_grant",
                          "error_description": "expired access/refresh token"}
    assert org.grant(grant_type="password").json()["error"] == "unsupported_grant_type"
    missing = org.http.get(f"{org.base_url}{V}/limits", timeout=5)
    assert missing.status_code == 401
    assert missing.json()[0]["errorCode"] == "INVALID_SESSION_ID"


def test_rotation_reusing_an_old_refresh_token_revokes_the_family(clock: FakeClock) -> None:
    emulator = SalesforceEmulator(World(seed=7, n_companies=20, now=T0), clock=clock,
                                  rotate_refresh_tokens=True)
    with serve(emulator) as org:
        first = org.grant("sf-demo-refresh-token").json()
        second_token = first["refresh_token"]
        assert second_token != "sf-demo-refresh-token"
        second = org.grant(second_token).json()
        org.token = second["access_token"]
        assert org.get(f"{V}/limits").status_code == 200
        reused = org.grant("sf-demo-refresh-token")
        assert reused.status_code == 400
        assert reused.json()["error"] == "invalid_grant"
        # The whole family is gone: the newest refresh token and the live session too.
        assert org.grant(second["refresh_token"]).json()["error"] == "invalid_grant"
        assert org.get(f"{V}/limits").status_code == 401


def test_pages_of_2000_with_next_records_url_over_tied_modstamps(
        org: Org, clock: FakeClock) -> None:
    since = clock.advance(minutes=5)
    created = org.emulator.create("Contact", 2500)  # all share one SystemModstamp
    soql = (f"SELECT Id, SystemModstamp FROM Contact WHERE SystemModstamp >= "
            f"{since.strftime('%Y-%m-%dT%H:%M:%SZ')} ORDER BY SystemModstamp, Id")
    first = org.get(f"{V}/query", {"q": soql}).json()
    assert first["totalSize"] == 2500
    assert first["done"] is False
    assert len(first["records"]) == 2000
    assert first["nextRecordsUrl"].startswith(f"{V}/query/01g")
    assert first["nextRecordsUrl"].endswith("-2000")
    records, pages = org.query_all_pages(soql)
    assert pages == 2
    assert [r["Id"] for r in records] == created  # ties ordered by Id
    assert records[0]["attributes"] == {"type": "Contact",
                                        "url": f"{V}/sobjects/Contact/{created[0]}"}
    small, pages = org.query_all_pages(soql, batch=200)
    assert pages == 13
    assert [r["Id"] for r in small] == created
    assert org.get(f"{V}/query/01gNOSUCHLOCATOR-200").json()[0]["errorCode"] == \
        "INVALID_QUERY_LOCATOR"


def test_result_set_is_snapshotted_at_query_time(org: Org) -> None:
    soql = "SELECT Id, Title FROM Contact ORDER BY SystemModstamp, Id"
    first = org.get(f"{V}/query", {"q": soql}, {"Sforce-Query-Options": "batchSize=200"}).json()
    total = first["totalSize"]
    assert not first["done"]
    rest_ids = [r["Id"] for r in org.emulator.records("Contact")][-5:]
    org.emulator.touch("Contact", ids=rest_ids)
    org.emulator.create("Contact", 3)
    records = list(first["records"])
    body = first
    while not body["done"]:
        body = org.get(body["nextRecordsUrl"]).json()
        records += body["records"]
    assert len(records) == total
    assert not any(r["Title"] and "(updated)" in r["Title"] for r in records)


@pytest.mark.parametrize("literal_format", ["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.000+0000"])
def test_incremental_where_and_order_by(org: Org, literal_format: str) -> None:
    since = T0 - timedelta(days=90)
    until = T0 - timedelta(days=30)
    soql = (f"select Id, SystemModstamp from contact where SystemModstamp >= "
            f"{since.strftime(literal_format)} and SystemModstamp < "
            f"{until.strftime(literal_format)} order by SystemModstamp, Id")
    records, _ = org.query_all_pages(soql)
    expected = sorted((r["SystemModstamp"], r["Id"]) for r in org.emulator.records("Contact")
                      if since <= parse_sf_datetime(r["SystemModstamp"]) < until)
    assert 0 < len(records) < len(org.emulator.records("Contact"))
    assert [(r["SystemModstamp"], r["Id"]) for r in records] == expected
    assert set(records[0]) == {"attributes", "Id", "SystemModstamp"}


def test_query_hides_deleted_rows_and_query_all_shows_them(org: Org) -> None:
    victims = [r["Id"] for r in org.emulator.records("Account")][:3]
    org.emulator.delete("Account", victims)
    soql = "SELECT Id, IsDeleted FROM Account"
    live, _ = org.query_all_pages(soql)
    everything, _ = org.query_all_pages(soql, endpoint="queryAll")
    deleted = {r["Id"] for r in everything if r["IsDeleted"]}
    assert set(victims) <= deleted
    assert not {r["Id"] for r in live} & deleted
    assert len(everything) == len(live) + len(deleted)
    assert len(everything) == len(org.emulator.records("Account", include_deleted=True))
    # Without ORDER BY: Id (creation) order.
    assert [r["Id"] for r in everything] == sorted(r["Id"] for r in everything)


def test_limit_info_header_counts_and_403_past_the_daily_limit(clock: FakeClock) -> None:
    emulator = SalesforceEmulator(World(seed=7, n_companies=10, now=T0), clock=clock,
                                  daily_api_limit=3)
    with serve(emulator) as org:
        org.login()
        for used in (1, 2, 3):
            response = org.get(f"{V}/query", {"q": "SELECT Id FROM Account"})
            assert response.status_code == 200
            assert response.headers["Sforce-Limit-Info"] == f"api-usage={used}/3"
        over = org.get(f"{V}/query", {"q": "SELECT Id FROM Account"})
        assert over.status_code == 403
        assert over.json() == [{"message": "TotalRequests Limit exceeded.",
                                "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
        assert "Sforce-Limit-Info" in over.headers
        clock.advance(hours=24, seconds=1)  # a new day's allowance
        org.login()
        again = org.get(f"{V}/query", {"q": "SELECT Id FROM Account"})
        assert again.status_code == 200
        assert again.headers["Sforce-Limit-Info"] == "api-usage=1/3"


def test_touch_makes_a_record_reappear_in_an_incremental_query(
        org: Org, clock: FakeClock) -> None:
    def changed_since(moment: datetime) -> list[str]:
        soql = (f"SELECT Id FROM Account WHERE SystemModstamp >= {sf_datetime(moment)} "
                "ORDER BY SystemModstamp, Id")
        return [r["Id"] for r in org.query_all_pages(soql, endpoint="queryAll")[0]]

    since = clock.advance(seconds=1)
    assert changed_since(since) == []
    clock.advance(seconds=1)
    target = org.emulator.records("Account")[5]
    touched = org.admin("touch", sobject="Account", ids=[target["Id"]]).json()["ids"]
    assert touched == [target["Id"]]
    assert changed_since(since) == [target["Id"]]
    after = next(r for r in org.emulator.records("Account") if r["Id"] == target["Id"])
    assert after["SystemModstamp"] == sf_datetime(clock.now) == after["LastModifiedDate"]
    assert after["Industry"] != target["Industry"]
    clock.advance(seconds=1)
    random_ones = org.admin("touch", sobject="Contact", count=4).json()["ids"]
    assert len(set(random_ones)) == 4


@pytest.mark.parametrize(("soql", "code"), [
    ("SELECT Id FORM Account", "MALFORMED_QUERY"),
    ("SELECT Id FROM Account WHERE", "MALFORMED_QUERY"),
    ("SELECT Id FROM Account LIMIT 5 ORDER BY Id", "MALFORMED_QUERY"),
    ("SELECT Id FROM Account WHERE SystemModstamp >= 2024-01-01T00:00:00", "MALFORMED_QUERY"),
    ("SELECT Id FROM Widget__c", "INVALID_TYPE"),
    ("SELECT Id, Nope FROM Account", "INVALID_FIELD"),
    ("SELECT Id FROM Account ORDER BY Nope", "INVALID_FIELD"),
    ("SELECT Id FROM Account WHERE SystemModstamp >= '2024-01-01T00:00:00Z'", "INVALID_FIELD"),
])
def test_query_errors(org: Org, soql: str, code: str) -> None:
    response = org.get(f"{V}/query", {"q": soql})
    assert response.status_code == 400
    body = response.json()
    assert isinstance(body, list)
    assert body[0]["errorCode"] == code


def test_soql_id_filters_count_and_record_retrieval(org: Org) -> None:
    ids = [r["Id"] for r in org.emulator.records("Account")][:3]
    one = org.get(f"{V}/query", {"q": f"SELECT Id, Name FROM Account WHERE Id = '{ids[0]}'"})
    assert [r["Id"] for r in one.json()["records"]] == ids[:1]
    quoted = ", ".join(f"'{i[:15]}'" for i in ids)  # 15-character ids match too
    many = org.get(f"{V}/query", {"q": f"SELECT Id FROM Account WHERE Id IN ({quoted}) "
                                          "ORDER BY Id DESC"}).json()
    assert [r["Id"] for r in many["records"]] == ids[::-1]
    count = org.get(f"{V}/query", {"q": "SELECT COUNT() FROM Account"}).json()
    assert count["totalSize"] == len(org.emulator.records("Account"))
    assert count["records"] == []
    record = org.get(f"{V}/sobjects/Account/{ids[1]}").json()
    assert record["Id"] == ids[1]
    assert record["attributes"]["type"] == "Account"
    assert org.get(f"{V}/sobjects/Account/0015g00099999999AAA").status_code == 404
    versions = org.http.get(f"{org.base_url}/services/data/", timeout=5)
    assert {"version": "59.0", "label": "v59.0", "url": "/services/data/v59.0"} in \
        versions.json()


def test_admin_endpoints(org: Org) -> None:
    created = org.admin("create", sobject="Opportunity", count=2).json()["ids"]
    assert all(i.startswith("006") and len(i) == 18 for i in created)
    assert org.admin("delete", sobject="Opportunity", ids=created[:1]).status_code == 200
    deleted = [r for r in org.emulator.records("Opportunity", include_deleted=True)
               if r["IsDeleted"]]
    assert created[0] in {r["Id"] for r in deleted}
    assert org.admin("touch", sobject="Account", ids=["001nope"]).status_code == 400
    assert org.admin("expire_tokens").status_code == 200
    assert org.get(f"{V}/limits").status_code == 401
    stats = org.http.get(f"{org.base_url}/__sandbox/stats", timeout=5).json()
    assert set(stats) == {"requests", "token_refreshes", "queries"}
    truth = org.http.get(f"{org.base_url}/__sandbox/ground_truth", timeout=5).json()
    accounts = {r["Id"] for r in org.emulator.records("Account", include_deleted=True)}
    assert {t["id"] for t in truth if t["type"] == "accounts"} == accounts


def test_churn_changes_records_lazily_and_never_behind_a_served_request(
        clock: FakeClock) -> None:
    emulator = SalesforceEmulator(World(seed=7, n_companies=30, now=T0), clock=clock,
                                  churn_per_minute=30)

    def changed() -> dict[tuple[str, str], datetime]:
        return {(o, r["Id"]): parse_sf_datetime(r["SystemModstamp"])
                for o in ("Account", "Contact", "Opportunity", "Case")
                for r in emulator.records(o, include_deleted=True)
                if parse_sf_datetime(r["SystemModstamp"]) > T0}

    with serve(emulator) as org:
        org.login()
        assert changed() == {}
        served = clock.advance(seconds=30)
        assert org.get(f"{V}/limits").status_code == 200  # 15 changes were due
        first = changed()
        assert first
        assert all(T0 < stamp <= served for stamp in first.values())
        clock.advance(seconds=30)
        soql = f"SELECT Id FROM Account WHERE SystemModstamp > {sf_datetime(served)}"
        found = {r["Id"] for r in org.query_all_pages(soql, endpoint="queryAll")[0]}
        second = {k: v for k, v in changed().items() if first.get(k) != v}
        assert second  # the demo's incremental syncs have something to find
        # Stamped after the request already answered: an incremental sync cannot miss them.
        assert all(served < stamp <= clock.now for stamp in second.values())
        assert found == {rid for (o, rid) in second if o == "Account"}


def test_world_is_deterministic_varied_and_tracks_ground_truth() -> None:
    world, again = World(seed=7, now=T0), World(seed=7, now=T0)
    assert world.companies == again.companies
    assert world.people == again.people
    assert 2.5 <= len(world.people) / len(world.companies) <= 3.5
    assert any(c.parent and world.company(c.parent).domain == c.domain for c in world.companies)
    assert any(n > 1 for n in Counter(c.phone for c in world.companies).values())
    view = world.view("salesforce", 0.8)
    assert view == again.view("salesforce", 0.8)
    assert view != world.view("hubspot", 0.8)
    assert any(pv.email and pv.email.endswith("@gmail.com") for pv in view.people)
    assert any(cv.website and cv.website.startswith("https://www.") for cv in view.companies)
    assert any(cv.name != cv.company.name for cv in view.companies)
    assert world.ground_truth() == {}
    emulator = SalesforceEmulator(world, clock=lambda: T0)
    truth = world.ground_truth()
    assert truth == emulator.ground_truth()
    assert len(truth) == len(view.companies) + len(view.people)
    assert {k[2] for k in truth if k[1] == "accounts"} == \
        {r["Id"] for r in emulator.records("Account", include_deleted=True)}
    stamps = [parse_sf_datetime(r["CreatedDate"]) for r in emulator.records("Contact")]
    assert all(T0 - timedelta(days=365) <= s <= T0 for s in stamps)


def test_ids_are_18_characters_with_the_case_checksum() -> None:
    assert sf_id18("001A0000006Vm9r") == "001A0000006Vm9rIAC"  # a documented Salesforce pair
    assert sf_id("001", 1) == "0015g0000000001AAA"
    assert sf_id("001", 1) < sf_id("001", 2) < sf_id("001", 10)
    assert sf_datetime(datetime(2024, 1, 1, tzinfo=UTC)) == "2024-01-01T00:00:00.000+0000"
