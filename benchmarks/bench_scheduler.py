"""Scheduler tick: the due query plus run planning with 1k / 10k / 100k Integration Objects."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, insert

from akita_pipelines.core.clock import utcnow
from akita_pipelines.db import state
from akita_pipelines.db.engine import make_engine
from akita_pipelines.db.migrate import upgrade
from akita_pipelines.db.schema import customers, integration_objects, integrations
from akita_pipelines.sync.scheduler import plan_runs
from benchmarks.common import Figure, best_of, sizes

TYPES = ("accounts", "contacts", "deals", "tickets", "tasks")


def populate(engine: Engine, n_objects: int) -> None:
    now = utcnow()
    n_integrations = max(1, n_objects // len(TYPES))
    with engine.begin() as conn:
        conn.execute(insert(customers), [{"id": f"c{i}", "name": f"C{i}", "settings": {},
                                          "created_at": now} for i in range(n_integrations)])
        conn.execute(insert(integrations), [
            {"id": f"salesforce.c{i}", "customer_id": f"c{i}", "provider": "salesforce",
             "config": {}, "credentials": {}, "settings": {}, "state": "active",
             "created_at": now, "updated_at": now} for i in range(n_integrations)])
        # A tenth of the objects are due; the rest are due later.
        conn.execute(insert(integration_objects), [
            {"integration_id": f"salesforce.c{i}", "interaction_type": t,
             "frequency_per_day": 24.0, "enabled": True, "consecutive_failures": 0,
             "state": "ok",
             "next_due_at": now - timedelta(minutes=1) if i % 10 == 0
             else now + timedelta(hours=1)}
            for i in range(n_integrations) for t in TYPES])


def tick(engine: Engine) -> int:
    with engine.connect() as conn:
        due = state.due_objects(conn, utcnow(), limit=2000)
    return len(plan_runs(due, in_flight=set(), known_providers={"salesforce"}, max_runs=200))


def run() -> list[Figure]:
    figures = []
    for n in sizes([1_000, 10_000, 100_000], [1_000, 10_000, 100_000]):
        with tempfile.TemporaryDirectory() as tmp:
            engine = make_engine(f"sqlite:///{Path(tmp) / 'tick.db'}")
            upgrade(engine)
            populate(engine, n)
            seconds = best_of(5, lambda e=engine: tick(e))  # type: ignore[misc]
            engine.dispose()
        figures.append(Figure(f"scheduler tick, {n:,} objects (SQLite)", f"{seconds * 1000:.1f} ms",
                              goal="≤ 1 s at 100k"))
    return figures


if __name__ == "__main__":
    from benchmarks.common import render

    print(render(run()))
