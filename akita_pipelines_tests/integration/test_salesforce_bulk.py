"""Salesforce history through Bulk API 2.0: large first syncs and backfills read one query job,
increments stay on REST, bulk CSV records type exactly as REST JSON records, and a killed bulk
read resumes from the next locator of the same job."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, select

from akita_pipelines.core.types import Customer, Integration
from akita_pipelines.db import state
from akita_pipelines.db.schema import interactions
from akita_pipelines.onboarding import add_customer, add_integration
from akita_pipelines.providers.auth import MemoryCredentialStore
from akita_pipelines.providers.base import ConnectionContext, Stream
from akita_pipelines.providers.http import HttpClient
from akita_pipelines.providers.salesforce.connector import SalesforceConnector
from akita_pipelines.providers.salesforce.streams import (
    STREAMS,
    account,
    case,
    contact,
    opportunity,
)
from akita_pipelines.sandbox.salesforce import SalesforceEmulator
from akita_pipelines.sandbox.server import Sandbox, start_sandbox
from akita_pipelines.sync.service import sync_object
from akita_pipelines_tests.integration.conftest import killed_sync

SET_SIZE = 500


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with start_sandbox(base_port=0, seed=11, providers=["salesforce"]) as running:
        running.emulators["salesforce"].add_history("Contact", 2600)  # type: ignore[attr-defined]
        yield running


def _register(engine: Engine, sandbox: Sandbox, **config: Any) -> str:
    info = dict(sandbox.urls["salesforce"])
    add_customer(engine, Customer(id="acme", name="Acme"))
    add_integration(engine, Integration(
        id="salesforce.acme", customer_id="acme", provider="salesforce",
        config={"base_url": info.pop("base_url"), "bulk_threshold": 1000,
                "bulk_set_size": SET_SIZE, **config}), info)
    return "salesforce.acme"


def _emulator(sandbox: Sandbox) -> SalesforceEmulator:
    emulator = sandbox.emulators["salesforce"]
    assert isinstance(emulator, SalesforceEmulator)
    return emulator


def _stored(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(r for (r,) in conn.execute(select(interactions.c.external_id)))


def _expected(emulator: SalesforceEmulator) -> list[str]:
    return sorted(r["Id"] for r in emulator.records("Contact", include_deleted=True))


def test_a_large_first_sync_reads_one_bulk_job_and_increments_stay_on_rest(
        engine: Engine, sandbox: Sandbox) -> None:
    emulator = _emulator(sandbox)
    integration = _register(engine, sandbox)
    first = sync_object(engine, integration, "contacts")
    assert emulator.stats["bulk_jobs"] == 1
    assert first.retrieved.records_fetched == len(_expected(emulator))
    assert first.retrieved.pages == -(-len(_expected(emulator)) // SET_SIZE)
    assert _stored(engine) == _expected(emulator)
    with engine.connect() as conn:
        obj = state.get_object(conn, integration, "contacts")
    assert obj is not None
    assert obj.resume_state is None
    newest = max(r["SystemModstamp"] for r in emulator.records("Contact", include_deleted=True))
    assert obj.cursor is not None
    assert obj.cursor.isoformat(timespec="milliseconds").replace("+00:00", "+0000") == newest
    assert emulator.bulk.jobs == {}  # the job was deleted once read

    touched = set(emulator.touch("Contact", 3))
    queries = emulator.stats["queries"]
    second = sync_object(engine, integration, "contacts")
    assert emulator.stats["bulk_jobs"] == 1  # the increment asked REST
    assert emulator.stats["queries"] == queries + 1
    assert touched <= {r for r in _stored(engine)}
    assert second.retrieved.records_fetched < 50


def test_a_small_history_read_stays_on_rest(engine: Engine, sandbox: Sandbox) -> None:
    emulator = _emulator(sandbox)
    integration = _register(engine, sandbox, bulk_threshold=10_000)
    sync_object(engine, integration, "contacts")
    assert emulator.stats.get("bulk_jobs", 0) == 0
    assert _stored(engine) == _expected(emulator)


def test_a_full_resync_uses_bulk_and_reconciles(engine: Engine, sandbox: Sandbox) -> None:
    emulator = _emulator(sandbox)
    integration = _register(engine, sandbox)
    sync_object(engine, integration, "contacts")
    resync = sync_object(engine, integration, "contacts", full=True)
    assert emulator.stats["bulk_jobs"] == 2
    assert resync.retrieved.records_fetched == len(_expected(emulator))
    assert resync.retrieved.reconciled_deleted == 0
    assert _stored(engine) == _expected(emulator)


def _connector(sandbox: Sandbox, **config: Any) -> SalesforceConnector:
    info = dict(sandbox.urls["salesforce"])
    base_url = info.pop("base_url")
    return SalesforceConnector(ConnectionContext(
        integration_id="salesforce.acme", config={"base_url": base_url, **config},
        credentials=MemoryCredentialStore(info), http=HttpClient(), history=True))


def _read(connector: SalesforceConnector, stream: Stream) -> list[dict[str, Any]]:
    return [r for page in connector.read_changes(stream, None) for r in page.records]


def _read_bulk(connector: SalesforceConnector, stream: Stream) -> list[dict[str, Any]]:
    return [r for page in connector.read_bulk(stream, None) for r in page.records]


# Standard streams plus relationship fields (nested objects), numbers, dates and nulls.
TYPING_STREAMS = [
    STREAMS["accounts"],
    STREAMS["contacts"],
    STREAMS["deals"],
    STREAMS["tickets"],
    STREAMS["tasks"],
    Stream("contacts", "Contact", "Id", "SystemModstamp",
           (*STREAMS["contacts"].fields, "Account.Name", "Account.NumberOfEmployees",
            "Account.IsDeleted", "Account.SystemModstamp"), contact),
    Stream("deals", "Opportunity", "Id", "SystemModstamp",
           (*STREAMS["deals"].fields, "Account.Name", "Account.Website"), opportunity),
    Stream("tickets", "Case", "Id", "SystemModstamp",
           (*STREAMS["tickets"].fields, "Contact.Email", "Account.Name"), case),
    Stream("accounts", "Account", "Id", "SystemModstamp",
           (*STREAMS["accounts"].fields, "LastModifiedDate"), account),
]


@pytest.mark.parametrize("stream", TYPING_STREAMS,
                         ids=[f"{s.source_object}-{len(s.fields)}" for s in TYPING_STREAMS])
def test_bulk_and_rest_records_type_identically(sandbox: Sandbox, stream: Stream) -> None:
    emulator = _emulator(sandbox)
    emulator.create("Contact", 5)  # no AccountId: a null relationship
    emulator.create("Account", 3)  # null BillingCity, NumberOfEmployees, ...
    emulator.create("Opportunity", 2)
    tricky = next(iter(emulator.objects["Account"].values()))
    tricky["Name"] = 'He said "hi", then\nleft; ünïcode'
    deal = next(iter(emulator.objects["Opportunity"].values()))
    deal["Amount"] = 1234.5
    rest = [r for page in _connector(sandbox).read_rest(stream, None) for r in page.records]
    before = emulator.stats.get("bulk_jobs", 0)
    bulk = _read_bulk(_connector(sandbox, bulk_set_size=97), stream)
    assert emulator.stats["bulk_jobs"] == before + 1
    assert len(bulk) == len(rest) > 0
    by_id = {r["Id"]: r for r in rest}
    assert sorted(by_id) == sorted(r["Id"] for r in bulk)
    for record in bulk:
        same = by_id[record["Id"]]
        assert stream.to_typed(record) == stream.to_typed(same)
        if not any("." in f for f in stream.fields):
            # Without relationships the staged payloads are the same, byte for byte.
            assert state.canonical_json(record) == state.canonical_json(same)
    kinds = {type(v) for r in bulk for v in r.values()}
    assert {str, bool} <= kinds


def test_a_failed_job_or_no_job_allowance_falls_back_to_rest(sandbox: Sandbox) -> None:
    emulator = _emulator(sandbox)
    stream = STREAMS["contacts"]
    expected = _expected(emulator)
    emulator.inject("bulk_job_failed")
    failed = _connector(sandbox, bulk_threshold=1)
    assert sorted(r["Id"] for r in _read(failed, stream)) == expected
    assert any("REST instead" in n for n in failed.notices)
    emulator.bulk.daily_limit = emulator.bulk.used_today(emulator.clock())
    spent = _connector(sandbox, bulk_threshold=1)
    assert sorted(r["Id"] for r in _read(spent, stream)) == expected
    assert any("daily Bulk API 2.0 query job limit" in n for n in spent.notices)


class Interrupted(Exception):
    """Stands for a crash: not an error the retriever records."""


def _http_that(after_sets: int, action: str, emulator: SalesforceEmulator) -> HttpClient:
    """An HTTP door that, once ``after_sets`` result sets came back, expires the session
    (``expire``) or dies (``crash``) before the next set is staged."""
    seen = {"n": 0}
    session = requests.Session()

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if "/results" in response.url and response.ok:
            seen["n"] += 1
            if seen["n"] == after_sets:
                if action == "crash":
                    raise Interrupted
                emulator.expire_tokens()

    session.hooks["response"].append(hook)
    return HttpClient(session=session)


def test_an_expired_session_mid_job_is_refreshed(engine: Engine, sandbox: Sandbox) -> None:
    emulator = _emulator(sandbox)
    integration = _register(engine, sandbox)
    refreshes = emulator.stats["token_refreshes"]
    sync_object(engine, integration, "contacts", http=_http_that(2, "expire", emulator))
    assert emulator.stats["token_refreshes"] == refreshes + 2  # the first token, then one more
    assert emulator.stats["bulk_jobs"] == 1
    assert _stored(engine) == _expected(emulator)


def test_an_expired_job_is_replaced_by_a_new_one_from_the_last_checkpoint(
        engine: Engine, sandbox: Sandbox) -> None:
    emulator = _emulator(sandbox)
    integration = _register(engine, sandbox)
    with pytest.raises(Interrupted):
        sync_object(engine, integration, "contacts", http=_http_that(3, "crash", emulator))
    with engine.connect() as conn:
        obj = state.get_object(conn, integration, "contacts")
    assert obj is not None
    assert obj.resume_state is not None
    assert obj.checkpoint is None  # unordered sets move no checkpoint
    emulator.expire_bulk_jobs()
    resumed = sync_object(engine, integration, "contacts")
    assert emulator.stats["bulk_jobs"] == 2
    assert any("expired" in n for n in resumed.retrieved.notices)
    assert resumed.retrieved.records_fetched == len(_expected(emulator))
    assert _stored(engine) == _expected(emulator)


CHILD = textwrap.dedent("""
    import os, signal, sys
    import requests
    from akita_pipelines.db.engine import make_engine
    from akita_pipelines.providers.http import HttpClient
    from akita_pipelines.sync.service import sync_object

    url, integration, after = sys.argv[1], sys.argv[2], int(sys.argv[3])
    seen = {"n": 0}
    session = requests.Session()
    def hook(response, *args, **kwargs):
        if "/results" in response.url:
            seen["n"] += 1
            if seen["n"] > after:
                os.kill(os.getpid(), signal.SIGKILL)  # this set came back but is never staged
    session.hooks["response"].append(hook)
    sync_object(make_engine(url), integration, "contacts", http=HttpClient(session=session))
