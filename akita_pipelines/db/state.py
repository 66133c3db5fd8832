"""Sync state repository: the due query, staging pages with checkpoints, success and failure."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any

from sqlalchemy import Connection, bindparam, func, null, select, update

from akita_pipelines.db import bulk
from akita_pipelines.db.dialect import among
from akita_pipelines.db.schema import (
    integration_objects,
    integrations,
    interactions,
    quarantine,
    staged_records,
    sync_runs,
)
from akita_pipelines.util import jsonfast


@dataclass(frozen=True)
class ObjectRow:
    """An Integration Object with what the scheduler and the retriever need of it."""

    id: int
    integration_id: str
    provider: str
    customer_id: str
    interaction_type: str
    frequency_per_day: float
    cursor: datetime | None
    checkpoint: datetime | None
    full_checkpoint: datetime | None
    last_synced_at: datetime | None
    next_due_at: datetime | None
    consecutive_failures: int
    state: str
    enabled: bool
    integration_state: str
    last_error: str | None
    #: The connector's state for continuing an interrupted read (see ``Page.resume``).
    resume_state: dict[str, Any] | None = None


_OBJECT_COLUMNS = (
    integration_objects.c.id, integration_objects.c.integration_id, integrations.c.provider,
    integrations.c.customer_id, integration_objects.c.interaction_type,
    integration_objects.c.frequency_per_day, integration_objects.c.cursor,
    integration_objects.c.checkpoint, integration_objects.c.full_checkpoint,
    integration_objects.c.last_synced_at,
    integration_objects.c.next_due_at, integration_objects.c.consecutive_failures,
    integration_objects.c.state, integration_objects.c.enabled,
    integrations.c.state.label("integration_state"), integration_objects.c.last_error,
    integration_objects.c.resume_state,
)


def _objects_query() -> Any:
    return select(*_OBJECT_COLUMNS).join(
        integrations, integrations.c.id == integration_objects.c.integration_id)


def due_objects(conn: Connection, now: datetime, *, limit: int | None = None) -> list[ObjectRow]:
    """Integration Objects due at ``now``: enabled, integration active, next_due_at passed.

    One query on the ``(enabled, next_due_at)`` index, oldest due first.
    """
    query = (_objects_query()
             .where(integration_objects.c.enabled.is_(True),
                    integration_objects.c.next_due_at <= now,
                    integrations.c.state == "active")
             .order_by(integration_objects.c.next_due_at, integration_objects.c.id))
    if limit is not None:
        query = query.limit(limit)
    return [ObjectRow(**r._mapping) for r in conn.execute(query)]


def list_objects(conn: Connection, *, integration_id: str | None = None,
                 types: Sequence[str] | None = None) -> list[ObjectRow]:
    query = _objects_query().order_by(integration_objects.c.integration_id,
                                      integration_objects.c.id)
    if integration_id is not None:
        query = query.where(integration_objects.c.integration_id == integration_id)
    if types:
        query = query.where(integration_objects.c.interaction_type.in_(list(types)))
    return [ObjectRow(**r._mapping) for r in conn.execute(query)]


def get_object(conn: Connection, integration_id: str, interaction_type: str) -> ObjectRow | None:
    found = list_objects(conn, integration_id=integration_id, types=[interaction_type])
    return found[0] if found else None


def begin_sync(conn: Connection, obj: ObjectRow, *, trigger: str, run_id: str | None,
               now: datetime) -> int:
    conn.execute(update(integration_objects).where(integration_objects.c.id == obj.id)
                 .values(last_attempt_at=now))
    result = conn.execute(sync_runs.insert().values(
        integration_object_id=obj.id, run_id=run_id, trigger=trigger, started_at=now,
        status="running", cursor_before=obj.cursor, records_fetched=0, pages=0, created=0,
        updated=0, matched=0))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def content_hash(payload: str) -> str:
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class StagedRecord:
    external_id: str
    source_updated_at: datetime | None
    payload: str  # canonical JSON


# One encoder for every record (``json.dumps`` with options builds one per call); the same
# text as ``json.dumps(record, separators=(",", ":"), sort_keys=True, ensure_ascii=False)``.
_canonical = json.JSONEncoder(separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode


def canonical_json(record: Any) -> str:
    """The record's canonical JSON: the stdlib encoder's text above, byte for byte.

    The text is hashed (``content_hash``) and compared (``times_quarantined``): another text
    for the same record would make it look changed. orjson writes it where its text is the
    same, the stdlib where it is not (see :func:`akita_pipelines.util.jsonfast.dumps`).
    """
    return jsonfast.dumps(record, _canonical, sort_keys=True)


def parse_payload(payload: str) -> Any:
    """A staged payload's value: ``json.loads(payload)``, parsed by orjson where it reads the
    same (:mod:`akita_pipelines.util.jsonfast`); errors are ``json.loads``'s own."""
    # surrogatepass: a lone surrogate becomes invalid UTF-8, which orjson refuses.
    return jsonfast.loads(payload.encode("utf-8", "surrogatepass"),
                          lambda: json.loads(payload))


