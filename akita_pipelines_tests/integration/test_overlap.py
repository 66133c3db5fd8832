"""The processor works beside the retrieval (sync.service): batches are processed while later
pages are still being fetched, and every guarantee of the one-after-the-other sync holds."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.errors import AkitaError
from akita_pipelines.db import state
from akita_pipelines.db.schema import interactions, sync_runs
from akita_pipelines.providers.http import HttpClient
from akita_pipelines.sandbox.server import Sandbox
from akita_pipelines.sync import process
from akita_pipelines.sync.retrieve import ObjectBusy
from akita_pipelines.sync.service import sync_object
from akita_pipelines_tests.integration.conftest import register_salesforce

PAGE = 200


class Pages:
    """Wraps the emulator: each query page answers after ``delay``; from page ``fail_from`` on,
    every query answers 503 (the retrieval fails after its retries)."""

    def __init__(self, sandbox: Sandbox, delay: float, fail_from: int | None = None) -> None:
        self.server = sandbox.servers["salesforce"]
        self.inner = self.server.app
        self.delay, self.fail_from, self.served = delay, fail_from, 0
        self.server.app = self

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if "/query" in environ.get("PATH_INFO", ""):
            self.served += 1
            if self.fail_from is not None and self.served >= self.fail_from:
                start_response("503 Service Unavailable", [("Content-Type", "application/json")])
                return [b'[{"errorCode": "SERVER_UNAVAILABLE", "message": "down"}]']
            time.sleep(self.delay)
        return self.inner(environ, start_response)

    def restore(self) -> None:
        self.server.app = self.inner


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """What happened, in order: ``staged`` per page committed, ``processed`` per batch."""
    seen: list[str] = []
    lock = threading.Lock()
    stage, mark = state.stage_page, state.mark_processed

    def staged(*args: Any, **kwargs: Any) -> None:
        stage(*args, **kwargs)
        with lock:
            seen.append("staged")

    def processed(*args: Any, **kwargs: Any) -> None:
        mark(*args, **kwargs)
        with lock:
            seen.append("processed")

    monkeypatch.setattr(state, "stage_page", staged)
    monkeypatch.setattr(state, "mark_processed", processed)
    monkeypatch.setattr(process, "BATCH_SIZE", PAGE)
    return seen


def _stored(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(interactions)).scalar_one())


def test_batches_are_processed_while_later_pages_are_fetched(
        engine: Engine, sandbox: Sandbox, events: list[str]) -> None:
    integration = register_salesforce(engine, sandbox,
                                      settings={"types": {"contacts": {"page_size": PAGE}}})
    sandbox.emulators["salesforce"].create("Contact", 5 * PAGE)
    pages = Pages(sandbox, delay=0.3)
    try:
        result = sync_object(engine, integration, "contacts")
    finally:
        pages.restore()
    live = sandbox.emulators["salesforce"].records("Contact", include_deleted=True)
    assert result.processed.processed == result.retrieved.records_fetched == len(live)
    assert _stored(engine) == len(live)
    # A batch was stored before the last page arrived: the two really overlapped.
    last_page = max(i for i, e in enumerate(events) if e == "staged")
    assert "processed" in events[:last_page]
    with engine.connect() as conn:
        obj = state.get_object(conn, integration, "contacts")
        assert obj is not None
        assert obj.cursor is not None
        assert obj.state == "ok"
        assert state.count_pending(conn, obj.id) == 0


def test_a_retrieval_failing_midway_keeps_the_cursor_and_the_next_sync_resumes(
        engine: Engine, sandbox: Sandbox, events: list[str]) -> None:
    integration = register_salesforce(engine, sandbox,
                                      settings={"types": {"contacts": {"page_size": PAGE}}})
    sandbox.emulators["salesforce"].create("Contact", 5 * PAGE)
    pages = Pages(sandbox, delay=0.2, fail_from=4)
    try:
        with pytest.raises(AkitaError):
            sync_object(engine, integration, "contacts", http=HttpClient(sleep=lambda s: None))
    finally:
        pages.restore()
    with engine.connect() as conn:
        obj = state.get_object(conn, integration, "contacts")
        failed = conn.execute(select(sync_runs.c.status)).scalars().all()
    assert obj is not None
    assert obj.cursor is None  # nothing committed: the read did not finish
    assert obj.consecutive_failures == 1  # recorded once, by the retrieval
    assert failed == ["failed"]
    assert 0 < _stored(engine) < 5 * PAGE  # the pages staged before the failure were stored
    resumed = sync_object(engine, integration, "contacts")
    live = sandbox.emulators["salesforce"].records("Contact", include_deleted=True)
    assert _stored(engine) == len(live)
    assert resumed.retrieved.since is not None  # from the checkpoint, not from the start
    with engine.connect() as conn:
        obj = state.get_object(conn, integration, "contacts")
        assert obj is not None
        assert obj.cursor is not None
        assert obj.consecutive_failures == 0
        assert state.count_pending(conn, obj.id) == 0


def test_a_busy_object_is_left_to_its_holder_without_processing(
        engine: Engine, sandbox: Sandbox, events: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    integration = register_salesforce(engine, sandbox,
                                      settings={"types": {"contacts": {"page_size": PAGE}}})
    sandbox.emulators["salesforce"].create("Contact", 2 * PAGE)
    with engine.begin() as conn:  # a crashed sync's staged rows, waiting for the next sync
        obj = state.get_object(conn, integration, "contacts")
        assert obj is not None
        state.stage_page(conn, obj.id, [state.StagedRecord(
            "003LEFT", None, state.canonical_json({"Id": "003LEFT", "LastName": "Left"}))],
            None, utcnow())
    events.clear()

    def busy(*args: Any, **kwargs: Any) -> Any:
        raise ObjectBusy(integration, "contacts", ["other-run"])

    monkeypatch.setattr("akita_pipelines.sync.service.retrieve_changes", busy)
    with pytest.raises(ObjectBusy):
        sync_object(engine, integration, "contacts", run_id="this-run")
    assert events == []  # the other run's object: nothing processed here
    assert _stored(engine) == 0
