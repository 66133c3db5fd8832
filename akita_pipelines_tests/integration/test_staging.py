"""Staging and the bulk writers: values survive both PostgreSQL paths (array literals below
MIN_ROWS, COPY above) and the driver path on SQLite, and the pending flag behaves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError

from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.types import Customer, Integration, TypedRecord
from akita_pipelines.db import entities, state
from akita_pipelines.db.bulk import MIN_ROWS
from akita_pipelines.db.integrations import (
    save_customer,
    save_integration,
    sync_integration_objects,
)
from akita_pipelines.db.schema import interactions, staged_records
from akita_pipelines.providers.registry import get_provider

T0 = datetime(2025, 1, 1, tzinfo=UTC)
# What COPY text and array literals must escape, and what they must not mistake for NULL.
NASTY = ["tab\there", "new\nline\r\n", "back\\slash", 'quote"d', "{brace,comma}", "NULL", "\\N",
         "", " padded ", "ünïcødé ✓"]


def _object(engine: Engine) -> int:
    now = utcnow()
    with engine.begin() as conn:
        save_customer(conn, Customer(id="c", name="C"), now)
        integration = Integration(id="salesforce.c", customer_id="c", provider="salesforce",
                                  config={})
        save_integration(conn, integration, {}, now)
        sync_integration_objects(conn, get_provider("salesforce"), integration, now)
        obj = state.get_object(conn, "salesforce.c", "contacts")
    assert obj is not None
    return obj.id


def _page(n: int, version: str) -> list[state.StagedRecord]:
    return [state.StagedRecord(f"id{i}", None if i % 7 == 0 else T0 + timedelta(seconds=i),
                               state.canonical_json({"Id": f"id{i}", "v": version,
                                                     "Note": NASTY[i % len(NASTY)]}))
            for i in range(n)]


@pytest.mark.parametrize("n", [12, MIN_ROWS + 10])  # array literals, then COPY
def test_staging_round_trips_payloads_and_keeps_processed_state(engine: Engine, n: int) -> None:
    object_id = _object(engine)
    page = _page(n, "1")
    with engine.begin() as conn:
        state.stage_page(conn, object_id, page + page[:3], T0, utcnow())  # repeats: last wins
    with engine.connect() as conn:
        rows = {r.external_id: r for r in conn.execute(select(staged_records))}
    assert len(rows) == n
    for record in page:
        row = rows[record.external_id]
        assert (row.payload, row.source_updated_at) == (record.payload,
                                                        record.source_updated_at)
        assert row.content_hash == state.content_hash(record.payload)

    with engine.begin() as conn:
        assert state.processed_through(conn, object_id) == 0
        assert state.count_pending(conn, object_id) == n
        pending = state.pending_batch(conn, object_id, 0, n)
        # Staging order: the page's order (a repeated id keeps its first place).
        assert [e for _, e, _ in pending] == [r.external_id for r in page]
        state.mark_processed(conn, object_id, pending[-1][0])
        assert state.count_pending(conn, object_id) == 0
    # Unchanged records are not written again; a changed one is numbered anew, above the
    # watermark.
    again = _page(n, "1")
    again[5] = state.StagedRecord("id5", T0, state.canonical_json({"Id": "id5", "v": "2"}))
    later = utcnow() + timedelta(minutes=1)
    with engine.begin() as conn:
        state.stage_page(conn, object_id, again, T0 + timedelta(days=1), later)
        assert state.count_pending(conn, object_id) == 1
        fresh = state.pending_batch(conn, object_id, state.processed_through(conn, object_id), n)
        assert [(e, p) for _, e, p in fresh] == [("id5", again[5].payload)]
        assert fresh[0][0] > pending[-1][0]
        assert state.pending_batch(conn, object_id, fresh[0][0], n) == []
        assert state.get_object(conn, "salesforce.c", "contacts").checkpoint == (  # type: ignore[union-attr]
            T0 + timedelta(days=1))
        staged_at = dict(conn.execute(select(staged_records.c.external_id,
                                             staged_records.c.staged_at)).all())
    assert staged_at["id5"] == later
    assert staged_at["id6"] == rows["id6"].staged_at  # unchanged: not written
    # A full read notes every row it saw (reconciliation reads it) without renumbering them.
    seen_at = later + timedelta(minutes=1)
    with engine.begin() as conn:
        state.stage_page(conn, object_id, again, None, seen_at, full=True)
        assert state.count_pending(conn, object_id) == 1
        assert set(conn.execute(select(staged_records.c.staged_at)).scalars()) == {seen_at}


@pytest.mark.parametrize("n", [3, MIN_ROWS + 10])
def test_interaction_upsert_keeps_types_and_nulls(engine: Engine, n: int) -> None:
    _object(engine)
    now = utcnow()
    records = [TypedRecord("contacts", f"c{i}", T0 + timedelta(minutes=i) if i % 2 else None,
                           name=NASTY[i % len(NASTY)], email=None if i % 3 else f"p{i}@x.com",
                           deleted=i % 5 == 0,
                           fields={"s": NASTY[(i + 1) % len(NASTY)], "n": i, "b": True,
                                   "none": None, "list": ["a\\b", {"k": "\"q\""}]})
               for i in range(n)]
    with engine.begin() as conn:
        ids = entities.upsert_interactions(conn, customer_id="c", integration_id="salesforce.c",
                                           records=[(r, None if i % 2 else "x.com")
                                                    for i, r in enumerate(records)], now=now)
    with engine.connect() as conn:
        rows = {r.external_id: r for r in conn.execute(select(interactions))}
    assert len(ids) == len(rows) == n
    for i, r in enumerate(records):
        row = rows[r.external_id]
        assert row.id == ids[r.external_id]
        assert (row.name, row.email, row.fields, row.source_updated_at) == (
            r.name, r.email, dict(r.fields), r.updated_at)
        assert row.domain == (None if i % 2 else "x.com")
        assert row.deleted_at == ((r.updated_at or now) if r.deleted else None)
        assert (row.website, row.phone, row.updated_at) == (None, None, now)


@pytest.mark.parametrize("n", [3, MIN_ROWS + 10])
def test_too_long_values_fail_instead_of_being_cut(engine: Engine, n: int) -> None:
    """An explicit cast to varchar(255)[] would cut a long id to 255 characters; the bulk paths
    leave the length check to the INSERT, which raises as a plain INSERT does."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite does not enforce varchar lengths")
    object_id = _object(engine)
    page = _page(n, "1")
    page[-1] = state.StagedRecord("x" * 300, T0, "{}")
    import psycopg2

    # The bulk writers use the driver's cursor: its error, unwrapped.
    with pytest.raises((DBAPIError, psycopg2.Error), match="too long"), engine.begin() as conn:
        state.stage_page(conn, object_id, page, T0, utcnow())
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM staged_records")).scalar_one() == 0


def test_naive_datetimes_are_refused(engine: Engine) -> None:
    object_id = _object(engine)
    page = [state.StagedRecord("a", datetime(2025, 1, 1), "{}")]  # noqa: DTZ001
    with pytest.raises(ValueError, match="naive"), engine.begin() as conn:
        state.stage_page(conn, object_id, page, None, utcnow())