_external_id = attrgetter("external_id")
_payload = attrgetter("payload")
_source_updated_at = attrgetter("source_updated_at")
_STAGE_KEYS = ["integration_object_id", "external_id"]
_CHANGED = "staged_records.content_hash <> excluded.content_hash"
# An incremental read: only a row whose content changed is written (with its new number);
# re-reading the lookback window writes nothing.
_STAGE_CHANGED = {c: f"excluded.{c}" for c in ("payload", "content_hash", "source_updated_at",
                                                 "staged_at", "seq")}
# A full read also records that it saw every unchanged row (``reconcile_unseen`` reads it).
_STAGE_SEEN = {**{c: f"CASE WHEN {_CHANGED} THEN excluded.{c} ELSE staged_records.{c} END"
                  for c in ("payload", "content_hash", "source_updated_at", "seq")},
               "staged_at": "excluded.staged_at"}


def _draw_seq(conn: Connection, object_id: int, n: int) -> int:
    """Reserve ``n`` staging numbers for the object; the first of them. The object's row stays
    locked until the caller commits, so numbers follow the order pages commit in."""
    last = conn.execute(update(integration_objects)
                        .where(integration_objects.c.id == object_id)
                        .values(staged_seq=integration_objects.c.staged_seq + n)
                        .returning(integration_objects.c.staged_seq)).scalar_one()
    return int(last) - n + 1


def stage_page(conn: Connection, object_id: int, records: Sequence[StagedRecord],
               checkpoint: datetime | None, now: datetime, *, full: bool = False,
               resume: Mapping[str, Any] | None = None, set_resume: bool = False) -> None:
    """Stage one page and move the retrieval checkpoint, in the caller's transaction.

    A record with new content gets the object's next staging number: the processor takes it
    up. A record whose content did not change keeps its number and is not written (a full read
    only notes that it saw it), so re-reading the lookback window costs no processing. With
    ``set_resume`` the object's resume state becomes ``resume`` (None clears it) in the same
    transaction: it never points past unstaged data.
    """
    # One statement may not touch a row twice: keep the last copy of a repeated id.
    records = list({r.external_id: r for r in records}.values())
    n = len(records)
    if n:
        first = _draw_seq(conn, object_id, n)
        payloads = list(map(_payload, records))
        # Column by column (the bulk writers take columns): no dict per row.
        columns: dict[str, list[Any]] = {
            "integration_object_id": [object_id] * n,
            "external_id": list(map(_external_id, records)),
            "source_updated_at": list(map(_source_updated_at, records)),
            "content_hash": list(map(content_hash, payloads)),
            "payload": payloads,
            "seq": list(range(first, first + n)),
            "staged_at": [now] * n,
        }
        if full:
            bulk.upsert(conn, staged_records, columns, keys=_STAGE_KEYS, set_sql=_STAGE_SEEN)
        else:
            bulk.upsert(conn, staged_records, columns, keys=_STAGE_KEYS,
                        set_sql=_STAGE_CHANGED, where_sql=_CHANGED)
    if set_resume:
        conn.execute(update(integration_objects).where(integration_objects.c.id == object_id)
                     .values(resume_state=dict(resume) if resume is not None else null()))
    if checkpoint is not None and full:
        conn.execute(update(integration_objects).where(integration_objects.c.id == object_id)
                     .values(full_checkpoint=checkpoint))
    if checkpoint is not None:
        # Never move the checkpoint backwards (a lookback re-read starts before it).
        conn.execute(update(integration_objects)
                     .where(integration_objects.c.id == object_id,
                            (integration_objects.c.checkpoint.is_(None))
                            | (integration_objects.c.checkpoint < checkpoint))
                     .values(checkpoint=checkpoint))


