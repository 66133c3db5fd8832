"""Re-match a customer's Accounts and Contacts from the stored interactions.

Used when matching rules change: entities and links are rebuilt from scratch, in one
transaction per customer, in the same dependency order as a sync (accounts, contacts, the rest).
Steward decisions (``match_decisions``) are kept and obeyed; a dry run rolls the transaction
back and reports what would move.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, Table, delete, func, select, update

from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.errors import ConfigError
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
class Move:
    """One record whose entity now groups it with different records than before."""

    kind: str  # accounts | contacts (the link table: a deal linked to an account is "accounts")
    interaction_id: int
    interaction_type: str  # accounts, contacts, deals, tickets, …
    #: the records of its entity's own kind before (empty: not linked)
    before: tuple[int, ...]
    after: tuple[int, ...]
    rule: str | None  # the rule of its link now (None: no longer linked)

    def as_json(self) -> dict[str, object]:
        return {"kind": self.kind, "interaction_id": self.interaction_id,
                "interaction_type": self.interaction_type, "before": list(self.before),
                "after": list(self.after), "rule": self.rule}


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
    dry_run: bool = False
    #: every moved record, with the records it was and is grouped with
    moves: tuple[Move, ...] = ()

    def as_json(self) -> dict[str, object]:
        return {"customers": self.customers, "dry_run": self.dry_run,
                "accounts_before": self.accounts_before, "accounts_after": self.accounts_after,
                "contacts_before": self.contacts_before, "contacts_after": self.contacts_after,
                "links": self.links, "moved": self.moved, "open_reviews": self.reviews,
                "moves": [m.as_json() for m in self.moves]}


def typed_record(row: object) -> TypedRecord:
    """A stored interaction row as the typed record the processor takes."""
    r = row if isinstance(row, Mapping) else row._mapping  # type: ignore[attr-defined]
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
                              records=[typed_record(r) for r in rows], now=now, result=result)
    return result.linked


#: (link table, interaction) → (the entity's own records, the link's rule, interaction type)
_Groups = dict[tuple[str, int], tuple[frozenset[int], str, str]]


def _groups(conn: Connection, customer_id: str) -> _Groups:
    """Each linked interaction → the records of its entity's own kind (an Account is the
    account records it groups; ids change on a re-match, the grouping is what a user sees
    move), its link's rule and its type. A deal newly linked moves itself, not its account."""
    out: _Groups = {}
    for name, table, column in (("accounts", account_links, "account_id"),
                                ("contacts", contact_links, "contact_id")):
        rows = conn.execute(
            select(table.c.interaction_id, table.c[column], table.c.rule,
                   interactions.c.interaction_type)
            .join(interactions, interactions.c.id == table.c.interaction_id)
            .where(table.c.customer_id == customer_id)).all()
        members: dict[int, set[int]] = defaultdict(set)
        for interaction_id, entity_id, _rule, interaction_type in rows:
            if interaction_type == name:
                members[entity_id].add(interaction_id)
        frozen = {entity_id: frozenset(group) for entity_id, group in members.items()}
        for interaction_id, entity_id, rule, interaction_type in rows:
            out[(name, interaction_id)] = (frozen.get(entity_id, frozenset()), rule,
                                           interaction_type)
    return out


def _moves(before: _Groups, after: _Groups) -> list[Move]:
    moves = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if (old and old[0]) != (new and new[0]):
            moves.append(Move(key[0], key[1], (new or old or ("", "", ""))[2],
                              tuple(sorted(old[0])) if old else (),
                              tuple(sorted(new[0])) if new else (), new[1] if new else None))
    return moves


def rematch(engine: Engine, *, customer_id: str | None = None,
            dry_run: bool = False) -> RematchReport:
    """Re-match one customer (or every customer) from the stored interactions.

    Args:
        engine: The Akita database.
        customer_id: Only this customer (default: all).
        dry_run: Compute and report, then roll back: nothing is written.

    Returns:
        Live accounts / contacts before and after, links written, every record that moved
        and the open reviews, over the customers re-matched.

    Raises:
        ConfigError: ``customer_id`` is not a customer.
    """
    with engine.connect() as conn:
        ids = [c for (c,) in conn.execute(select(customers.c.id).order_by(customers.c.id))]
    if customer_id is not None:
        if customer_id not in ids:
            raise ConfigError(f"no customer {customer_id!r} (known: {', '.join(ids) or 'none'})")
        ids = [customer_id]
    totals = [0] * 6  # accounts before / after, contacts before / after, links, reviews
    moves: list[Move] = []
    for cid in ids:
        with engine.connect() as conn:
            transaction = conn.begin()
            try:
                old = _groups(conn, cid)
                counts_before = (_live(conn, accounts, cid), _live(conn, contacts, cid))
                links = rematch_customer(conn, cid)
                moves += _moves(old, _groups(conn, cid))
                counts = (counts_before[0], _live(conn, accounts, cid), counts_before[1],
                          _live(conn, contacts, cid), links, _open_reviews(conn, cid))
                totals = [t + c for t, c in zip(totals, counts, strict=True)]
            except BaseException:
                transaction.rollback()
                raise
            if dry_run:
                transaction.rollback()
            else:
                transaction.commit()
    return RematchReport(len(ids), totals[0], totals[1], totals[2], totals[3], totals[4],
                         len(moves), totals[5], dry_run, tuple(moves))


def rematch_all(engine: Engine) -> RematchReport:
    """Re-match every customer; report counts before and after and how many records moved."""
    return rematch(engine)


def _live(conn: Connection, table: Table, customer_id: str) -> int:
    return int(conn.execute(select(func.count()).select_from(table)
                            .where(table.c.customer_id == customer_id,
                                   table.c.merged_into.is_(None))).scalar_one())


def _open_reviews(conn: Connection, customer_id: str) -> int:
    return int(conn.execute(select(func.count()).select_from(match_reviews).where(
        match_reviews.c.customer_id == customer_id, match_reviews.c.status == "open")
    ).scalar_one())
