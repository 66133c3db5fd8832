"""Writes: staging + typed upserts of N records vs PostgreSQL's COPY + INSERT … ON CONFLICT floor.

Ours is the real code path of a sync (``stage_page`` then ``process_batch``'s interaction
upsert), so the figure moves when that path gets faster.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, create_engine, text

from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.types import Customer, Integration, TypedRecord
from akita_pipelines.db import entities, state
from akita_pipelines.db.engine import make_engine
from akita_pipelines.db.migrate import upgrade
from akita_pipelines.db.registry import save_customer, save_integration, sync_integration_objects
from akita_pipelines.providers.registry import get_provider
from benchmarks.common import Figure, sizes, timed

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _records(n: int) -> list[TypedRecord]:
    return [TypedRecord(interaction_type="contacts", external_id=f"003{i:015d}",
                        updated_at=T0 + timedelta(seconds=i), name=f"Person {i}",
                        email=f"person{i}@company{i % 5000}.com", first_name="P",
                        last_name=str(i), account_ref=f"001{i % 5000:015d}",
                        fields={"Title": "VP"}) for i in range(n)]


def _setup(engine: Engine) -> int:
    upgrade(engine)
    now = utcnow()
    spec = get_provider("salesforce")
    with engine.begin() as conn:
        save_customer(conn, Customer(id="bench", name="Bench"), now)
        integration = Integration(id="salesforce.bench", customer_id="bench",
                                  provider="salesforce", config={"base_url": "http://x"})
        save_integration(conn, integration, {}, now)
        sync_integration_objects(conn, spec, integration, now)
        obj = state.get_object(conn, "salesforce.bench", "contacts")
    assert obj is not None
    return obj.id


def ours(engine: Engine, records: list[TypedRecord], batch: int = 5000) -> float:
    object_id = _setup(engine)
    with timed() as t:
        for start in range(0, len(records), batch):
            chunk = records[start:start + batch]
            staged = [state.StagedRecord(r.external_id, r.updated_at,
                                         state.canonical_json({"Id": r.external_id,
                                                               "Email": r.email}))
                      for r in chunk]
            with engine.begin() as conn:
                state.stage_page(conn, object_id, staged, chunk[-1].updated_at, utcnow())
                entities.upsert_interactions(conn, customer_id="bench",
                                             integration_id="salesforce.bench",
                                             records=[(r, None) for r in chunk], now=utcnow())
    return len(records) / t.wall


def copy_floor(admin_url: str, records: list[TypedRecord]) -> float:
    engine = create_engine(_fresh(admin_url, "bench_floor"))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (external_id text PRIMARY KEY, email text, "
                          "name text, payload text, updated_at timestamptz)"))
    raw = engine.raw_connection()
    with timed() as t:
        for start in range(0, len(records), 5000):
            chunk = records[start:start + 5000]
            buf = io.StringIO()
            for r in chunk:
                buf.write(f"{r.external_id}\t{r.email}\t{r.name}\t{{}}\t{r.updated_at}\n")
            buf.seek(0)
            cur = raw.cursor()
            cur.execute("CREATE TEMP TABLE s (LIKE t) ON COMMIT DROP")
            cur.copy_expert("COPY s FROM STDIN", buf)
            cur.execute("INSERT INTO t SELECT * FROM s ON CONFLICT (external_id) DO UPDATE "
                        "SET email = excluded.email, name = excluded.name, "
                        "payload = excluded.payload, updated_at = excluded.updated_at")
            raw.commit()
    raw.close()
    engine.dispose()
    return len(records) / t.wall


def _fresh(admin_url: str, name: str) -> str:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def run() -> list[Figure]:
    import tempfile
    from pathlib import Path

    from akita_pipelines_tests.pg import postgres_server

    figures = []
    for n in sizes([20_000], [100_000]):
        records = _records(n)
        with tempfile.TemporaryDirectory() as tmp:
            sqlite_rate = ours(make_engine(f"sqlite:///{Path(tmp) / 'w.db'}"), records)
        with postgres_server() as admin_url:
            pg_rate = ours(make_engine(_fresh(admin_url, "bench_ours")), records)
            floor = copy_floor(admin_url, records)
        figures.append(Figure(f"writes, {n:,} records (PostgreSQL)", f"{pg_rate:,.0f} rec/s",
                              f"{floor:,.0f} rec/s (COPY+upsert)", f"{pg_rate / floor:.0%}",
                              "≥ 50 % of the floor"))
        figures.append(Figure(f"writes, {n:,} records (SQLite)", f"{sqlite_rate:,.0f} rec/s"))
    return figures


if __name__ == "__main__":
    from benchmarks.common import render

    print(render(run()))
