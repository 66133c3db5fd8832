"""The Retriever: ask the provider for what changed since the cursor and stage it page by page."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from akita_pipelines.config.settings import resolve_all
from akita_pipelines.core.clock import parse_datetime, utcnow
from akita_pipelines.core.errors import AkitaError, ConfigError, TransientError
from akita_pipelines.db import integrations, leases, state
from akita_pipelines.providers.base import ConnectionContext
from akita_pipelines.providers.http import HttpClient
from akita_pipelines.providers.registry import get_provider
from akita_pipelines.sync.failures import record_failure

log = logging.getLogger(__name__)


class ObjectBusy(TransientError):
    """Another run is syncing this Integration Object; nothing was started or recorded."""

    def __init__(self, integration_id: str, interaction_type: str, holders: list[str]) -> None:
        super().__init__(f"{integration_id}/{interaction_type} is being synced by run "
                         f"{', '.join(holders)}")
        self.holders = holders


@dataclass
class RetrieveResult:
    integration_id: str
    interaction_type: str
    sync_id: int
    since: datetime | None
    cursor_before: datetime | None
    checkpoint: datetime | None
    records_fetched: int = 0
    pages: int = 0
    quarantined: int = 0
    seconds: float = 0.0
    http: dict[str, float] = field(default_factory=dict)
    #: What the connector wants the data engineer to know (e.g. a fallback to a full re-read).
    notices: list[str] = field(default_factory=list)
    #: Records a complete full read no longer found at the provider, marked deleted.
    reconciled_deleted: int = 0


@dataclass(frozen=True)
class Retrieved:
    """What a retrieval hands to processing and to the materialisation's metadata."""

    sync_id: int
    #: A re-read from the history start rather than the changes since the cursor.
    full: bool
    trigger: str
    #: The object's health before this sync (``akita status``'s word).
    status_before: str
    records_fetched: int
    pages: int
    quarantined: int
    reconciled_deleted: int
    #: Where the read started (cursor − lookback, or the history start; None: all history).
    since: datetime | None
    cursor_before: datetime | None
    seconds: float
    notices: tuple[str, ...]
    api_calls: int
    retries: int
    rate_limit_waits: int
    waited_seconds: float

    @property
    def records_staged(self) -> int:
        return self.records_fetched - self.quarantined

    @classmethod
    def of(cls, result: RetrieveResult, *, full: bool, trigger: str,
           status_before: str) -> Retrieved:
        http = result.http
        return cls(sync_id=result.sync_id, full=full, trigger=trigger,
                   status_before=status_before, records_fetched=result.records_fetched,
                   pages=result.pages, quarantined=result.quarantined,
                   reconciled_deleted=result.reconciled_deleted, since=result.since,
                   cursor_before=result.cursor_before, seconds=result.seconds,
                   notices=tuple(result.notices), api_calls=int(http.get("api_calls", 0)),
                   retries=int(http.get("retries", 0)),
                   rate_limit_waits=int(http.get("rate_limit_waits", 0)),
                   waited_seconds=http.get("waited_seconds", 0.0))


def _since(obj: state.ObjectRow, *, full: bool, lookback: int,
           history_start: str | None) -> datetime | None:
    start = parse_day(history_start) if history_start else None
    if full:
        # A full re-read (or history backfill) resumes where an interrupted one got to. It
        # never moves the incremental cursor backwards: staging keeps the checkpoint monotonic.
        if obj.full_checkpoint is not None:
            return obj.full_checkpoint - timedelta(seconds=lookback)
        return start
    # Resume from the checkpoint of an interrupted sync, else from the committed cursor.
    mark = obj.checkpoint or obj.cursor
    if mark is None:
        return start
    return mark - timedelta(seconds=lookback)


def parse_day(value: str) -> datetime:
    """A history start such as ``2024-01-31``; a clear error for anything else."""
    try:
        return parse_datetime(value if "T" in value else value + "T00:00:00Z")
    except ValueError:
        raise ConfigError(f"history start {value!r} must be a date like 2024-01-31") from None


