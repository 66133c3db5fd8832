"""Re-match a customer's Accounts and Contacts from the stored interactions.

Used when matching rules change: entities and links are rebuilt from scratch, in one
transaction per customer, in the same dependency order as a sync (accounts, contacts, the rest).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, Table, delete, func, select, update

from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.types import STANDARD_TYPES, TypedRecord
from akita_pipelines.db.schema import (
    account_links,
    accounts,
    contact_links,
    contacts,
    customers,
    entity_merges,
    interactions,
    match_keys,
    match_reviews,
)
from akita_pipelines.sync.process import ProcessResult, process_batch


@dataclass(frozen=True)
class RematchReport:
    customers: int
    accounts_before: int
    accounts_after: int
    contacts_before: int
    contacts_after: int
    links: int
    #: interactions whose entity now groups them with different records than before
    moved: int = 0
    #: open review rows after the re-match (candidates recorded, not merged)
    reviews: int = 0


def _count(conn: Connection, table: object, customer_id: str | None = None) -> int:
    query = select(func.count()).select_from(table)  # type: ignore[arg-type]
    if customer_id is not None:
        query = query.where(table.c.customer_id == customer_id)  # type: ignore[attr-defined]
    return int(conn.execute(query).scalar_one())


def _typed(row: object) -> TypedRecord:
    r = row._mapping  # type: ignore[attr-defined]
    return TypedRecord(
        interaction_type=r["interaction_type"], external_id=r["external_id"],
        updated_at=r["source_updated_at"], name=r["name"], email=r["email"],
        website=r["website"], phone=r["phone"], first_name=r["first_name"],
        last_name=r["last_name"], account_ref=r["account_ref"], contact_ref=r["contact_ref"],
        deleted=r["deleted_at"] is not None, fields=r["fields"] or {})


def rematch_customer(conn: Connection, customer_id: str, batch_size: int = 5000) -> int:
    """Rebuild one customer's entities and links; returns the number of links written."""
    for table in (account_links, contact_links, match_keys, match_reviews, entity_merges):
        conn.execute(delete(table).where(table.c.customer_id == customer_id))
    conn.execute(update(contacts).where(contacts.c.customer_id == customer_id)
                 .values(account_id=None, merged_into=None))
    conn.execute(update(accounts).where(accounts.c.customer_id == customer_id)
                 .values(merged_into=None))
    conn.execute(delete(contacts).where(contacts.c.customer_id == customer_id))
    conn.execute(delete(accounts).where(accounts.c.customer_id == customer_id))
    result = ProcessResult(customer_id, "*")
    now = utcnow()
    types = [t for (t,) in conn.execute(select(interactions.c.interaction_type).distinct()
                                        .where(interactions.c.customer_id == customer_id))]
    ordered = [t for t in STANDARD_TYPES if t in types] + sorted(set(types) - set(STANDARD_TYPES))
    for interaction_type in ordered:
        integration_ids = [i for (i,) in conn.execute(
            select(interactions.c.integration_id).distinct().where(
                interactions.c.customer_id == customer_id,
                interactions.c.interaction_type == interaction_type)
            .order_by(interactions.c.integration_id))]
        for integration_id in integration_ids:
            after = 0
            while True:
                rows = conn.execute(select(interactions).where(
                    interactions.c.integration_id == integration_id,
                    interactions.c.interaction_type == interaction_type,
                    interactions.c.id > after).order_by(interactions.c.id).limit(batch_size)).all()
                if not rows:
                    break
                after = rows[-1].id
                process_batch(conn, customer_id=customer_id, integration_id=integration_id,
                              records=[_typed(r) for r in rows], now=now, result=result)
    return result.linked


def _groups(conn: Connection, customer_id: str) -> dict[tuple[str, int], frozenset[int]]:
    """Each linked interaction → the interactions sharing its entity (ids change on a re-match;
    the grouping is what a user sees move)."""
    out: dict[tuple[str, int], frozenset[int]] = {}
    for name, table, column in (("a", account_links, "account_id"),
                                ("c", contact_links, "contact_id")):
        members: dict[int, set[int]] = defaultdict(set)
        for interaction_id, entity_id in conn.execute(
                select(table.c.interaction_id, table.c[column])
                .where(table.c.customer_id == customer_id)):
            members[entity_id].add(interaction_id)
        for group in members.values():
            frozen = frozenset(group)
            out.update({(name, i): frozen for i in group})
    return out


def rematch_all(engine: Engine) -> RematchReport:
    """Re-match every customer; report counts before and after and how many records moved."""
    with engine.connect() as conn:
        ids = [c for (c,) in conn.execute(select(customers.c.id).order_by(customers.c.id))]
        before = (_live(conn, accounts), _live(conn, contacts))
    links = moved = 0
    for customer_id in ids:
        with engine.begin() as conn:
            old = _groups(conn, customer_id)
            links += rematch_customer(conn, customer_id)
            new = _groups(conn, customer_id)
            moved += sum(1 for key, group in new.items() if old.get(key) != group)
    with engine.connect() as conn:
        after = (_live(conn, accounts), _live(conn, contacts))
        reviews = _count(conn, match_reviews)
    return RematchReport(len(ids), before[0], after[0], before[1], after[1], links, moved,
                         reviews)


def _live(conn: Connection, table: Table) -> int:
    return int(conn.execute(select(func.count()).select_from(table)
                            .where(table.c.merged_into.is_(None))).scalar_one())
