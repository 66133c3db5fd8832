"""Writes: staging + typed upserts of N records vs PostgreSQL's COPY + INSERT … ON CONFLICT floor.

Ours is the real code path of a sync (``stage_page`` then ``process_batch``'s interaction
upsert), so the figure moves when that path gets faster.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, create_engine, text

from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.types import Customer, Integration, TypedRecord
from akita_pipelines.db import entities, state
from akita_pipelines.db.engine import make_engine
from akita_pipelines.db.integrations import (
    save_customer,
    save_integration,
    sync_integration_objects,
)
from akita_pipelines.db.migrate import upgrade
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


def same_rows_floor(admin_url: str, records: list[TypedRecord], batch: int = 5000) -> float:
    """The floor for *our* rows: the staged rows and interaction rows the sync writes, in our
    schema (same tables, indexes and conflict targets, made by the migrations), as COPY text
    prepared before the clock starts, then COPY + one INSERT … ON CONFLICT per table. What is
    left between this and ours is our own cost: building rows and COPY text, RETURNING ids."""
    engine = make_engine(_fresh(admin_url, "bench_floor_same"))
    object_id = _setup(engine)
    now = utcnow().isoformat()
    stage_cols = "integration_object_id, external_id, source_updated_at, content_hash, " \
        "payload, seq, staged_at"
    inter_cols = "customer_id, integration_id, interaction_type, external_id, name, email, " \
        "first_name, last_name, account_ref, fields, source_updated_at, updated_at"
    # The same columns ours updates on conflict.
    update_interactions = ", ".join(f"{c} = excluded.{c}"
                                    for c in entities.INTERACTION_UPDATE)
    buffers = []
    seq = 0
    for start in range(0, len(records), batch):
        chunk = records[start:start + batch]
        staged, typed = io.StringIO(), io.StringIO()
        for r in chunk:
            payload = state.canonical_json({"Id": r.external_id, "Email": r.email})
            seq += 1
            staged.write(f"{object_id}\t{r.external_id}\t{r.updated_at.isoformat()}\t"
                         f"{state.content_hash(payload)}\t{payload}\t{seq}\t{now}\n")
            typed.write(f"bench\tsalesforce.bench\tcontacts\t{r.external_id}\t{r.name}\t"
                        f"{r.email}\t{r.first_name}\t{r.last_name}\t{r.account_ref}\t"
                        f"{json.dumps(dict(r.fields))}\t{r.updated_at.isoformat()}\t{now}\n")
        staged.seek(0)
        typed.seek(0)
        buffers.append((staged, typed))
    raw = engine.raw_connection()
    with timed() as t:
        for staged, typed in buffers:
            cur = raw.cursor()
            cur.execute("CREATE TEMP TABLE s ON COMMIT DROP AS SELECT * FROM staged_records "
                        "WITH NO DATA")
            cur.copy_expert(f"COPY s ({stage_cols}) FROM STDIN", staged)
            cur.execute(f"INSERT INTO staged_records ({stage_cols}) SELECT {stage_cols} FROM s "
                        "ON CONFLICT (integration_object_id, external_id) DO UPDATE SET "
                        "payload = excluded.payload, content_hash = excluded.content_hash, "
                        "source_updated_at = excluded.source_updated_at, "
                        "staged_at = excluded.staged_at, seq = excluded.seq WHERE "
                        "staged_records.content_hash <> excluded.content_hash")
            cur.execute("CREATE TEMP TABLE i ON COMMIT DROP AS SELECT * FROM interactions "
                        "WITH NO DATA")
            cur.copy_expert(f"COPY i ({inter_cols}) FROM STDIN", typed)
            cur.execute(f"INSERT INTO interactions ({inter_cols}) SELECT {inter_cols} FROM i "
                        "ON CONFLICT (integration_id, interaction_type, external_id) DO UPDATE "
                        f"SET {update_interactions}")
            raw.commit()
    raw.close()
    engine.dispose()
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
            floor = same_rows_floor(admin_url, records)
            narrow = copy_floor(admin_url, records)
        figures.append(Figure(f"writes, {n:,} records (PostgreSQL)", f"{pg_rate:,.0f} rec/s",
                              f"{floor:,.0f} rec/s (COPY+upsert, same rows)",
                              f"{pg_rate / floor:.0%}", "≥ 50 % of the floor",
                              note=f"staged + interaction rows in our schema; one narrow "
                                   f"5-column table: {narrow:,.0f} rec/s "
                                   f"({pg_rate / narrow:.0%})"))
        figures.append(Figure(f"writes, {n:,} records (SQLite)", f"{sqlite_rate:,.0f} rec/s"))
    return figures


if __name__ == "__main__":
    from benchmarks.common import render

    print(render(run()))
