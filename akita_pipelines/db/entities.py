"""Interactions, matched entities and links: batched reads and writes for the processor."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from functools import cache
from operator import attrgetter
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    bindparam,
    delete,
    func,
    select,
    text,
    update,
)

from akita_pipelines.core.types import TypedRecord
from akita_pipelines.db import bulk
from akita_pipelines.db.dialect import among, text_array
from akita_pipelines.db.schema import (
    account_links,
    accounts,
    contact_links,
    contacts,
    entity_merges,
    interactions,
    match_keys,
    match_reviews,
)
from akita_pipelines.processing.features import account_profile, contact_profile
from akita_pipelines.processing.keys import is_block, record_of, strong, strong_value
from akita_pipelines.processing.resolve import (
    MAX_BLOCK,
    EntityRef,
    Existing,
    Kind,
    Link,
    NewEntity,
    Plan,
    Profile,
    names_conflict,
)

INTERACTION_UPDATE = ["name", "email", "website", "domain", "phone", "first_name", "last_name",
                       "account_ref", "contact_ref", "requester_email", "fields",
                       "source_updated_at", "deleted_at", "updated_at"]


def upsert_interactions(conn: Connection, *, customer_id: str, integration_id: str,
                        records: Sequence[tuple[TypedRecord, str | None]],
                        now: datetime) -> dict[str, int]:
    """Store typed records (with their normalised domain); return external id → interaction id."""
    if not records:
        return {}
    keys = ["integration_id", "interaction_type", "external_id"]
    set_sql = bulk.excluded(INTERACTION_UPDATE)
    if conn.dialect.name == "postgresql":
        columns = _interaction_columns(customer_id, integration_id, records, now)
        result = bulk.upsert(conn, interactions, columns, keys=keys, set_sql=set_sql,
                             returning=["id", "external_id"])
        return {external_id: row_id for row_id, external_id in result}
    # SQLite's driver path returns nothing: the ids are read back. One statement may not
    # touch a row twice: the last copy of a repeated id wins.
    records = list({(r.interaction_type, r.external_id): (r, d) for r, d in records}.values())
    columns = _interaction_columns(customer_id, integration_id, records, now)
    bulk.upsert(conn, interactions, columns, keys=keys, set_sql=set_sql)
    found: dict[str, int] = {}
    for kind in sorted({r.interaction_type for r, _ in records}):
        found.update(interaction_ids(conn, integration_id, kind,
                                     (r.external_id for r, _ in records
                                      if r.interaction_type == kind)))
    return found


def _interaction_columns(customer_id: str, integration_id: str,
                         records: Sequence[tuple[TypedRecord, str | None]],
                         now: datetime) -> dict[str, list[Any]]:
    """The interaction rows of ``records``, column by column (what the bulk writers take)."""
    typed = [r for r, _ in records]
    n = len(typed)

    def attribute(name: str) -> list[Any]:
        return list(map(attrgetter(name), typed))

    return {
        "customer_id": [customer_id] * n, "integration_id": [integration_id] * n,
        "interaction_type": attribute("interaction_type"),
        "external_id": attribute("external_id"), "name": attribute("name"),
        "email": attribute("email"), "website": attribute("website"),
        "domain": [domain for _, domain in records], "phone": attribute("phone"),
        "first_name": attribute("first_name"), "last_name": attribute("last_name"),
        "account_ref": attribute("account_ref"), "contact_ref": attribute("contact_ref"),
        "requester_email": attribute("requester_email"),
        "fields": [dict(r.fields) for r in typed],
        "source_updated_at": attribute("updated_at"),
        "deleted_at": [(r.updated_at or now) if r.deleted else None for r in typed],
        "updated_at": [now] * n,
    }


def interaction_ids(conn: Connection, integration_id: str, interaction_type: str,
                    external_ids: Iterable[str]) -> dict[str, int]:
    ids = sorted(set(external_ids))
    found: dict[str, int] = {}
    for chunk in _chunks(ids):
        # fetchall in one call: iterating a result fetches (and wraps) one row at a time.
        rows = conn.execute(select(interactions.c.external_id, interactions.c.id).where(
            interactions.c.integration_id == integration_id,
            interactions.c.interaction_type == interaction_type,
            interactions.c.external_id.in_(chunk)))
        found.update(rows.all())
    return found


def existing_links(conn: Connection, table: Table, entity_column: str,
                   interaction_ids_: Iterable[int]) -> dict[int, int]:
    ids = sorted(set(interaction_ids_))
    if not ids:
        return {}
    rows = conn.execute(select(table.c.interaction_id, table.c[entity_column])
                        .where(among(conn, table.c.interaction_id, ids)))
    return dict(rows.all())


def member_interactions(conn: Connection, kind: Kind, entity_ids: Iterable[int],
                        exclude: Iterable[int]) -> list[tuple[int, str, int, TypedRecord]]:
    """The live account (contact) records linked to ``entity_ids``, but ``exclude``: (entity
    id, integration id, interaction id, typed record), in interaction order. Deals, tickets and
    the rest linked to them are not members."""
    _table, links, column = TABLES[kind]
    ids = sorted(set(entity_ids))
    if not ids:
        return []
    skip = set(exclude)
    i = interactions.c
    rows = conn.execute(
        select(links.c[column], i.integration_id, i.id, i.interaction_type, i.external_id,
               i.source_updated_at, i.name, i.email, i.website, i.phone, i.first_name,
               i.last_name, i.account_ref, i.contact_ref, i.fields)
        .join(interactions, i.id == links.c.interaction_id)
        .where(among(conn, links.c[column], ids), i.interaction_type == kind,
               i.deleted_at.is_(None))
        .order_by(i.id)).all()
    return [(r[0], r[1], r[2], TypedRecord(
        interaction_type=r[3], external_id=r[4], updated_at=r[5], name=r[6], email=r[7],
        website=r[8], phone=r[9], first_name=r[10], last_name=r[11], account_ref=r[12],
        contact_ref=r[13], fields=r[14] or {})) for r in rows if r[2] not in skip]


def accounts_of_contacts(conn: Connection, contact_ids: Iterable[int]) -> dict[int, int]:
    """Contact id → its account, for the contacts that have one."""
    return dict(conn.execute(select(contacts.c.id, contacts.c.account_id).where(
        contacts.c.id.in_(sorted(set(contact_ids))), contacts.c.account_id.is_not(None))).all())


def account_of_refs(conn: Connection, integration_id: str,
                    account_refs: Iterable[str]) -> dict[str, int]:
    """Source account id (in the same integration) → the matched account it is linked to."""
    return _entity_of_refs(conn, "accounts", integration_id, account_refs)


def contact_of_refs(conn: Connection, integration_id: str,
                    contact_refs: Iterable[str]) -> dict[str, int]:
    """Source contact id (in the same integration) → the matched contact it is linked to."""
    return _entity_of_refs(conn, "contacts", integration_id, contact_refs)


def _entity_of_refs(conn: Connection, kind: Kind, integration_id: str,
                    source_refs: Iterable[str]) -> dict[str, int]:
    refs = sorted({r for r in source_refs if r})
    if not refs:
        return {}
    _table, links, column = TABLES[kind]
    rows = conn.execute(
        select(interactions.c.external_id, links.c[column])
        .join(links, links.c.interaction_id == interactions.c.id)
        .where(interactions.c.integration_id == integration_id,
               interactions.c.interaction_type == kind,
               among(conn, interactions.c.external_id, refs)))
    return dict(rows.all())


#: Values per IN list: well under SQLite's and PostgreSQL's bound-parameter limits.
CHUNK = 5000

TABLES: Mapping[str, tuple[Table, Table, str]] = {
    "accounts": (accounts, account_links, "account_id"),
    "contacts": (contacts, contact_links, "contact_id"),
}


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(values), CHUNK):
        yield values[i:i + CHUNK]


def lookup_keys(conn: Connection, customer_id: str, kind: str, keys: Iterable[str], *,
                cap: int | None = None) -> dict[str, list[int]]:
    """Match keys (ids, tier-2 keys, block keys) → the customer's entities indexed under them.

    With ``cap``, at most that many entities per key (the lowest ids): a block key of a common
    name gathers entities as history grows, and the caller only needs to know that it holds
    more than it compares. The database stops reading each key there, so a batch's look-up
    costs the same at a million entities as at ten thousand.
    """
    wanted = sorted(set(keys))
    found: dict[str, list[int]] = {}
    if not wanted:
        return found
    if cap is None:
        rows = conn.execute(select(match_keys.c.key, match_keys.c.entity_id).where(
            match_keys.c.customer_id == customer_id, match_keys.c.kind == kind,
            among(conn, match_keys.c.key, wanted))).all()
    else:
        postgresql = conn.dialect.name == "postgresql"
        rows = conn.execute(_CAPPED_LOOKUP[conn.dialect.name], {
            "customer_id": customer_id, "kind": kind, "cap": cap,
            "keys": text_array(wanted) if postgresql else json.dumps(wanted)}).all()
    for key, entity_id in rows:
        found.setdefault(key, []).append(entity_id)
    for ids in found.values():
        ids.sort()
    return found


# Each wanted key's first ``:cap`` entities. PostgreSQL: an index seek per key that stops at
# the cap (LATERAL … LIMIT). SQLite: the keys' index entries numbered per key inside the
# engine, only the first ``:cap`` of each returned. Built once, as the other fixed statements.
_CAPPED_LOOKUP = {
    "postgresql": text(
        "SELECT k.key, m.entity_id FROM unnest(CAST(:keys AS text[])) AS k(key) "
        "CROSS JOIN LATERAL (SELECT entity_id FROM match_keys "
        "WHERE customer_id = :customer_id AND kind = :kind AND key = k.key "
        "ORDER BY entity_id LIMIT :cap) AS m"),
    "sqlite": text(
        "SELECT key, entity_id FROM (SELECT key, entity_id, row_number() OVER "
        "(PARTITION BY key ORDER BY entity_id) AS n FROM match_keys "
        "WHERE customer_id = :customer_id AND kind = :kind "
        "AND key IN (SELECT value FROM json_each(:keys))) WHERE n <= :cap"),
}


def load_profiles(conn: Connection, kind: str, entity_ids: Iterable[int],
                  rank: Callable[[str], int]) -> dict[int, Profile]:
    """The golden records of live (not merged-away) entities, as the matcher compares them."""
    table = TABLES[kind][0]
    wanted = sorted(set(entity_ids))
    profiles: dict[int, Profile] = {}
    if not wanted:
        return profiles
    if kind == "accounts":
        account_rows = conn.execute(select(
            table.c.id, table.c.name, table.c.phone, table.c.source, table.c.source_updated_at,
            table.c.domain).where(among(conn, table.c.id, wanted),
                                  table.c.merged_into.is_(None))).all()
        for id_, name, phone, source, updated_at, domain in account_rows:
            profiles[id_] = account_profile(id_, name=name, domain=domain, phone=phone,
                                            source_rank=rank(source or ""),
                                            updated_at=updated_at)
        return profiles
    rows = conn.execute(select(
        table.c.id, table.c.name, table.c.phone, table.c.source, table.c.source_updated_at,
        table.c.email, table.c.first_name, table.c.last_name, table.c.account_id).where(
            among(conn, table.c.id, wanted), table.c.merged_into.is_(None))).all()
    for id_, name, phone, source, updated_at, email, first_name, last_name, account_id in rows:
        profiles[id_] = contact_profile(id_, email=email, first_name=first_name,
                                        last_name=last_name, name=name, phone=phone,
                                        account_id=account_id, source_rank=rank(source or ""),
                                        updated_at=updated_at)
    return profiles


#: Block keys that carry more than a name: phone, near ids, mailbox, name at a company or
#: with a birth date.
STRONG_BLOCKS = ("b:ph:", "b:x:", "b:el:", "b:lc:", "b:fb:", "b:as:")


def gather_existing(conn: Connection, customer_id: str, kind: Kind,
                    records: Sequence[Any], rank: Callable[[str], int],
                    block_keys: Callable[[Any], Iterable[str]], *,
                    every_block: bool = False) -> Existing:
    """The entities that share an id or key with ``records`` and, for records that share
    none (for every record with ``every_block``), those in the same tier-3 blocks. Two
    indexed queries per phase, whatever the size."""
    keys = {k for r in records for k in r.ids} | {strong(r.key) for r in records if r.key}
    hits = lookup_keys(conn, customer_id, kind, keys)
    existing = Existing()
    for key, ids in hits.items():
        value = strong_value(key)
        if value is not None:
            existing.by_key[value] = ids
        else:
            existing.by_id[key] = ids[0]
    wanted = {e for ids in hits.values() for e in ids}
    wanted |= {r.linked for r in records if r.linked is not None}
    existing.profiles = load_profiles(conn, kind, wanted, rank)
    # A record whose key names only entities its name conflicts with (two people sharing a
    # mailbox, a subsidiary on its parent's domain) is as alone as one without a key: the
    # fuzzy tier must still see its other candidates (the same person's free-mail entity).
    lonely = [
        r for r in records if r.linked is None
        and not any(k in hits for k in r.ids)
        and not (r.key and strong(r.key) in hits
                 and not _all_conflict(kind, r, hits[strong(r.key)], existing))]
    wanted_blocks = {k for r in lonely for k in block_keys(r)}
    if every_block:
        # Records an id or key placed already still meet the entities they share a strong
        # block with (a phone, an id a keystroke apart, a name at one company): those could
        # join them too, whichever of the two came first.
        wanted_blocks.update(k for r in records for k in block_keys(r)
                             if k.startswith(STRONG_BLOCKS))
    # Blocks above MAX_BLOCK are never compared (tier 3 skips them): reading or loading their
    # entities would cost memory and time that grow with the customer's history.
    blocks = lookup_keys(conn, customer_id, kind, wanted_blocks, cap=MAX_BLOCK + 1)
    existing.by_block = blocks = {k: ids for k, ids in blocks.items() if len(ids) <= MAX_BLOCK}
    more = {e for ids in blocks.values() for e in ids} - existing.profiles.keys()
    if more:
        existing.profiles.update(load_profiles(conn, kind, more, rank))
    return existing


def _all_conflict(kind: Kind, record: Any, entity_ids: Sequence[int],
                  existing: Existing) -> bool:
    profiles = [existing.profiles[e] for e in entity_ids if e in existing.profiles]
    return bool(profiles) and all(names_conflict(kind, record, p) for p in profiles)


def apply_plan(conn: Connection, customer_id: str, kind: Kind, plan: Plan, existing: Existing,
               now: datetime) -> dict[str, int]:
    """Write a match plan: new entities, merges, links, keys, reviews, golden-record updates
    (and, for contacts, the accounts of contacts that had none); returns plan key → new id."""
    new_ids = _write_new_entities(conn, customer_id, kind, plan.new_entities, now)
    for merge in plan.merges:
        for absorbed in merge.absorbed:
            merge_entities(conn, customer_id, kind, merge.survivor, absorbed, now,
                           dict(merge.evidence))
    _write_links(conn, customer_id, kind, plan.links, new_ids, now)
    _write_keys(conn, customer_id, kind, plan.new_keys, existing, new_ids)
    _write_reviews(conn, customer_id, kind, plan, new_ids, now)
    _write_golden_updates(conn, kind, plan.updates, now)
    if kind == "contacts":
        _write_contact_accounts(conn, customer_id, plan.contact_accounts, now)
    return new_ids


def _write_new_entities(conn: Connection, customer_id: str, kind: Kind,
                        entities: Sequence[NewEntity], now: datetime) -> dict[str, int]:
    """Insert the plan's new entities under freshly drawn ids; return plan key → new id."""
    if not entities:
        return {}
    table = TABLES[kind][0]
    rows = []
    for entity in entities:
        row: dict[str, Any] = {"customer_id": customer_id, "created_at": now,
                               "updated_at": now, **_columns(table, entity.values)}
        if kind == "contacts":
            row["account_id"] = entity.account if isinstance(entity.account, int) else None
        rows.append(row)
    for row, new_id in zip(rows, bulk.draw_ids(conn, table, len(rows)), strict=True):
        row["id"] = new_id
    bulk.insert_new(conn, table, rows)  # fresh ids: nothing to conflict with
    return {entity.key: row["id"] for entity, row in zip(entities, rows, strict=True)}


