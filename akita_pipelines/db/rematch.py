"""What a re-match reads and resets: a customer's stored interactions, entities and links."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from akita_pipelines.core.types import TypedRecord
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

ENTITY_TABLES = {"accounts": accounts, "contacts": contacts}


def typed_record(row: object) -> TypedRecord:
    """A stored interaction row as the typed record the processor takes."""
    r = row if isinstance(row, Mapping) else row._mapping  # type: ignore[attr-defined]
    return TypedRecord(
        interaction_type=r["interaction_type"], external_id=r["external_id"],
        updated_at=r["source_updated_at"], name=r["name"], email=r["email"],
        website=r["website"], phone=r["phone"], first_name=r["first_name"],
        last_name=r["last_name"], account_ref=r["account_ref"], contact_ref=r["contact_ref"],
        requester_email=r["requester_email"], deleted=r["deleted_at"] is not None,
        fields=r["fields"] or {})


def customer_ids(conn: Connection) -> list[str]:
    return [c for (c,) in conn.execute(select(customers.c.id).order_by(customers.c.id))]


def clear_matches(conn: Connection, customer_id: str) -> None:
    """Forget a customer's entities, links, keys, reviews and merges (decisions stay)."""
    for table in (account_links, contact_links, match_keys, match_reviews, entity_merges):
        conn.execute(delete(table).where(table.c.customer_id == customer_id))
    conn.execute(update(contacts).where(contacts.c.customer_id == customer_id)
                 .values(account_id=None, merged_into=None))
    conn.execute(update(accounts).where(accounts.c.customer_id == customer_id)
                 .values(merged_into=None))
    conn.execute(delete(contacts).where(contacts.c.customer_id == customer_id))
    conn.execute(delete(accounts).where(accounts.c.customer_id == customer_id))


def stored_types(conn: Connection, customer_id: str) -> list[str]:
    """The interaction types the customer has stored records of (any order)."""
    return [t for (t,) in conn.execute(select(interactions.c.interaction_type).distinct()
                                       .where(interactions.c.customer_id == customer_id))]


def integrations_with(conn: Connection, customer_id: str, interaction_type: str) -> list[str]:
    """The customer's integrations that stored records of ``interaction_type``, by id."""
    return [i for (i,) in conn.execute(
        select(interactions.c.integration_id).distinct().where(
            interactions.c.customer_id == customer_id,
            interactions.c.interaction_type == interaction_type)
        .order_by(interactions.c.integration_id))]


def stored_batches(conn: Connection, integration_id: str, interaction_type: str,
                   batch_size: int) -> Iterator[list[TypedRecord]]:
    """The stored records of one integration and type as typed records, in batches by id."""
    after = 0
    while True:
        rows = conn.execute(select(interactions).where(
            interactions.c.integration_id == integration_id,
            interactions.c.interaction_type == interaction_type,
            interactions.c.id > after).order_by(interactions.c.id).limit(batch_size)).all()
        if not rows:
            return
        after = rows[-1].id
        yield [typed_record(r) for r in rows]


def link_rows(conn: Connection, customer_id: str, kind: str) -> list[Any]:
    """The customer's links of ``kind`` (accounts | contacts): (interaction id, entity id,
    rule, interaction type) rows."""
    table, column = ((account_links, "account_id") if kind == "accounts"
                     else (contact_links, "contact_id"))
    return list(conn.execute(
        select(table.c.interaction_id, table.c[column], table.c.rule,
               interactions.c.interaction_type)
        .join(interactions, interactions.c.id == table.c.interaction_id)
        .where(table.c.customer_id == customer_id)).all())


def live_entities(conn: Connection, kind: str, customer_id: str) -> int:
    """How many accounts (contacts) of the customer are not merged into another."""
    table = ENTITY_TABLES[kind]
    return int(conn.execute(select(func.count()).select_from(table)
                            .where(table.c.customer_id == customer_id,
                                   table.c.merged_into.is_(None))).scalar_one())


def open_reviews(conn: Connection, customer_id: str) -> int:
    return int(conn.execute(select(func.count()).select_from(match_reviews).where(
        match_reviews.c.customer_id == customer_id, match_reviews.c.status == "open")
    ).scalar_one())
