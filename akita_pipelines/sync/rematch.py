"""Re-match a customer's Accounts and Contacts from the stored interactions.

Used when matching rules change: entities and links are rebuilt from scratch, in one
transaction per customer, in the same dependency order as a sync (accounts, contacts, the rest).
Steward decisions (``match_decisions``) are kept and obeyed; a dry run rolls the transaction
back and reports what would move.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import Connection, Engine

from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.errors import ConfigError
from akita_pipelines.core.types import STANDARD_TYPES
from akita_pipelines.db import rematch as repo
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


def rematch_customer(conn: Connection, customer_id: str, batch_size: int = 5000) -> int:
    """Rebuild one customer's entities and links; returns the number of links written."""
    repo.clear_matches(conn, customer_id)
    result = ProcessResult(customer_id, "*")
    now = utcnow()
    types = repo.stored_types(conn, customer_id)
    ordered = [t for t in STANDARD_TYPES if t in types] + sorted(set(types) - set(STANDARD_TYPES))
    for interaction_type in ordered:
        for integration_id in repo.integrations_with(conn, customer_id, interaction_type):
            for records in repo.stored_batches(conn, integration_id, interaction_type,
                                               batch_size):
                process_batch(conn, customer_id=customer_id, integration_id=integration_id,
                              records=records, now=now, result=result)
    return result.linked


#: (link table, interaction) → (the entity's own records, the link's rule, interaction type)
_Groups = dict[tuple[str, int], tuple[frozenset[int], str, str]]


def _groups(conn: Connection, customer_id: str) -> _Groups:
    """Each linked interaction → the records of its entity's own kind (an Account is the
    account records it groups; ids change on a re-match, the grouping is what a user sees
    move), its link's rule and its type. A deal newly linked moves itself, not its account."""
    out: _Groups = {}
    for name in ("accounts", "contacts"):
        rows = repo.link_rows(conn, customer_id, name)
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
        ids = repo.customer_ids(conn)
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
                counts_before = (repo.live_entities(conn, "accounts", cid),
                                 repo.live_entities(conn, "contacts", cid))
                links = rematch_customer(conn, cid)
                moves += _moves(old, _groups(conn, cid))
                counts = (counts_before[0], repo.live_entities(conn, "accounts", cid),
                          counts_before[1], repo.live_entities(conn, "contacts", cid), links,
                          repo.open_reviews(conn, cid))
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

