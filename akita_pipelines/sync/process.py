"""The Processor: staged payloads → typed interactions → matched Accounts / Contacts → links.

Works in batches, one transaction each: a batch's interactions, entities, links and the
"processed" flags of its staged rows commit together, so a crash mid-way loses nothing and
re-processes nothing twice. Only when no staged row is pending does the sync succeed and the
cursor move.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, Engine

from akita_pipelines.alerts.outbox import deliver_pending
from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.errors import AkitaError
from akita_pipelines.core.types import TypedRecord
from akita_pipelines.db import entities, registry, state
from akita_pipelines.db.schema import account_links, contact_links
from akita_pipelines.processing.match import (
    AccountCandidate,
    ContactCandidate,
    match_accounts,
    match_contacts,
)
from akita_pipelines.processing.normalize import account_domain, normalize_email, normalize_phone
from akita_pipelines.providers.base import Stream
from akita_pipelines.providers.registry import get_provider
from akita_pipelines.sync.failures import record_failure, record_success

log = logging.getLogger(__name__)

BATCH_SIZE = 5000


@dataclass
class ProcessResult:
    integration_id: str
    interaction_type: str
    processed: int = 0
    quarantined: int = 0
    deleted: int = 0
    created: int = 0
    linked: int = 0
    rules: Counter[str] = field(default_factory=Counter)
    cursor_after: datetime | None = None
    seconds: float = 0.0

    @property
    def matched(self) -> int:
        """Records linked to an entity that existed already (not created, not re-linked)."""
        return sum(n for rule, n in self.rules.items() if rule not in ("new", "source_id"))


def _parse(stream: Stream, rows: list[tuple[int, str, str]]
           ) -> tuple[list[tuple[int, TypedRecord]], list[tuple[int, str, str, str]]]:
    good: list[tuple[int, TypedRecord]] = []
    bad: list[tuple[int, str, str, str]] = []
    for row_id, external_id, payload in rows:
        try:
            good.append((row_id, stream.to_typed(json.loads(payload))))
        except (ValueError, KeyError, TypeError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            bad.append((row_id, external_id, reason[:500], payload))
    return good, bad


def _domain_of(record: TypedRecord) -> str | None:
    if record.interaction_type == "accounts":
        return account_domain(record.website)
    return None


def process_batch(conn: Connection, *, customer_id: str, integration_id: str,
                  records: list[TypedRecord], now: datetime, result: ProcessResult) -> None:
    """Store one batch of typed records and match / link them, in the caller's transaction."""
    ids = entities.upsert_interactions(
        conn, customer_id=customer_id, integration_id=integration_id,
        records=[(r, _domain_of(r)) for r in records], now=now)
    live = [r for r in records if not r.deleted]
    result.deleted += len(records) - len(live)
    kind = records[0].interaction_type if records else ""
    if kind == "accounts":
        links = entities.existing_links(conn, account_links, "account_id", ids.values())
        cands = [AccountCandidate(ids[r.external_id], r.name, account_domain(r.website),
                                  normalize_phone(r.phone), links.get(ids[r.external_id]))
                 for r in live]
        known = entities.accounts_by_domain(conn, customer_id, (c.domain for c in cands
                                                                if c.domain))
        plan = match_accounts(cands, known)
        entities.apply_account_plan(conn, customer_id, plan, now)
    elif kind == "contacts":
        links = entities.existing_links(conn, contact_links, "contact_id", ids.values())
        by_ref = entities.account_of_refs(conn, integration_id, (r.account_ref for r in live
                                                                 if r.account_ref))
        emails = {r.external_id: normalize_email(r.email) for r in live}
        domains = {k: account_domain(None, e) for k, e in emails.items()}
        contact_cands = [ContactCandidate(
            ids[r.external_id], emails[r.external_id], r.name, r.first_name, r.last_name,
            normalize_phone(r.phone), by_ref.get(r.account_ref or ""),
            domains[r.external_id], links.get(ids[r.external_id])) for r in live]
        known_contacts = entities.contacts_by_email(conn, customer_id,
                                                    (e for e in emails.values() if e))
        known_accounts = entities.accounts_by_domain(conn, customer_id,
                                                     (d for d in domains.values() if d))
        plan = match_contacts(contact_cands, known_contacts, known_accounts)
        entities.apply_contact_plan(conn, customer_id, plan, now)
    else:
        accounts = entities.account_of_refs(conn, integration_id,
                                            (r.account_ref for r in live if r.account_ref))
        contacts = entities.contact_of_refs(conn, integration_id,
                                            (r.contact_ref for r in live if r.contact_ref))
        result.linked += entities.link_related(
            conn, customer_id,
            account_by_interaction={ids[r.external_id]: accounts[r.account_ref]
                                    for r in live if r.account_ref in accounts},
            contact_by_interaction={ids[r.external_id]: contacts[r.contact_ref]
                                    for r in live if r.contact_ref in contacts},
            now=now)
        return
    result.created += len(plan.new_entities)
    result.linked += len(plan.links)
    result.rules.update(link.rule for link in plan.links)


def process_staged(engine: Engine, integration_id: str, interaction_type: str, *,
                   sync_id: int | None = None, batch_size: int | None = None) -> ProcessResult:
    """Process every pending staged record of one Integration Object, then commit the sync."""
    started = time.perf_counter()
    batch_size = batch_size or BATCH_SIZE
    result = ProcessResult(integration_id, interaction_type)
    with engine.connect() as conn:
        obj = state.get_object(conn, integration_id, interaction_type)
        integration = registry.get_integration(conn, integration_id)
    assert obj is not None, f"{integration_id}/{interaction_type} vanished during the sync"
    stream = get_provider(integration.provider).streams_for(integration.config)[interaction_type]
    recovered = False
    try:
        after = 0
        while True:
            with engine.begin() as conn:
                rows = state.pending_batch(conn, obj.id, after, batch_size)
                if not rows:
                    break
                after = rows[-1][0]
                good, bad = _parse(stream, rows)
                now = utcnow()
                if good:
                    process_batch(conn, customer_id=integration.customer_id,
                                  integration_id=integration_id,
                                  records=[r for _, r in good], now=now, result=result)
                state.quarantine_records(conn, obj.id, [(e, r, p) for _, e, r, p in bad], now)
                state.mark_processed(conn, [row_id for row_id, _, _ in rows])
                result.processed += len(good)
                result.quarantined += len(bad)
        with engine.begin() as conn:
            if sync_id is not None:
                now = utcnow()
                result.cursor_after = state.commit_sync(conn, obj, sync_id, now, {
                    "created": result.created, "updated": result.rules["source_id"],
                    "matched": result.matched})
                recovered = record_success(conn, obj, now)
        if sync_id is not None and recovered:
            deliver_pending(engine)
    except (AkitaError, OSError, ValueError) as exc:
        record_failure(engine, obj, sync_id, exc)
        raise
    finally:
        result.seconds = time.perf_counter() - started
    log.info("processed %s/%s: %d records, %d entities created, %d links", integration_id,
             interaction_type, result.processed, result.created, result.linked)
    return result