""")


def test_a_killed_bulk_backfill_resumes_from_the_next_locator_of_the_same_job(
        engine: Engine, sandbox: Sandbox) -> None:
    emulator = _emulator(sandbox)
    integration = _register(engine, sandbox)
    obj, staged = killed_sync(engine, integration, CHILD, "2")
    assert staged == 2 * SET_SIZE  # the sets before the kill are kept
    assert obj.cursor is None
    assert obj.checkpoint is None
    assert obj.resume_state is not None
    job = obj.resume_state["job"]
    assert job in emulator.bulk.jobs

    sets_before = emulator.stats["bulk_result_sets"]
    resumed = sync_object(engine, integration, "contacts")
    total = len(_expected(emulator))
    assert emulator.stats["bulk_jobs"] == 1  # the same job, not a new one
    # Nothing staged before the kill is read again: only the sets after it.
    assert resumed.retrieved.records_fetched == total - 2 * SET_SIZE
    assert emulator.stats["bulk_result_sets"] - sets_before == -(-(total - 2 * SET_SIZE)
                                                                 // SET_SIZE)
    stored = _stored(engine)
    assert stored == _expected(emulator)  # nothing lost, nothing twice
    with engine.connect() as conn:
        obj = state.get_object(conn, integration, "contacts")
        assert obj is not None
        pending = state.count_pending(conn, obj.id)
    assert obj.resume_state is None
    assert obj.cursor is not None
    assert pending == 0
