"""Interactions, matched entities and links: batched reads and writes for the processor."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, select, update

from akita_pipelines.core.types import TypedRecord
from akita_pipelines.db.bulk import copy_upsert, use_copy
from akita_pipelines.db.dialect import insert_for, upsert
from akita_pipelines.db.schema import (
    account_links,
    accounts,
    contact_links,
    contacts,
    interactions,
)
from akita_pipelines.processing.match import EntityRef, MatchPlan

_INTERACTION_UPDATE = ["name", "email", "website", "domain", "phone", "first_name", "last_name",
                       "account_ref", "contact_ref", "fields", "source_updated_at", "deleted_at",
                       "updated_at"]


def upsert_interactions(conn: Connection, *, customer_id: str, integration_id: str,
                        records: Sequence[tuple[TypedRecord, str | None]],
                        now: datetime) -> dict[str, int]:
    """Store typed records (with their normalised domain); return external id → interaction id."""
    if not records:
        return {}
    stmt = upsert(conn, interactions, ["integration_id", "interaction_type", "external_id"], None,
                  update=_INTERACTION_UPDATE).returning(interactions.c.id,
                                                        interactions.c.external_id)
    rows = [{
        "customer_id": customer_id, "integration_id": integration_id,
        "interaction_type": r.interaction_type, "external_id": r.external_id, "name": r.name,
        "email": r.email, "website": r.website, "domain": domain, "phone": r.phone,
        "first_name": r.first_name, "last_name": r.last_name, "account_ref": r.account_ref,
        "contact_ref": r.contact_ref, "fields": dict(r.fields),
        "source_updated_at": r.updated_at, "deleted_at": (r.updated_at or now) if r.deleted
        else None, "updated_at": now,
    } for r, domain in records]
    if use_copy(conn, len(rows)):
        result = copy_upsert(conn, interactions, rows,
                             keys=["integration_id", "interaction_type", "external_id"],
                             set_sql={c: f"excluded.{c}" for c in _INTERACTION_UPDATE},
                             returning=["id", "external_id"])
    else:
        result = list(conn.execute(stmt, rows))
    return {row.external_id: row.id for row in result}


def interaction_ids(conn: Connection, integration_id: str, interaction_type: str,
                    external_ids: Iterable[str]) -> dict[str, int]:
    ids = sorted(set(external_ids))
    if not ids:
        return {}
    rows = conn.execute(select(interactions.c.external_id, interactions.c.id).where(
        interactions.c.integration_id == integration_id,
        interactions.c.interaction_type == interaction_type,
        interactions.c.external_id.in_(ids)))
    return {r.external_id: r.id for r in rows}


def existing_links(conn: Connection, table: Table, entity_column: str,
                   interaction_ids_: Iterable[int]) -> dict[int, int]:
    ids = sorted(set(interaction_ids_))
    if not ids:
        return {}
    rows = conn.execute(select(table.c.interaction_id, table.c[entity_column])
                        .where(table.c.interaction_id.in_(ids)))
    return {r[0]: r[1] for r in rows}


def accounts_by_domain(conn: Connection, customer_id: str,
                       domains: Iterable[str]) -> dict[str, int]:
    wanted = sorted({d for d in domains if d})
    if not wanted:
        return {}
    rows = conn.execute(select(accounts.c.domain, accounts.c.id)
                        .where(accounts.c.customer_id == customer_id,
                               accounts.c.domain.in_(wanted)).order_by(accounts.c.id))
    found: dict[str, int] = {}
    for r in rows:
        found.setdefault(r.domain, r.id)  # the oldest account owns a shared domain
    return found


def contacts_by_email(conn: Connection, customer_id: str, emails: Iterable[str]) -> dict[str, int]:
    wanted = sorted({e for e in emails if e})
    if not wanted:
        return {}
    rows = conn.execute(select(contacts.c.email, contacts.c.id)
                        .where(contacts.c.customer_id == customer_id,
                               contacts.c.email.in_(wanted)).order_by(contacts.c.id))
    found: dict[str, int] = {}
    for r in rows:
        found.setdefault(r.email, r.id)
    return found


def account_of_refs(conn: Connection, integration_id: str,
                    account_refs: Iterable[str]) -> dict[str, int]:
    """Source account id (in the same integration) → the matched account it is linked to."""
    refs = sorted({r for r in account_refs if r})
    if not refs:
        return {}
    rows = conn.execute(
        select(interactions.c.external_id, account_links.c.account_id)
        .join(account_links, account_links.c.interaction_id == interactions.c.id)
        .where(interactions.c.integration_id == integration_id,
               interactions.c.interaction_type == "accounts",
               interactions.c.external_id.in_(refs)))
    return {r.external_id: r.account_id for r in rows}


def contact_of_refs(conn: Connection, integration_id: str,
                    contact_refs: Iterable[str]) -> dict[str, int]:
    refs = sorted({r for r in contact_refs if r})
    if not refs:
        return {}
    rows = conn.execute(
        select(interactions.c.external_id, contact_links.c.contact_id)
        .join(contact_links, contact_links.c.interaction_id == interactions.c.id)
        .where(interactions.c.integration_id == integration_id,
               interactions.c.interaction_type == "contacts",
               interactions.c.external_id.in_(refs)))
    return {r.external_id: r.contact_id for r in rows}


def _create(conn: Connection, table: Table, customer_id: str, plan: MatchPlan, now: datetime,
            account_ids: Mapping[str, int] | None = None) -> dict[str, int]:
    if not plan.new_entities:
        return {}
    rows = []
    for entity in plan.new_entities:
        row: dict[str, Any] = {"customer_id": customer_id, "created_at": now, "updated_at": now,
                               **entity.values}
        if table is contacts:
            row["account_id"] = _resolve(entity.account, account_ids or {})
        rows.append(row)
    result = conn.execute(table.insert().returning(table.c.id, sort_by_parameter_order=True),
                          rows)
    ids = [r.id for r in result]
    return {entity.key: new_id for entity, new_id in zip(plan.new_entities, ids, strict=True)}


def _resolve(ref: EntityRef | None, new_ids: Mapping[str, int]) -> int | None:
    if ref is None or isinstance(ref, int):
        return ref
    return new_ids.get(ref)


def _write_links(conn: Connection, table: Table, entity_column: str, customer_id: str,
                 plan: MatchPlan, new_ids: Mapping[str, int], now: datetime) -> None:
    if not plan.links:
        return
    rows = [{
        "interaction_id": link.interaction_id,
        entity_column: _resolve(link.entity, new_ids), "customer_id": customer_id,
        "rule": link.rule, "score": link.score, "evidence": dict(link.evidence), "linked_at": now,
    } for link in plan.links]
    update = [entity_column, "rule", "score", "evidence", "linked_at"]
    if use_copy(conn, len(rows)):
        copy_upsert(conn, table, rows, keys=["interaction_id"],
                    set_sql={c: f"excluded.{c}" for c in update})
        return
    conn.execute(upsert(conn, table, ["interaction_id"], None, update=update), rows)


def apply_account_plan(conn: Connection, customer_id: str, plan: MatchPlan,
                       now: datetime) -> dict[str, int]:
    new_ids = _create(conn, accounts, customer_id, plan, now)
    _write_links(conn, account_links, "account_id", customer_id, plan, new_ids, now)
    return new_ids


def apply_contact_plan(conn: Connection, customer_id: str, plan: MatchPlan,
                       now: datetime) -> dict[str, int]:
    new_ids = _create(conn, contacts, customer_id, plan, now)
    _write_links(conn, contact_links, "contact_id", customer_id, plan, new_ids, now)
    for contact_id, account in sorted(plan.contact_accounts.items()):
        account_id = _resolve(account, {})
        conn.execute(update(contacts).where(contacts.c.id == contact_id,
                                            contacts.c.account_id.is_(None))
                     .values(account_id=account_id, updated_at=now))
    return new_ids


def link_related(conn: Connection, customer_id: str, *, account_by_interaction: Mapping[int, int],
                 contact_by_interaction: Mapping[int, int], now: datetime) -> int:
    """Link deals / tickets / tasks to their account and contact; returns links written."""
    written = 0
    for table, column, mapping in ((account_links, "account_id", account_by_interaction),
                                   (contact_links, "contact_id", contact_by_interaction)):
        if not mapping:
            continue
        stmt = insert_for(conn, table)
        stmt = stmt.on_conflict_do_update(index_elements=["interaction_id"], set_={
            column: stmt.excluded[column], "linked_at": stmt.excluded.linked_at})
        conn.execute(stmt, [{"interaction_id": i, column: e, "customer_id": customer_id,
                             "rule": "reference", "score": 1.0, "evidence": {},
                             "linked_at": now} for i, e in sorted(mapping.items())])
        written += len(mapping)
    return written
