"""The Processor: staged payloads → typed interactions → matched Accounts / Contacts → links.

Works in batches, one transaction each: a batch's interactions, entities, links and the
object's processed watermark (the staging number of its last row) commit together, so a crash
mid-way loses nothing and re-processes nothing twice. Only when no staged row is left above the
watermark does the sync succeed and the cursor move.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial

from sqlalchemy import Connection, Engine

from akita_pipelines.alerts.outbox import deliver_pending
from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.errors import AkitaError
from akita_pipelines.core.types import MATCHED_TYPES, TypedRecord
from akita_pipelines.db import decisions, entities, integrations, state
from akita_pipelines.db.stats import MIN_CHANGED, analyze_stale, checkpoint_wal
from akita_pipelines.processing.features import (
    account_ids,
    account_record,
    address_of,
    contact_record,
    cross_ids,
    own_id,
)
from akita_pipelines.processing.keys import strong
from akita_pipelines.processing.normalize import account_domain, email_domain, normalize_email
from akita_pipelines.processing.resolve import (
    DEFAULT_THRESHOLDS,
    Existing,
    Kind,
    Plan,
    Record,
    block_keys,
    resolve,
    score_pair,
    settle,
)
from akita_pipelines.providers.base import Stream
from akita_pipelines.providers.registry import get_provider
from akita_pipelines.sync.failures import record_failure, record_success
from akita_pipelines.util.gcpause import gc_paused, without_gc
from akita_pipelines.util.memory import release_free_memory

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
    merged: int = 0
    reviews: int = 0
    rules: Counter[str] = field(default_factory=Counter)
    cursor_after: datetime | None = None
    seconds: float = 0.0

    @property
    def matched(self) -> int:
        """Records linked to an entity that existed already (not created, not re-linked)."""
        return sum(n for rule, n in self.rules.items()
                   if rule not in ("new", "source_id", "reference", "contact_account"))


def _parse(stream: Stream, rows: list[tuple[int, str, str]]
           ) -> tuple[list[tuple[int, TypedRecord]], list[tuple[int, str, str, str]]]:
    good: list[tuple[int, TypedRecord]] = []
    bad: list[tuple[int, str, str, str]] = []
    for row_id, external_id, payload in rows:
        try:
            good.append((row_id, stream.to_typed(state.parse_payload(payload))))
        except (ValueError, KeyError, TypeError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            bad.append((row_id, external_id, reason[:500], payload))
    return good, bad


def _domain_of(record: TypedRecord) -> str | None:
    if record.interaction_type == "accounts":
        return account_domain(record.website, record.email)
    return None


def source_ranker(conn: Connection, customer_id: str) -> Callable[[str], int]:
    """Survivorship: the customer's ``source_priority`` (providers, best first); others after."""
    settings = integrations.customer_settings(conn, customer_id)
    order = list(settings.get("source_priority") or [])
    ranks = {source: i for i, source in enumerate(order)}
    return lambda source: ranks.get(source, len(order))


def _account_records(live: list[TypedRecord], ids: Mapping[str, int], provider: str,
                     links: Mapping[int, int]) -> list[Record]:
    return [account_record(
        ids[r.external_id], name=r.name, website=r.website, phone=r.phone, email=r.email,
        address=address_of(r.fields), ids=(own_id(provider, r.external_id),
                                           *cross_ids("accounts", r.fields)),
        linked=links.get(ids[r.external_id]), source=provider, updated_at=r.updated_at)
        for r in live]


def _records(conn: Connection, kind: Kind, customer_id: str, integration_id: str,
             live: list[TypedRecord], ids: Mapping[str, int], links: Mapping[int, int]
             ) -> list[Record]:
    """One integration's typed records as the matcher's records."""
    provider = integration_id.split(".", 1)[0]
    if kind == "accounts":
        return _account_records(live, ids, provider, links)
    accounts = _contact_accounts(conn, customer_id, integration_id, live)
    return [contact_record(
        ids[r.external_id], email=r.email, first_name=r.first_name,
        last_name=r.last_name, name=r.name, phone=r.phone, address=address_of(r.fields),
        ids=(own_id(provider, r.external_id), *cross_ids("contacts", r.fields)),
        linked=links.get(ids[r.external_id]),
        account=accounts[r.external_id][0] if r.external_id in accounts else None,
        source=provider, updated_at=r.updated_at) for r in live]