def _write_links(conn: Connection, customer_id: str, kind: Kind, links_: Sequence[Link],
                 new_ids: Mapping[str, int], now: datetime) -> None:
    """Link each record to its entity (a record's earlier link is replaced)."""
    if not links_:
        return
    _table, links, column = TABLES[kind]
    rows = [{"interaction_id": link.interaction_id,
             column: link.entity if isinstance(link.entity, int) else new_ids.get(link.entity),
             "customer_id": customer_id, "rule": link.rule, "score": link.score,
             "evidence": link.evidence, "linked_at": now} for link in links_]
    bulk.upsert(conn, links, rows, keys=["interaction_id"],
                set_sql=bulk.excluded([column, "rule", "score", "evidence", "linked_at"]))


def _write_keys(conn: Connection, customer_id: str, kind: Kind,
                new_keys: Iterable[tuple[EntityRef, str]], existing: Existing,
                new_ids: Mapping[str, int]) -> None:
    """Index the plan's match keys for later batches (those not indexed yet)."""
    # A new entity has no keys yet; an existing one may have some of them indexed already.
    # (key, entity) tuples sort by key without a key function: inserts in index order.
    key_rows = sorted({(k, e if isinstance(e, int) else new_ids[e])
                       for e, k in new_keys
                       if len(k) <= 400 and not (isinstance(e, int) and _indexed(existing, e, k))
                       and (isinstance(e, int) or e in new_ids)})
    if new_ids:
        # A new entity's keys cannot be indexed yet: they go in without a conflict check.
        fresh = set(new_ids.values())
        bulk.insert_new(conn, match_keys, _key_columns(
            customer_id, kind, [row for row in key_rows if row[1] in fresh]))
        key_rows = [row for row in key_rows if row[1] not in fresh]
    if key_rows:
        bulk.upsert(conn, match_keys, _key_columns(customer_id, kind, key_rows),
                    keys=MATCH_KEY)