def reconcile_unseen(conn: Connection, obj: ObjectRow, read_started: datetime,
                     now: datetime) -> int:
    """After a complete full read: mark deleted the interactions of ``obj`` whose records the
    read did not see (staged before it started). Providers that forget deleted records (a
    hard-deleted row, an expired deletion feed) are reconciled this way. Returns the count."""
    unseen = (select(staged_records.c.external_id)
              .where(staged_records.c.integration_object_id == obj.id,
                     staged_records.c.staged_at < read_started))
    result = conn.execute(
        update(interactions)
        .where(interactions.c.integration_id == obj.integration_id,
               interactions.c.interaction_type == obj.interaction_type,
               interactions.c.deleted_at.is_(None),
               interactions.c.external_id.in_(unseen.scalar_subquery()))
        .values(deleted_at=now, updated_at=now))
    return int(result.rowcount or 0)


def quarantine_records(conn: Connection, object_id: int,
                       items: Sequence[tuple[str | None, str, str | None]],
                       now: datetime) -> None:
    """Keep bad records with their reason: (external_id, reason, payload)."""
    if items:
        conn.execute(quarantine.insert(), [
            {"integration_object_id": object_id, "external_id": e, "reason": r, "payload": p,
             "created_at": now} for e, r, p in items])


def times_quarantined(conn: Connection, object_id: int, payload: str) -> int:
    return int(conn.execute(select(func.count()).select_from(quarantine).where(
        quarantine.c.integration_object_id == object_id,
        quarantine.c.payload == payload)).scalar_one())


# Built once: building it per call cost more than running it for the last, empty batch of a
# sync. The (object, seq) index serves it in order.
_PENDING_BATCH = (
    select(staged_records.c.seq, staged_records.c.external_id, staged_records.c.payload)
    .where(staged_records.c.integration_object_id == bindparam("object_id"),
           staged_records.c.seq > bindparam("after_seq"))
    .order_by(staged_records.c.seq).limit(bindparam("limit")))


def pending_batch(conn: Connection, object_id: int, after_seq: int,
                  limit: int) -> list[tuple[int, str, str]]:
    """The next ``limit`` staged rows numbered above ``after_seq``: (seq, external id,
    payload), in staging order."""
    rows = conn.execute(_PENDING_BATCH, {"object_id": object_id, "after_seq": after_seq,
                                         "limit": limit})
    return [(r.seq, r.external_id, r.payload) for r in rows]


def processed_through(conn: Connection, object_id: int) -> int:
    """The object's watermark: every staged row numbered up to it has been processed."""
    return int(conn.execute(select(integration_objects.c.processed_seq)
                            .where(integration_objects.c.id == object_id)).scalar_one())


def count_pending(conn: Connection, object_id: int) -> int:
    return int(conn.execute(select(func.count()).select_from(staged_records).where(
        staged_records.c.integration_object_id == object_id,
        staged_records.c.seq > select(integration_objects.c.processed_seq)
        .where(integration_objects.c.id == object_id).scalar_subquery())).scalar_one())


def pending_at_least(conn: Connection, object_id: int, after_seq: int, n: int) -> bool:
    """Whether ``n`` or more staged rows are numbered above ``after_seq`` (reads at most n)."""
    above = (select(staged_records.c.seq)
             .where(staged_records.c.integration_object_id == object_id,
                    staged_records.c.seq > after_seq).limit(n).subquery())
    return int(conn.execute(select(func.count()).select_from(above)).scalar_one()) >= n


