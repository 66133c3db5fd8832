"""The Salesforce emulator's Bulk API 2.0 query jobs over real HTTP: job states, CSV results
with ``Sforce-Locator`` paging, errors and limits."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from akita_pipelines.sandbox.salesforce import SalesforceEmulator
from akita_pipelines.sandbox.server import start_sandbox
from akita_pipelines.sandbox.world import World
from akita_pipelines_tests.unit.test_sandbox_salesforce import T0, FakeClock, Org, V, serve

JOBS = f"{V}/jobs/query"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def org(clock: FakeClock) -> Iterator[Org]:
    with start_sandbox(base_port=0, seed=7, clock=clock, providers=["salesforce"]) as running:
        client = Org(running.urls["salesforce"]["base_url"], running.emulators["salesforce"])
        client.login()
        yield client


def _send(org: Org, method: str, path: str, body: Any = None,
          params: dict[str, Any] | None = None) -> requests.Response:
    return org.http.request(method, org.base_url + path, json=body, params=params, timeout=5,
                            headers={"Authorization": f"Bearer {org.token}"})


def _create(org: Org, soql: str, operation: str = "query", **options: str) -> dict[str, Any]:
    response = _send(org, "POST", JOBS, {"operation": operation, "query": soql, **options})
    assert response.status_code == 200, response.text
    return dict(response.json())


def _complete(org: Org, job_id: str) -> dict[str, Any]:
    for _ in range(5):
        info = dict(_send(org, "GET", f"{JOBS}/{job_id}").json())
        if info["state"] == "JobComplete":
            return info
    raise AssertionError(info)


def _rows(text: str, delimiter: str = ",") -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text), delimiter=delimiter))


def test_a_job_moves_through_its_states_and_pages_its_csv_by_locator(org: Org) -> None:
    created = _create(org, "SELECT Id, Name, IsDeleted, SystemModstamp, NumberOfEmployees "
                           "FROM Account", operation="queryAll")
    assert created["state"] == "UploadComplete"
    assert created["id"].startswith("750")
    assert len(created["id"]) == 18
    early = _send(org, "GET", f"{JOBS}/{created['id']}/results")
    assert early.status_code == 400
    assert early.json()[0]["errorCode"] == "JOB_NOT_COMPLETE"
    states = [_send(org, "GET", f"{JOBS}/{created['id']}").json()["state"] for _ in range(3)]
    assert states == ["InProgress", "JobComplete", "JobComplete"]
    every = org.emulator.records("Account", include_deleted=True)
    info = _send(org, "GET", f"{JOBS}/{created['id']}").json()
    assert info["numberRecordsProcessed"] == len(every)
    assert (info["jobType"], info["operation"]) == ("V2Query", "queryAll")

    rows: list[dict[str, str]] = []
    locator, sets = None, 0
    while locator != "null":
        params: dict[str, Any] = {"maxRecords": 7}
        if locator:
            params["locator"] = locator
        page = _send(org, "GET", f"{JOBS}/{created['id']}/results", params=params)
        assert page.status_code == 200, page.text
        assert page.headers["Content-Type"].startswith("text/csv")
        got = _rows(page.text)
        assert int(page.headers["Sforce-NumberOfRecords"]) == len(got) <= 7
        assert page.text.splitlines()[0] == \
            '"Id","Name","IsDeleted","SystemModstamp","NumberOfEmployees"'
        rows += got
        locator = page.headers["Sforce-Locator"]
        sets += 1
    assert sets == -(-len(every) // 7)
    assert sorted(r["Id"] for r in rows) == sorted(r["Id"] for r in every)
    by_id = {r["Id"]: r for r in every}
    for row in rows:
        stored = by_id[row["Id"]]
        assert row["IsDeleted"] == ("true" if stored["IsDeleted"] else "false")
        # Bulk CSV writes datetimes in UTC with Z, where REST JSON writes +0000.
        assert row["SystemModstamp"] == stored["SystemModstamp"].replace("+0000", "Z")
        employees = stored["NumberOfEmployees"]
        assert row["NumberOfEmployees"] == ("" if employees is None else str(employees))
    # Rows come as the org stores them, not in modstamp order (no ORDER BY in bulk queries).
    stamps = [r["SystemModstamp"] for r in rows]
    assert stamps != sorted(stamps)


def test_query_leaves_deleted_rows_out_and_the_result_set_is_fixed_at_creation(
        org: Org) -> None:
    live = org.emulator.records("Contact")
    job = _create(org, "SELECT Id, Title, Account.Name, AccountId FROM Contact",
                  columnDelimiter="PIPE", lineEnding="CRLF")
    org.emulator.touch("Contact", 5)
    org.emulator.create("Contact", 3)
    _complete(org, job["id"])
    page = _send(org, "GET", f"{JOBS}/{job['id']}/results")
    assert page.headers["Sforce-Locator"] == "null"
    assert "\r\n" in page.text
    rows = _rows(page.text, delimiter="|")
    assert sorted(r["Id"] for r in rows) == sorted(r["Id"] for r in live)
    titles = {r["Id"]: r["Title"] for r in live}
    assert all(r["Title"] == (titles[r["Id"]] or "") for r in rows)
    accounts = {a["Id"]: a["Name"] for a in org.emulator.records("Account", include_deleted=True)}
    for row in rows:
        # A relationship field is a dotted column; an empty lookup leaves it empty.
        assert row["Account.Name"] == (accounts[row["AccountId"]] if row["AccountId"] else "")


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"operation": "query", "query": "SELECT Id FROM Account ORDER BY Id"}, 400, "INVALIDJOB"),
    ({"operation": "query", "query": "SELECT Id FROM Account LIMIT 5"}, 400, "INVALIDJOB"),
    ({"operation": "query", "query": "SELECT COUNT() FROM Account"}, 400, "INVALIDJOB"),
    ({"operation": "insert", "query": "SELECT Id FROM Account"}, 400, "INVALIDJOB"),
    ({"operation": "query"}, 400, "INVALIDJOB"),
    ({"operation": "query", "query": "SELEC Id FROM Account"}, 400, "MALFORMED_QUERY"),
    ({"operation": "query", "query": "SELECT Nope FROM Account"}, 400, "INVALID_FIELD"),
    ({"operation": "query", "query": "SELECT Id FROM Nope"}, 400, "INVALID_TYPE"),
])
def test_job_creation_errors(org: Org, body: dict[str, Any], status: int, code: str) -> None:
    response = _send(org, "POST", JOBS, body)
    assert response.status_code == status
    assert response.json()[0]["errorCode"] == code
    assert set(response.json()[0]) == {"errorCode", "message"}


def test_unknown_jobs_bad_locators_versions_sessions_abort_and_delete(org: Org) -> None:
    missing = _send(org, "GET", f"{JOBS}/7505g0000000099AAA")
    assert (missing.status_code, missing.json()[0]["errorCode"]) == (404, "NOT_FOUND")
    job = _create(org, "SELECT Id FROM Account")
    _complete(org, job["id"])
    bad = _send(org, "GET", f"{JOBS}/{job['id']}/results", params={"locator": "not-one"})
    assert bad.status_code == 400
    other_version = _send(org, "GET", f"/services/data/v58.0/jobs/query/{job['id']}/results")
    assert other_version.status_code == 409
    expired = org.http.get(f"{org.base_url}{JOBS}/{job['id']}", timeout=5,
                           headers={"Authorization": "Bearer stale"})
    assert expired.status_code == 401
    assert expired.json() == [{"message": "Session expired or invalid",
                               "errorCode": "INVALID_SESSION_ID"}]
    # A completed job cannot be aborted; a running one can, and has no results then.
    assert _send(org, "PATCH", f"{JOBS}/{job['id']}", {"state": "Aborted"}).status_code == 400
    running = _create(org, "SELECT Id FROM Contact")
    aborted = _send(org, "PATCH", f"{JOBS}/{running['id']}", {"state": "Aborted"})
    assert (aborted.status_code, aborted.json()["state"]) == (200, "Aborted")
    assert _send(org, "GET", f"{JOBS}/{running['id']}/results").json()[0]["errorCode"] == \
        "JOB_NOT_COMPLETE"
    listed = {j["id"] for j in _send(org, "GET", JOBS).json()["records"]}
    assert {job["id"], running["id"]} <= listed
    assert _send(org, "DELETE", f"{JOBS}/{job['id']}").status_code == 204
    assert _send(org, "GET", f"{JOBS}/{job['id']}").status_code == 404


def test_a_failed_job_reports_its_error_message(org: Org) -> None:
    org.emulator.inject("bulk_job_failed")
    job = _create(org, "SELECT Id FROM Account")
    states = [_send(org, "GET", f"{JOBS}/{job['id']}").json() for _ in range(2)]
    assert states[-1]["state"] == "Failed"
    assert states[-1]["errorMessage"]


def test_daily_job_limit_and_seven_day_lifespan(clock: FakeClock) -> None:
    emulator = SalesforceEmulator(World(seed=7, n_companies=10, now=T0), clock=clock)
    emulator.bulk.daily_limit = 2
    with serve(emulator) as org:
        org.login()
        first = _create(org, "SELECT Id FROM Account")
        _create(org, "SELECT Id FROM Contact")
        over = _send(org, "POST", JOBS, {"operation": "query", "query": "SELECT Id FROM Case"})
        assert over.status_code == 400
        assert over.json()[0]["errorCode"] == "LIMIT_EXCEEDED"
        limits = org.get(f"{V}/limits").json()
        assert limits["DailyBulkV2QueryJobs"] == {"Max": 2, "Remaining": 0}
        clock.advance(hours=24, seconds=1)  # a rolling window: the old jobs no longer count
        org.login()
        _create(org, "SELECT Id FROM Case")
        assert _send(org, "GET", f"{JOBS}/{first['id']}").status_code == 200
        clock.advance(days=7)
        org.login()
        gone = _send(org, "GET", f"{JOBS}/{first['id']}")
        assert gone.status_code == 404