def _resolve_neighbourhood(conn: Connection, kind: Kind, customer_id: str,
                           recs: list[Record], existing: Existing,
                           rank: Callable[[str], int]) -> Plan:
    """Resolve a batch together with every record of the entities it could join, none of them
    fixed in advance, and carry the result back onto those entities (:func:`settle`): the
    partition a single pass over all of them gives, whatever order they arrived in."""
    th = DEFAULT_THRESHOLDS[kind]
    plausible: dict[int, set[int]] = {}
    for r in recs:
        # The entities this record could join: the ones its ids and key name, and those of
        # its blocks it scores at least the review threshold with.
        held = {r.linked} if r.linked is not None else set()
        held.update(e for k in r.ids if (e := existing.by_id.get(k)) is not None)
        held.update(existing.by_key.get(r.key, ()) if r.key else ())
        # Blocks overlap (a surname's letters-and-initial block and its phone's may hold the
        # same person): each entity is scored once.
        scored: set[int] = set()
        for k in block_keys(kind, r):
            for e in existing.by_block.get(k, ()):
                if e in held or e in scored or e not in existing.profiles:
                    continue
                scored.add(e)
                if score_pair(kind, r, existing.profiles[e]).total >= th.review:
                    held.add(e)
        plausible[r.rid] = {e for e in held if e in existing.profiles}
    # A record alone with the one entity its key or ids name (no other record of the batch
    # shares that entity, its key or its ids) is decided the same way in any company: the
    # plain path, without the entity's records.
    claims: dict[tuple[str, object], int] = defaultdict(int)

    def keys_of(r: Record) -> tuple[str, ...]:
        return (r.key, *r.ids) if r.key else r.ids

    for r in recs:
        for e in plausible[r.rid]:
            claims[("e", e)] += 1
        for k in keys_of(r):
            claims[("k", k)] += 1
    alone = [r for r in recs if len(plausible[r.rid]) == 1
             and all(claims[("e", e)] == 1 for e in plausible[r.rid])
             and all(claims[("k", k)] == 1 for k in keys_of(r))]
    plain = resolve(kind, alone, existing, source_rank=rank) if alone else Plan()
    done = {r.rid for r in alone}
    rest = [r for r in recs if r.rid not in done]
    if not rest:
        return plain
    batch = {r.rid for r in rest}
    wanted = {e for r in rest for e in plausible[r.rid]}
    if not wanted and all(r.linked is None for r in rest):
        # No stored entity any of them could join (a backfill's new records): the batch alone
        # is the neighbourhood and there is nothing to carry back (settle would copy the plan).
        fresh = resolve(kind, rest, None, source_rank=rank)
        return plain.combine(fresh) if alone else fresh
    found = entities.member_interactions(conn, kind, wanted, exclude=batch)
    old_of = {r.rid: r.linked for r in rest if r.linked is not None}
    by_integration: dict[str, list[tuple[int, int, TypedRecord]]] = defaultdict(list)
    for entity_id, integration_id, interaction_id, typed in found:
        by_integration[integration_id].append((entity_id, interaction_id, typed))
        old_of[interaction_id] = entity_id
    pool = [replace(r, linked=None) for r in rest]
    for integration_id, rows in sorted(by_integration.items()):
        member_ids = {typed.external_id: interaction_id for _, interaction_id, typed in rows}
        pool += _records(conn, kind, customer_id, integration_id, [t for _, _, t in rows],
                         member_ids, {})
    fresh = resolve(kind, pool, None, source_rank=rank)
    settled = settle(fresh, old_of, batch, existing.profiles)
    return plain.combine(settled) if alone else settled


def _contact_accounts(conn: Connection, customer_id: str, integration_id: str,
                      live: list[TypedRecord]) -> dict[str, tuple[int, str]]:
    """Each record's account (external id → (account id, rule)): the provider's own reference,
    a cross-system account id in its fields, else its unique work-email domain."""
    by_ref = entities.account_of_refs(conn, integration_id, (r.account_ref for r in live
                                                             if r.account_ref))
    refs = {r.external_id: account_ids(r.fields) for r in live}
    domains = {r.external_id: email_domain(normalize_email(r.email)) for r in live
               if r.email}
    keys = {k for ks in refs.values() for k in ks} | {strong(d) for d in domains.values() if d}
    targets = entities.related_targets(conn, customer_id, "accounts", keys)
    found: dict[str, tuple[int, str]] = {}
    for r in live:
        if r.account_ref and r.account_ref in by_ref:
            found[r.external_id] = (by_ref[r.account_ref], "reference")
            continue
        hit = next((targets[k] for k in refs[r.external_id] if k in targets), None)
        if hit is not None:
            found[r.external_id] = (hit, "id")
            continue
        domain = domains.get(r.external_id)
        if domain and strong(domain) in targets:
            found[r.external_id] = (targets[strong(domain)], "domain")
    return found