def retrieve_changes(engine: Engine, integration_id: str, interaction_type: str, *,
                     trigger: str = "cli", run_id: str | None = None, full: bool = False,
                     since: str | None = None, http: HttpClient | None = None,
                     alive: Callable[[str], bool] | None = None,
                     on_begin: Callable[[int], None] | None = None,
                     on_page: Callable[[], None] | None = None) -> RetrieveResult:
    """Fetch changed records of one Integration Object and stage them with their checkpoint.

    A run (``run_id``) first takes the object's lease: while another run's sync of it is in
    progress (and ``alive`` says that run is still queued or running), it raises
    :class:`ObjectBusy` having started nothing.

    Each page is staged together with its checkpoint in one transaction: a sync killed at any
    point resumes from the last staged page. The committed cursor does not move here; the
    processor moves it once everything staged has been processed. ``on_begin`` is called with the
    sync's id once the object's lease is held and the sync recorded, ``on_page`` after each page
    is committed (for a processor working beside it: :mod:`akita_pipelines.sync.service`).
    """
    started = time.perf_counter()
    now = utcnow()
    with engine.begin() as conn:
        obj = state.get_object(conn, integration_id, interaction_type)
        if obj is None:
            raise ConfigError(f"{integration_id} has no interaction type {interaction_type!r}")
        integration = integrations.get_integration(conn, integration_id)
        customer = integrations.get_customer(conn, integration.customer_id)
        if run_id is not None:
            busy = [r for r in leases.holders(conn, obj.id, run_id, now)
                    if alive is None or alive(r)]
            if busy:
                raise ObjectBusy(integration_id, interaction_type, busy)
            # Read again under the lock: a run that held it may just have moved the cursor;
            # and the sync starts now, not when it began waiting for the lock.
            obj = state.get_object(conn, integration_id, interaction_type) or obj
            now = utcnow()
        sync_id = state.begin_sync(conn, obj, trigger=trigger, run_id=run_id, now=now)
    if on_begin is not None:
        on_begin(sync_id)
    spec = get_provider(integration.provider)
    stream = spec.streams_for(integration.config)[interaction_type]
    settings = resolve_all(integrations.effective_layers(spec, customer, integration,
                                                     interaction_type))
    if since is not None:
        full = True  # an explicit start date is a history read from that date
    since_at = _since(obj, full=full, lookback=int(settings["lookback_seconds"].value),
                      history_start=since or settings["history_start"].value)
    result = RetrieveResult(integration_id, interaction_type, sync_id, since_at, obj.cursor,
                            obj.checkpoint)
    client = http or HttpClient()
    ctx = ConnectionContext(
        integration_id=integration_id, config=integration.config,
        credentials=integrations.DatabaseCredentialStore(engine, integration_id), http=client,
        page_size=int(settings["page_size"].value),
        history=full or (obj.checkpoint or obj.cursor) is None, resume=obj.resume_state)
    # Whether the object holds a resume state that the next staged page must replace.
    resume_stored = obj.resume_state is not None
    held_back: datetime | None = None
    connector: object = None
    try:
        connector = spec.connect(ctx)
        for page in connector.read_changes(stream, since_at):
            staged: list[state.StagedRecord] = []
            bad: list[tuple[str | None, str, str | None]] = []
            for record in page.records:
                staged_record, reason = _stage_record(record, stream.primary_key,
                                                      stream.cursor_field)
                if staged_record is None:
                    payload = state.canonical_json(record)
                    bad.append((None, reason or "unreadable record", payload))
                    held_back = _hold_back(engine, obj.id, record, stream.cursor_field, payload,
                                           held_back)
                else:
                    staged.append(staged_record)
            checkpoint = page.checkpoint
            if held_back is not None and checkpoint is not None:
                checkpoint = min(checkpoint, held_back)
            with engine.begin() as conn:
                state.stage_page(conn, obj.id, staged, checkpoint, utcnow(), full=full,
                                 resume=page.resume,
                                 set_resume=resume_stored or page.resume is not None)
                state.quarantine_records(conn, obj.id, bad, utcnow())
            resume_stored = page.resume is not None
            if on_page is not None:
                on_page()
            result.pages += 1
            result.records_fetched += len(page.records)
            result.quarantined += len(bad)
            if checkpoint is not None:
                result.checkpoint = max(filter(None, (result.checkpoint, checkpoint)))
        with engine.begin() as conn:
            state.record_retrieved(conn, sync_id, records_fetched=result.records_fetched,
                                   pages=result.pages)
        if (full and since_at is None and result.quarantined == 0
                and spec.full_read_is_complete and obj.resume_state is None):
            # A complete read of everything: what it did not see is gone at the provider.
            # (Not after a resumed or windowed read, nor when a bad record went unstaged.)
            with engine.begin() as conn:
                result.reconciled_deleted = state.reconcile_unseen(conn, obj, now, utcnow())
    except (AkitaError, OSError, ValueError) as exc:
        record_failure(engine, obj, sync_id, exc, counts={
            "records_fetched": result.records_fetched, "pages": result.pages})
        raise
    finally:
        result.notices = [str(n) for n in getattr(connector, "notices", ())]
        for notice in result.notices:
            log.info("%s/%s notice: %s", integration_id, interaction_type, notice)
        result.http = client.stats.as_dict()
        result.seconds = time.perf_counter() - started
    log.info("retrieved %s/%s: %d records in %d pages", integration_id, interaction_type,
             result.records_fetched, result.pages)
    return result


#: A bad record holds the checkpoint back (so the next sync asks for it again) until it has
#: been quarantined this many times: a permanently broken record must not pin the cursor.
HOLD_BACK_ATTEMPTS = 3


def _hold_back(engine: Engine, object_id: int, record: Any, cursor_field: str, payload: str,
               held_back: datetime | None) -> datetime | None:
    stamp = record.get(cursor_field) if isinstance(record, dict) else None
    if not isinstance(stamp, str):
        return held_back
    try:
        at = parse_datetime(stamp) - timedelta(milliseconds=1)
    except ValueError:
        return held_back
    with engine.connect() as conn:
        if state.times_quarantined(conn, object_id, payload) >= HOLD_BACK_ATTEMPTS - 1:
            return held_back
    return at if held_back is None else min(held_back, at)


def _stage_record(record: Any, primary_key: str,
                  cursor_field: str) -> tuple[state.StagedRecord | None, str | None]:
    if not isinstance(record, dict):
        return None, "record is not a JSON object"
    external_id = record.get(primary_key)
    if not isinstance(external_id, str | int) or external_id == "":
        return None, f"missing primary key {primary_key!r}"
    updated_at = None
    stamp = record.get(cursor_field)
    if isinstance(stamp, str):
        try:
            updated_at = parse_datetime(stamp)
        except ValueError:
            return None, f"unreadable {cursor_field} {stamp!r}"
    return state.StagedRecord(str(external_id), updated_at, state.canonical_json(record)), None