def _write_reviews(conn: Connection, customer_id: str, kind: Kind, plan: Plan,
                   new_ids: Mapping[str, int], now: datetime) -> None:
    """Record the review-band pairs whose two sides ended up as different entities."""
    if not plan.reviews:
        return
    entity_of = {link.interaction_id: _resolve(link.entity, new_ids) for link in plan.links}
    rows = []
    for review in plan.reviews:
        record = record_of(review.candidate)
        candidate_id = (_resolve(review.candidate, new_ids) if record is None
                        else entity_of.get(record))
        if candidate_id is None or candidate_id == entity_of.get(review.interaction_id):
            continue
        rows.append({"customer_id": customer_id, "kind": kind,
                     "interaction_id": review.interaction_id,
                     "entity_id": entity_of.get(review.interaction_id),
                     "candidate_id": candidate_id, "rule": review.rule,
                     "score": review.score, "evidence": dict(review.evidence),
                     "status": "open", "created_at": now})
    if rows:
        bulk.upsert(conn, match_reviews, rows, keys=["kind", "interaction_id", "candidate_id"])


def _write_golden_updates(conn: Connection, kind: Kind, updates: Mapping[int, Mapping[str, Any]],
                          now: datetime) -> None:
    """Golden-record values an incoming record outranks an entity with: one bulk update per
    set of columns, not a statement per entity."""
    table = TABLES[kind][0]
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for entity_id, values in sorted(updates.items()):
        changed = _columns(table, values)
        by_columns[tuple(sorted(changed))].append(
            {"id": entity_id, "updated_at": now, **changed})
    for rows in by_columns.values():
        bulk.update_by_key(conn, table, rows)