@without_gc
def process_batch(conn: Connection, *, customer_id: str, integration_id: str,
                  records: list[TypedRecord], now: datetime, result: ProcessResult) -> None:
    """Store one batch of typed records and match / link them, in the caller's transaction."""
    ids = entities.upsert_interactions(
        conn, customer_id=customer_id, integration_id=integration_id,
        records=[(r, _domain_of(r)) for r in records], now=now)
    live = [r for r in records if not r.deleted]
    result.deleted += len(records) - len(live)
    interaction_type = records[0].interaction_type if records else ""
    if interaction_type in MATCHED_TYPES:
        kind: Kind = "accounts" if interaction_type == "accounts" else "contacts"
        rank = source_ranker(conn, customer_id)
        table, link_table, column = entities.TABLES[kind]
        links = entities.existing_links(conn, link_table, column, ids.values())
        recs = _records(conn, kind, customer_id, integration_id, live, ids, links)
        existing = entities.gather_existing(conn, customer_id, kind, recs, rank,
                                            partial(block_keys, kind), every_block=True)
        decisions.constrain(conn, customer_id, kind, existing, [r.rid for r in recs], rank)
        if existing.profiles and not (existing.constrained() or existing.entities_apart):
            plan = _resolve_neighbourhood(conn, kind, customer_id, recs, existing, rank)
        else:
            plan = resolve(kind, recs, existing, source_rank=rank)
        if plan.reviews and (existing.constrained() or existing.entities_apart):
            linked = {r.rid: r.linked for r in recs}
            plan.reviews = [v for v in plan.reviews if not decisions.decided(
                existing, v.interaction_id, v.candidate, linked.get(v.interaction_id))]
        entities.apply_plan(conn, customer_id, kind, plan, existing, now)
        for merge in plan.merges:  # every automatic merge goes in the entities' history
            bridges = list(merge.evidence.get("bridged_by") or [])
            for absorbed in merge.absorbed:
                decisions.add_history(
                    conn, customer_id=customer_id, kind=kind, action="auto_merge",
                    actor="matcher", now=now, entity_id=merge.survivor,
                    other_entity_id=absorbed, interaction_id=bridges[0] if bridges else None,
                    other_interaction_id=bridges[1] if len(bridges) > 1 else None,
                    reason=f"{kind} {absorbed} merged into {merge.survivor}: records "
                           f"{', '.join(map(str, bridges)) or '?'} matched both",
                    details=dict(merge.evidence))
        result.created += len(plan.new_entities)
        result.linked += len(plan.links)
        result.merged += sum(len(m.absorbed) for m in plan.merges)
        result.reviews += len(plan.reviews)
        result.rules.update(link.rule for link in plan.links)
        return
    account_of = _contact_accounts(conn, customer_id, integration_id, live)
    by_contact_ref = entities.contact_of_refs(conn, integration_id, (r.contact_ref for r in live
                                                                    if r.contact_ref))
    emails = {r.external_id: normalize_email(r.email or r.requester_email) for r in live}
    by_email = entities.related_targets(conn, customer_id, "contacts",
                                        (strong(e) for e in emails.values() if e))
    contact_of: dict[int, tuple[int, str]] = {}
    for r in live:
        email = emails[r.external_id]
        if r.contact_ref and r.contact_ref in by_contact_ref:
            contact_of[ids[r.external_id]] = (by_contact_ref[r.contact_ref], "reference")
        elif email and strong(email) in by_email:
            contact_of[ids[r.external_id]] = (by_email[strong(email)], "email")
    account_by_interaction = {ids[e]: v for e, v in account_of.items()}
    missing = [c for i, (c, _) in contact_of.items() if i not in account_by_interaction]
    if missing:
        owners = entities.accounts_of_contacts(conn, missing)
        for i, (c, _) in contact_of.items():
            if i not in account_by_interaction and c in owners:
                account_by_interaction[i] = (owners[c], "contact_account")
    result.linked += entities.link_related(
        conn, customer_id, account_by_interaction=account_by_interaction,
        contact_by_interaction=contact_of, now=now)