def mark_processed(conn: Connection, object_id: int, through_seq: int) -> None:
    """Move the watermark: every staged row numbered up to ``through_seq`` is processed.
    One row written per batch, in the batch's transaction."""
    conn.execute(update(integration_objects)
                 .where(integration_objects.c.id == object_id,
                        integration_objects.c.processed_seq < through_seq)
                 .values(processed_seq=through_seq))


def commit_sync(conn: Connection, obj: ObjectRow, sync_id: int, now: datetime,
                counts: dict[str, int]) -> datetime | None:
    """Record success: the checkpoint becomes the cursor, Last Synced At moves, failures reset.

    Called only after every staged record was processed, so the cursor never passes data
    that was not stored.
    """
    current = conn.execute(select(integration_objects.c.checkpoint, integration_objects.c.cursor)
                           .where(integration_objects.c.id == obj.id)).one()
    cursor = current.checkpoint or current.cursor
    conn.execute(update(integration_objects).where(integration_objects.c.id == obj.id).values(
        cursor=cursor, full_checkpoint=None, last_synced_at=now, consecutive_failures=0,
        state="ok", last_error=None, next_due_at=now + timedelta(days=1 / obj.frequency_per_day)))
    conn.execute(update(sync_runs).where(sync_runs.c.id == sync_id).values(
        status="succeeded", finished_at=now, cursor_after=cursor, **counts))
    return cursor  # type: ignore[no-any-return]


def fail_sync(conn: Connection, obj: ObjectRow, sync_id: int | None, now: datetime, *,
              error: str, retry_after_seconds: float, counts: dict[str, int] | None = None) -> int:
    """Record a failure; the cursor stays where it was. Returns the consecutive failure count."""
    conn.execute(update(integration_objects).where(integration_objects.c.id == obj.id).values(
        consecutive_failures=integration_objects.c.consecutive_failures + 1, state="failing",
        last_error=error[:2000], next_due_at=now + timedelta(seconds=retry_after_seconds)))
    if sync_id is not None:
        conn.execute(update(sync_runs).where(sync_runs.c.id == sync_id).values(
            status="failed", finished_at=now, error=error[:2000], **(counts or {})))
    return int(conn.execute(select(integration_objects.c.consecutive_failures).where(
        integration_objects.c.id == obj.id)).scalar_one())


def syncs_of_run(conn: Connection, run_id: str, object_id: int) -> list[Any]:
    """The sync rows one run wrote for one Integration Object: (id, status) rows."""
    return list(conn.execute(select(sync_runs.c.id, sync_runs.c.status).where(
        sync_runs.c.run_id == run_id, sync_runs.c.integration_object_id == object_id)).all())


def record_retrieved(conn: Connection, sync_id: int, *, records_fetched: int,
                     pages: int) -> None:
    """What a retrieval read, on its sync row (the success path; failures record it too)."""
    conn.execute(update(sync_runs).where(sync_runs.c.id == sync_id).values(
        records_fetched=records_fetched, pages=pages))


def mark_due(conn: Connection, integration_id: str, types: Sequence[str],
             now: datetime) -> list[int]:
    """Make the enabled Integration Objects of ``types`` due at ``now`` (a provider said they
    changed); an object already due keeps its earlier time. Returns the objects' ids."""
    if not types:
        return []
    ids = [int(i) for i in conn.execute(
        select(integration_objects.c.id)
        .where(integration_objects.c.integration_id == integration_id,
               integration_objects.c.interaction_type.in_(sorted(set(types))),
               integration_objects.c.enabled.is_(True))).scalars()]
    if ids:
        conn.execute(update(integration_objects)
                     .where(integration_objects.c.id.in_(ids),
                            integration_objects.c.next_due_at.is_(None)
                            | (integration_objects.c.next_due_at > now))
                     .values(next_due_at=now))
    return ids


def objects_by_ids(conn: Connection, ids: Sequence[int]) -> list[ObjectRow]:
    """The Integration Objects with these ids (any order, unknown ids skipped)."""
    if not ids:
        return []
    query = _objects_query().where(among(conn, integration_objects.c.id, ids))
    return [ObjectRow(**r._mapping) for r in conn.execute(query)]