def _write_contact_accounts(conn: Connection, customer_id: str,
                            contact_accounts: Mapping[int, EntityRef], now: datetime) -> None:
    """Existing contacts without an account take the one the plan found for them; their
    deals, tickets and tasks follow (:func:`_link_to_new_accounts`)."""
    params = [{"_id": contact_id, "_account": account, "_now": now}
              for contact_id, account in sorted(contact_accounts.items())
              if isinstance(account, int)]
    if not params:
        return
    without = [i for (i,) in conn.execute(select(contacts.c.id).where(
        among(conn, contacts.c.id, [p["_id"] for p in params]),
        contacts.c.account_id.is_(None)))]
    conn.execute(update(contacts).where(contacts.c.id == bindparam("_id"),
                                        contacts.c.account_id.is_(None))
                 .values(account_id=bindparam("_account"), updated_at=bindparam("_now")),
                 params)
    if without:
        _link_to_new_accounts(conn, customer_id, without, now)


def _link_to_new_accounts(conn: Connection, customer_id: str, contact_ids: Sequence[int],
                          now: datetime) -> None:
    """Deals, tickets and tasks linked to contacts that had no account when they arrived
    take the account the contacts have now (``contact_account``), as a re-match links them:
    without this the links depend on which integration synced first."""
    has_account = select(account_links.c.interaction_id).where(
        account_links.c.interaction_id == contact_links.c.interaction_id).exists()
    rows = conn.execute(
        select(contact_links.c.interaction_id, contacts.c.account_id)
        .join(contacts, contacts.c.id == contact_links.c.contact_id)
        .join(interactions, interactions.c.id == contact_links.c.interaction_id)
        .where(among(conn, contact_links.c.contact_id, contact_ids),
               contacts.c.account_id.is_not(None),
               interactions.c.interaction_type.not_in(("accounts", "contacts")),
               ~has_account)).all()
    if rows:
        conn.execute(account_links.insert(), [
            {"interaction_id": i, "account_id": a, "customer_id": customer_id,
             "rule": "contact_account", "score": 1.0, "evidence": {}, "linked_at": now}
            for i, a in rows])