class StagingFeed:
    """A retrieval staging pages while the processor works (:mod:`akita_pipelines.sync.service`).

    The processor takes a batch once a full one is staged (or the retrieval has ended), so it
    types, matches and writes batch k while page k+1 is fetched and staged. It starts only once
    the retrieval holds the object's lease, and commits the sync only after the retrieval ended
    well: the cursor still never passes what was not stored.
    """

    def __init__(self) -> None:
        self.sync_id: int | None = None
        self._begun = threading.Event()
        self._staged = threading.Event()
        self._ended = threading.Event()
        self._error: BaseException | None = None

    # The retrieval's side.
    def begun(self, sync_id: int) -> None:
        self.sync_id = sync_id
        self._begun.set()

    def page_staged(self) -> None:
        self._staged.set()

    def ended(self, error: BaseException | None) -> None:
        self._error = error
        self._ended.set()
        self._begun.set()
        self._staged.set()

    # The processor's side.
    @property
    def error(self) -> BaseException | None:
        return self._error if self._ended.is_set() else None

    def wait_begun(self) -> None:
        """Block until the retrieval holds the lease (or failed before it did: raise that)."""
        self._begun.wait()
        if self.sync_id is None and self._error is not None:
            raise self._error

    def wait_batch(self, engine: Engine, object_id: int, after: int, size: int) -> None:
        """Block until ``size`` rows are staged above ``after`` or the retrieval has ended."""
        while not self._ended.is_set():
            self._staged.clear()
            with engine.connect() as conn:
                if state.pending_at_least(conn, object_id, after, size):
                    return
            self._staged.wait(1.0)

    def wait_ended(self) -> BaseException | None:
        self._ended.wait()
        return self._error


def process_staged(engine: Engine, integration_id: str, interaction_type: str, *,
                   sync_id: int | None = None, batch_size: int | None = None,
                   feed: StagingFeed | None = None) -> ProcessResult:
    """Process every pending staged record of one Integration Object, then commit the sync.

    With a ``feed``, the retrieval is still staging pages: batches are taken as they fill, and
    the sync (the feed's) is committed once the retrieval has ended well and every staged row
    is processed; a failed retrieval's error is raised (it recorded it).
    """
    started = time.perf_counter()
    batch_size = batch_size or BATCH_SIZE
    result = ProcessResult(integration_id, interaction_type)
    if feed is not None:
        feed.wait_begun()
        sync_id = feed.sync_id
    with engine.connect() as conn:
        obj = state.get_object(conn, integration_id, interaction_type)
        integration = integrations.get_integration(conn, integration_id)
    assert obj is not None, f"{integration_id}/{interaction_type} vanished during the sync"
    stream = get_provider(integration.provider).streams_for(integration.config)[interaction_type]
    recovered = False
    retrieval_error: BaseException | None = None
    if feed is None:
        analyze_stale(engine, ("staged_records",))  # a first sync has just staged everything
    try:
        with engine.connect() as conn:
            after = state.processed_through(conn, obj.id)
        while True:
            if feed is not None:
                feed.wait_batch(engine, obj.id, after, batch_size)
                retrieval_error = feed.error
                if retrieval_error is not None:
                    raise retrieval_error  # staged pages wait for the next sync
            with gc_paused(), engine.begin() as conn:
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
                state.mark_processed(conn, obj.id, after)
                result.processed += len(good)
                result.quarantined += len(bad)
            if len(rows) >= MIN_CHANGED:
                analyze_stale(engine)  # the next batch's look-ups need current statistics
                release_free_memory()
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
        if exc is not retrieval_error:
            # Beside a retrieval, its own failure (recorded by it) outranks the processor's.
            if feed is None or feed.wait_ended() is None:
                record_failure(engine, obj, sync_id, exc)
        raise
    finally:
        result.seconds = time.perf_counter() - started
    if result.processed >= MIN_CHANGED:
        checkpoint_wal(engine)  # after the commit, outside the failure path
    log.info("processed %s/%s: %d records, %d entities created, %d links", integration_id,
             interaction_type, result.processed, result.created, result.linked)
    return result
