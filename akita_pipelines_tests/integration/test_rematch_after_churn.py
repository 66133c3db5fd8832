"""One answer whatever the order: right after a demo-style sequence of syncs, with the
emulators changing records between them, a re-match from the stored interactions moves
no record to another entity."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from akita_pipelines.core.clock import set_clock
from akita_pipelines.core.types import type_order
from akita_pipelines.db import state
from akita_pipelines.demo import register_demo
from akita_pipelines.providers.http import HttpClient
from akita_pipelines.sandbox.server import start_sandbox
from akita_pipelines.sync.rematch import rematch
from akita_pipelines.sync.service import sync_object


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += timedelta(minutes=minutes)


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    fake = FakeClock(datetime(2026, 6, 1, 9, 0, tzinfo=UTC))
    set_clock(fake)  # our cursors and the emulators' change stamps read the same time
    yield fake
    set_clock(None)


@pytest.mark.parametrize("churn_per_minute", [0, 20, 60])
def test_a_rematch_right_after_churned_syncs_moves_nothing(
        sqlite_engine: Engine, tmp_path: Path, clock: FakeClock, churn_per_minute: float) -> None:
    with start_sandbox(base_port=0, seed=7, churn_per_minute=churn_per_minute,
                       clock=clock) as sandbox:
        register_demo(sqlite_engine, sandbox.urls, tmp_path)
        with sqlite_engine.connect() as conn:
            objects = sorted(state.list_objects(conn), key=lambda o: (
                o.integration_id, type_order(o.interaction_type)))
        fetched = []
        for _ in range(3):  # a first sync, then two incremental ones over changed records
            fetched.append(sum(
                sync_object(sqlite_engine, obj.integration_id, obj.interaction_type,
                            http=HttpClient(sleep=lambda s: None)).retrieved.records_fetched
                for obj in objects))
            clock.advance(minutes=3)
    assert fetched[0] > 1000
    if churn_per_minute:
        assert min(fetched[1:]) > 0, "the emulators changed records between syncs"
    dry = rematch(sqlite_engine, dry_run=True)
    report = rematch(sqlite_engine)
    assert (dry.moved, dry.links) == (report.moved, report.links)  # a dry run tells the truth
    assert report.links > 1000
    assert report.moved == 0, (f"{report.moved} of {report.links} links moved",
                               report.moves[:10])