MATCH_KEY = ["customer_id", "kind", "key", "entity_id"]


def _key_columns(customer_id: str, kind: str, rows: Sequence[tuple[str, int]]
                 ) -> dict[str, list[Any]]:
    """(key, entity) rows as ``match_keys`` columns."""
    n = len(rows)
    return {"customer_id": [customer_id] * n, "kind": [kind] * n,
            "key": [k for k, _ in rows], "entity_id": [e for _, e in rows]}


def _indexed(existing: Existing, entity: EntityRef, key: str) -> bool:
    """Whether the match index holds ``key`` → ``entity`` already (as gathered for the batch)."""
    value = strong_value(key)
    if value is not None:
        return entity in existing.by_key.get(value, ())
    if is_block(key):
        return entity in existing.by_block.get(key, ())
    return existing.by_id.get(key) == entity


def _columns(table: Table, values: Mapping[str, Any]) -> dict[str, Any]:
    names = _writable(table)
    return {k: v for k, v in values.items() if k in names}


@cache
def _writable(table: Table) -> frozenset[str]:
    """The columns golden-record values may set (a plain set: ``in table.c`` is slow)."""
    return frozenset(table.c.keys()) - {"id", "customer_id"}


def _resolve(ref: EntityRef | None, new_ids: Mapping[str, int]) -> int | None:
    if ref is None or isinstance(ref, int):
        return ref
    return new_ids.get(ref)


