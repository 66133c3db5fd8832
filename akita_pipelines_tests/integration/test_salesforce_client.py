"""The official-style client, simple-salesforce, works against the Salesforce emulator.

simple-salesforce always builds ``https://`` URLs from the instance; the emulator serves plain
HTTP on loopback, so the client's session carries an adapter that sends those requests over
HTTP. Everything else (paths, SOQL, paging through ``nextRecordsUrl``, describe, Bulk API 2.0
query jobs and their CSV locators, errors) is the client's own.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import simple_salesforce  # type: ignore[import-untyped]
from requests.adapters import HTTPAdapter

from akita_pipelines.sandbox.server import Sandbox, start_sandbox


class _PlainHttp(HTTPAdapter):
    """Sends the client's ``https://127.0.0.1:…`` requests to the emulator over HTTP."""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        assert request.url is not None
        request.url = "http://" + request.url.removeprefix("https://")
        return super().send(request, **kwargs)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with start_sandbox(base_port=0, seed=5, providers=["salesforce"]) as running:
        yield running


def _client(sandbox: Sandbox, token: str | None = None) -> Any:
    info = sandbox.urls["salesforce"]
    if token is None:
        token = requests.post(f"{info['base_url']}/services/oauth2/token", data={
            "grant_type": "refresh_token", "client_id": info["client_id"],
            "client_secret": info["client_secret"], "refresh_token": info["refresh_token"]},
            timeout=10).json()["access_token"]
    session = requests.Session()
    session.mount("https://", _PlainHttp())
    return simple_salesforce.Salesforce(instance_url=info["base_url"], session_id=token,
                                        session=session, version="59.0")


def test_query_all_pages_through_every_record(sandbox: Sandbox) -> None:
    emulator = sandbox.emulators["salesforce"]
    emulator.add_history("Contact", 4500)  # more than two pages of 2,000
    sf = _client(sandbox)
    result = sf.query_all("SELECT Id, Name, Email, SystemModstamp FROM Contact "
                          "ORDER BY SystemModstamp, Id")
    assert result["done"] is True
    ids = [r["Id"] for r in result["records"]]
    assert len(ids) == len(set(ids)) == result["totalSize"]
    assert set(ids) == {r["Id"] for r in emulator.records("Contact")}
    assert result["records"][0]["attributes"]["type"] == "Contact"


def test_incremental_filter_and_deleted_rows(sandbox: Sandbox) -> None:
    emulator = sandbox.emulators["salesforce"]
    sf = _client(sandbox)
    touched = set(emulator.touch("Account", 3))
    newest = max(r["SystemModstamp"] for r in emulator.records("Account"))
    since = sorted(r["SystemModstamp"] for r in emulator.records("Account"))[-3]
    soql = (f"SELECT Id FROM Account WHERE SystemModstamp >= {since.replace('+0000', 'Z')} "
            "ORDER BY SystemModstamp, Id")
    found = {r["Id"] for r in sf.query_all(soql)["records"]}
    assert touched <= found
    assert newest >= since
    live = {r["Id"] for r in sf.query_all("SELECT Id FROM Account")["records"]}
    every = {r["Id"] for r in sf.query_all("SELECT Id FROM Account",
                                           include_deleted=True)["records"]}
    assert live < every  # the seeded world has deleted rows only queryAll shows


def test_describe_and_get_one_record(sandbox: Sandbox) -> None:
    sf = _client(sandbox)
    names = {o["name"] for o in sf.describe()["sobjects"]}
    assert {"Account", "Contact", "Opportunity", "Case", "Task"} <= names
    fields = {f["name"] for f in sf.Account.describe()["fields"]}
    assert {"Id", "Name", "Website", "SystemModstamp"} <= fields
    one = sandbox.emulators["salesforce"].records("Account")[0]
    assert sf.Account.get(one["Id"])["Name"] == one["Name"]


def test_expired_session_is_the_clients_expired_session_error(sandbox: Sandbox) -> None:
    sf = _client(sandbox, token="not-a-session")
    with pytest.raises(simple_salesforce.exceptions.SalesforceExpiredSession):
        sf.query("SELECT Id FROM Account")


def test_malformed_soql_is_the_clients_malformed_request_error(sandbox: Sandbox) -> None:
    sf = _client(sandbox)
    with pytest.raises(simple_salesforce.exceptions.SalesforceMalformedRequest):
        sf.query("SELEC Id FROM Account")


def test_bulk2_query_all_reads_every_record_through_locators(sandbox: Sandbox) -> None:
    """The official bulk2 client creates the job, polls it to JobComplete and follows
    ``Sforce-Locator`` to the ``null`` locator; its CSV holds every record once."""
    emulator = sandbox.emulators["salesforce"]
    emulator.add_history("Contact", 2500)
    sf = _client(sandbox)
    sets = list(sf.bulk2.Contact.query_all(
        "SELECT Id, Email, IsDeleted, SystemModstamp, Account.Name FROM Contact",
        max_records=1000, wait=0))
    expected = emulator.records("Contact", include_deleted=True)
    assert len(sets) == -(-len(expected) // 1000)  # one CSV per locator, the last one full
    rows = [row for text in sets for row in csv.DictReader(io.StringIO(text))]
    assert sorted(r["Id"] for r in rows) == sorted(r["Id"] for r in expected)
    assert {"true", "false"} == {r["IsDeleted"] for r in rows}
    assert all(r["SystemModstamp"].endswith("Z") for r in rows)
    live = list(sf.bulk2.Contact.query("SELECT Id FROM Contact", wait=0))
    live_ids = {r["Id"] for text in live for r in csv.DictReader(io.StringIO(text))}
    assert live_ids == {r["Id"] for r in emulator.records("Contact")}


def test_bulk2_job_errors_are_the_clients_errors(sandbox: Sandbox) -> None:
    sf = _client(sandbox)
    with pytest.raises(simple_salesforce.exceptions.SalesforceMalformedRequest):
        list(sf.bulk2.Account.query("SELECT Id FROM Account ORDER BY Id", wait=0))
    sandbox.emulators["salesforce"].inject("bulk_job_failed")
    with pytest.raises(simple_salesforce.exceptions.SalesforceOperationError):
        list(sf.bulk2.Account.query("SELECT Id FROM Account", wait=0))
    expired = _client(sandbox, token="not-a-session")
    with pytest.raises(simple_salesforce.exceptions.SalesforceExpiredSession):
        list(expired.bulk2.Account.query("SELECT Id FROM Account", wait=0))
