"""Property: whatever the interleaving of provider-side changes and syncs, after a final sync
the stored state equals the provider's state.

Covers the cursor boundary traps: many records sharing one timestamp, records updated while a
sync pages through results, late-arriving records (committed with a timestamp just before the
cursor), deletions.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from akita_pipelines.core.clock import parse_datetime
from akita_pipelines.db.engine import make_engine
from akita_pipelines.db.migrate import upgrade
from akita_pipelines.db.schema import interactions
from akita_pipelines.providers.http import HttpClient
from akita_pipelines.sandbox.server import Sandbox, start_sandbox
from akita_pipelines.sync.service import sync_object
from akita_pipelines_tests.integration.conftest import register_salesforce


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


OPS = st.lists(st.one_of(
    st.tuples(st.just("touch"), st.integers(1, 30)),
    st.tuples(st.just("create"), st.integers(1, 30)),
    st.tuples(st.just("delete"), st.integers(1, 3)),
    st.tuples(st.just("late"), st.integers(1, 5)),
    st.tuples(st.just("tick"), st.integers(0, 2)),
    st.tuples(st.just("sync"), st.integers(0, 1)),
    st.tuples(st.just("sync_with_changes_during_paging"), st.integers(1, 10)),
), min_size=1, max_size=12)


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def sandbox(clock: Clock) -> Iterator[Sandbox]:
    with start_sandbox(base_port=0, seed=99, clock=clock) as running:
        yield running


def _stored(engine: Engine, integration: str) -> dict[str, tuple[datetime | None, bool]]:
    with engine.connect() as conn:
        return {r.external_id: (r.source_updated_at, r.deleted_at is not None)
                for r in conn.execute(select(interactions).where(
                    interactions.c.integration_id == integration))}


def _sync_with_changes_during_paging(engine: Engine, integration: str, emulator: object,
                                     n: int) -> None:
    session = requests.Session()
    pages = {"n": 0}

    def change(response: requests.Response, *args: object, **kw: object) -> None:
        if "/query" in response.url:
            pages["n"] += 1
            if pages["n"] == 1:
                emulator.touch("Contact", count=n)  # type: ignore[attr-defined]
                emulator.create("Contact", 1)  # type: ignore[attr-defined]

    session.hooks["response"].append(change)
    sync_object(engine, integration, "contacts", http=HttpClient(session=session))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_final_state_equals_provider_state(ops: list[tuple[str, int]], sandbox: Sandbox,
                                           clock: Clock, tmp_path_factory: pytest.TempPathFactory
                                           ) -> None:
    emulator = sandbox.emulators["salesforce"]
    engine = make_engine(f"sqlite:///{Path(tmp_path_factory.mktemp('prop')) / 'a.db'}")
    upgrade(engine)
    integration = register_salesforce(engine, sandbox,
                                      settings={"types": {"contacts": {"page_size": 200,
                                                                       "lookback_seconds": 120}}})
    sync_object(engine, integration, "contacts")
    for op, n in ops:
        if op == "touch":
            emulator.touch("Contact", count=n)  # many share the clock's current timestamp
        elif op == "create":
            emulator.create("Contact", n)
        elif op == "delete":
            live = sorted(r["Id"] for r in emulator.records("Contact"))
            emulator.delete("Contact", live[:n])
        elif op == "late":
            real = clock.now
            clock.now = real - timedelta(seconds=60)  # committed late, stamped earlier
            emulator.create("Contact", n)
            clock.now = real
        elif op == "tick":
            clock.now += timedelta(seconds=n)
        elif op == "sync":
            sync_object(engine, integration, "contacts")
        else:
            _sync_with_changes_during_paging(engine, integration, emulator, n)
        clock.now += timedelta(milliseconds=1)
    sync_object(engine, integration, "contacts")
    expected = {r["Id"]: (parse_datetime(r["SystemModstamp"]), bool(r["IsDeleted"]))
                for r in emulator.records("Contact", include_deleted=True)}
    assert _stored(engine, integration) == expected
    engine.dispose()