def merge_entities(conn: Connection, customer_id: str, kind: str, survivor: int, absorbed: int,
                   now: datetime, evidence: Mapping[str, Any] | None = None) -> int:
    """Move everything of ``absorbed`` onto ``survivor`` and record what moved; returns the
    merge's id (for :func:`unmerge`)."""
    table, links, column = TABLES[kind]
    for entity_id in (survivor, absorbed):
        owner = conn.execute(select(table.c.customer_id).where(table.c.id == entity_id)
                             ).scalar_one()
        if owner != customer_id:
            raise ValueError(f"{kind} {entity_id} does not belong to customer {customer_id}")
    moved = sorted(i for (i,) in conn.execute(
        select(links.c.interaction_id).where(links.c[column] == absorbed)))
    conn.execute(update(links).where(links.c[column] == absorbed)
                 .values({column: survivor, "linked_at": now}))
    keys = sorted(k for (k,) in conn.execute(select(match_keys.c.key).where(
        match_keys.c.customer_id == customer_id, match_keys.c.kind == kind,
        match_keys.c.entity_id == absorbed)))
    conn.execute(delete(match_keys).where(match_keys.c.customer_id == customer_id,
                                          match_keys.c.kind == kind,
                                          match_keys.c.entity_id == absorbed))
    if keys:
        bulk.upsert(conn, match_keys, _key_columns(customer_id, kind, [(k, survivor)
                                                                      for k in keys]),
                    keys=MATCH_KEY)
    contact_ids: list[int] = []
    if kind == "accounts":
        contact_ids = sorted(i for (i,) in conn.execute(
            select(contacts.c.id).where(contacts.c.account_id == absorbed)))
        conn.execute(update(contacts).where(contacts.c.account_id == absorbed)
                     .values(account_id=survivor, updated_at=now))
    conn.execute(update(table).where(table.c.id == absorbed)
                 .values(merged_into=survivor, updated_at=now))
    return int(conn.execute(entity_merges.insert().returning(entity_merges.c.id), {
        "customer_id": customer_id, "kind": kind, "survivor_id": survivor,
        "absorbed_id": absorbed, "interaction_ids": moved, "contact_ids": contact_ids,
        "keys": keys, "evidence": dict(evidence or {}), "merged_at": now}).scalar_one())


def unmerge(conn: Connection, merge_id: int, now: datetime) -> None:
    """Undo one merge: the absorbed entity comes back with the links, keys and contacts it had.

    Links written to the survivor after the merge stay there.
    """
    m = conn.execute(select(entity_merges).where(entity_merges.c.id == merge_id)).one()._mapping
    if m["unmerged_at"] is not None:
        raise ValueError(f"merge {merge_id} was already undone")
    kind, survivor, absorbed = m["kind"], m["survivor_id"], m["absorbed_id"]
    table, links, column = TABLES[kind]
    conn.execute(update(table).where(table.c.id == absorbed)
                 .values(merged_into=None, updated_at=now))
    for chunk in _chunks(list(m["interaction_ids"])):
        conn.execute(update(links).where(links.c.interaction_id.in_(chunk),
                                         links.c[column] == survivor)
                     .values({column: absorbed, "rule": "unmerged", "linked_at": now}))
    for chunk in _chunks(list(m["keys"])):
        bulk.upsert(conn, match_keys, _key_columns(m["customer_id"], kind,
                                                   [(k, absorbed) for k in chunk]),
                    keys=MATCH_KEY)
    if kind == "accounts":
        for chunk in _chunks(list(m["contact_ids"])):
            conn.execute(update(contacts).where(contacts.c.id.in_(chunk),
                                                contacts.c.account_id == survivor)
                         .values(account_id=absorbed, updated_at=now))
    conn.execute(update(entity_merges).where(entity_merges.c.id == merge_id)
                 .values(unmerged_at=now))


def related_targets(conn: Connection, customer_id: str, kind: str,
                    keys: Iterable[str]) -> dict[str, int]:
    """Keys that name exactly one live entity (an email, a domain, a cross-system id)."""
    return {k: ids[0] for k, ids in lookup_keys(conn, customer_id, kind, keys).items()
            if len(ids) == 1}


def link_related(conn: Connection, customer_id: str, *,
                 account_by_interaction: Mapping[int, tuple[int, str]],
                 contact_by_interaction: Mapping[int, tuple[int, str]], now: datetime) -> int:
    """Link deals / tickets / tasks to their account and contact (entity, rule);
    returns links written."""
    written = 0
    for table, column, mapping in ((account_links, "account_id", account_by_interaction),
                                   (contact_links, "contact_id", contact_by_interaction)):
        if not mapping:
            continue
        bulk.upsert(conn, table, [{"interaction_id": i, column: e, "customer_id": customer_id,
                                   "rule": rule, "score": 1.0, "evidence": {},
                                   "linked_at": now} for i, (e, rule) in sorted(mapping.items())],
                    keys=["interaction_id"],
                    set_sql=bulk.excluded([column, "rule", "linked_at"]))
        written += len(mapping)
    return written


def unexplained_duplicate_domains(conn: Connection, customer_id: str | None = None) -> int:
    """Registered domains that more than one live Account of a customer holds *without* a
    review row explaining it. A subsidiary on its parent's domain is a separate Account by
    design (recorded as ``domain_name_mismatch``); anything else is a matching defect."""
    live: list[ColumnElement[bool]] = [accounts.c.domain.is_not(None),
                                       accounts.c.merged_into.is_(None)]
    if customer_id is not None:
        live.append(accounts.c.customer_id == customer_id)
    shared = (select(accounts.c.customer_id, accounts.c.domain).where(*live)
              .group_by(accounts.c.customer_id, accounts.c.domain).having(func.count() > 1))
    explained = (select(accounts.c.customer_id, accounts.c.domain).where(*live)
                 .join(match_reviews, (match_reviews.c.kind == "accounts")
                       & (match_reviews.c.rule == "domain_name_mismatch")
                       & ((match_reviews.c.candidate_id == accounts.c.id)
                          | (match_reviews.c.entity_id == accounts.c.id))))
    return int(conn.execute(select(func.count()).select_from(
        shared.except_(explained).subquery())).scalar_one())
