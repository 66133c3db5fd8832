"""Steward decisions, entity history and the review band: reads and writes.

A decision holds two interactions together (``must``) or apart (``cannot``). Interaction ids
survive re-matches and re-syncs, entity ids do not, so decisions name records and the matcher
is told, per batch, which entities those records sit in now (:func:`constrain`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, func, or_, select, update
from sqlalchemy.sql import ColumnElement

from akita_pipelines.db.dialect import among
from akita_pipelines.db.entities import TABLES, load_profiles
from akita_pipelines.db.schema import (
    entity_history,
    entity_merges,
    interactions,
    match_decisions,
    match_reviews,
)
from akita_pipelines.processing.keys import record_of
from akita_pipelines.processing.resolve import Existing


@dataclass(frozen=True)
class Decision:
    id: int
    customer_id: str
    kind: str
    action: str
    link: str  # must | cannot
    interaction_id: int
    other_interaction_id: int
    review_id: int | None
    actor: str
    reason: str | None
    created_at: datetime


def _decision(row: RowMapping) -> Decision:
    return Decision(row["id"], row["customer_id"], row["kind"], row["action"], row["link"],
                    row["interaction_id"], row["other_interaction_id"], row["review_id"],
                    row["actor"], row["reason"], row["created_at"])


def active(conn: Connection, customer_id: str, kind: str) -> list[Decision]:
    """The customer's decisions in force for one kind, oldest first."""
    rows = conn.execute(select(match_decisions).where(
        match_decisions.c.customer_id == customer_id, match_decisions.c.kind == kind,
        match_decisions.c.revoked_at.is_(None)).order_by(match_decisions.c.id)).mappings()
    return [_decision(r) for r in rows]


def between(conn: Connection, customer_id: str, kind: str, left: Collection[int],
            right: Collection[int], *, link: str | None = None) -> list[Decision]:
    """Decisions in force with one record in ``left`` and the other in ``right``."""
    return [d for d in active(conn, customer_id, kind)
            if (link is None or d.link == link)
            and ((d.interaction_id in left and d.other_interaction_id in right)
                 or (d.interaction_id in right and d.other_interaction_id in left))]


def record(conn: Connection, *, customer_id: str, kind: str, action: str, link: str,
           pairs: Iterable[tuple[int, int]], actor: str, reason: str | None, now: datetime,
           review_id: int | None = None) -> list[int]:
    """Store decisions on pairs of records; an earlier decision on the same pair is revoked
    (the latest word on a pair holds). Returns the new ids, in ``pairs`` order."""
    wanted = [(a, b) for a, b in pairs if a != b]
    if not wanted:
        return []
    ids: list[int] = []
    for a, b in wanted:
        ids.append(int(conn.execute(match_decisions.insert().returning(match_decisions.c.id), {
            "customer_id": customer_id, "kind": kind, "action": action, "link": link,
            "interaction_id": a, "other_interaction_id": b, "review_id": review_id,
            "actor": actor, "reason": reason, "created_at": now}).scalar_one()))
    earlier = [d.id for d in active(conn, customer_id, kind)
               if d.id not in ids and ((d.interaction_id, d.other_interaction_id) in wanted
                                       or (d.other_interaction_id, d.interaction_id) in wanted)]
    revoke(conn, earlier, by=ids[0], now=now)
    return ids


def in_force(conn: Connection, decision_id: int | None) -> bool:
    """Whether a decision exists and no later one lifted it."""
    if decision_id is None:
        return False
    return conn.execute(select(match_decisions.c.id).where(
        match_decisions.c.id == decision_id, match_decisions.c.revoked_at.is_(None))
    ).first() is not None


def revoke(conn: Connection, decision_ids: Sequence[int], *, by: int | None,
           now: datetime) -> int:
    """Lift decisions (a later one contradicts them); returns how many."""
    if not decision_ids:
        return 0
    conn.execute(update(match_decisions).where(match_decisions.c.id.in_(sorted(decision_ids)))
                 .values(revoked_at=now, revoked_by=by))
    return len(decision_ids)


def constrain(conn: Connection, customer_id: str, kind: str, existing: Existing,
              batch: Collection[int], rank: Callable[[str], int]) -> None:
    """Tell the matcher the decisions that concern a batch, in terms of today's entities.

    Two queries, each side of a decision joined to the entity its record is linked to: the
    decisions naming a record of the batch (by index), and every cannot-link in force (one
    per steward action; the many must-links that pin an entity's records are not read). A
    record of the batch whose partner sits in an entity is pinned to it or kept from it; two
    records of the batch are held together or apart; two existing entities kept apart by a
    decision may not be bridged.
    """
    _, links, column = TABLES[kind]
    side_a, side_b = links.alias("side_a"), links.alias("side_b")
    d = match_decisions
    query = (select(d.c.id, d.c.link, d.c.interaction_id, d.c.other_interaction_id,
                    side_a.c[column], side_b.c[column])
             .select_from(d.outerjoin(side_a, side_a.c.interaction_id == d.c.interaction_id)
                          .outerjoin(side_b, side_b.c.interaction_id
                                     == d.c.other_interaction_id))
             .where(d.c.customer_id == customer_id, d.c.kind == kind, d.c.revoked_at.is_(None)))
    listed = sorted(set(batch))
    rows = {row[0]: row[1:] for row in conn.execute(query.where(d.c.link == "cannot"))}
    if listed:
        rows.update({row[0]: row[1:] for row in conn.execute(query.where(
            or_(among(conn, d.c.interaction_id, listed),
                among(conn, d.c.other_interaction_id, listed))))})
    if not rows:
        return
    members = set(listed)
    for _, (link, a, b, entity_a, entity_b) in sorted(rows.items()):
        must = link == "must"
        if a in members and b in members:
            (existing.together if must else existing.kept_apart).append((a, b))
            continue
        for mine, theirs in ((a, entity_b), (b, entity_a)):
            if mine in members and theirs is not None:
                (existing.pinned if must else existing.apart).setdefault(mine, set()).add(theirs)
        if a not in members and b not in members and not must and entity_a is not None \
                and entity_b is not None and entity_a != entity_b \
                and (entity_a in existing.profiles or entity_b in existing.profiles):
            existing.entities_apart.append((entity_a, entity_b))
    missing = {e for es in existing.pinned.values() for e in es} - set(existing.profiles)
    if missing:
        existing.profiles.update(load_profiles(conn, kind, missing, rank))


def decided(existing: Existing, interaction_id: int, candidate: object,
            linked: int | None) -> bool:
    """Whether a steward already settled a review the matcher is about to record."""
    other = record_of(candidate)
    if other is not None:
        pair = {(interaction_id, other), (other, interaction_id)}
        return bool(pair & set(existing.kept_apart) or pair & set(existing.together))
    if not isinstance(candidate, int):
        return False
    if candidate in existing.apart.get(interaction_id, ()) or \
            candidate in existing.pinned.get(interaction_id, ()):
        return True
    return linked is not None and ((linked, candidate) in existing.entities_apart
                                   or (candidate, linked) in existing.entities_apart)


# ---------------------------------------------------------------- entities and their records


def entity_row(conn: Connection, kind: str, entity_id: int) -> RowMapping | None:
    table = TABLES[kind][0]
    return conn.execute(select(table).where(table.c.id == entity_id)).mappings().one_or_none()


def live_entity(conn: Connection, kind: str, entity_id: int) -> int | None:
    """The live entity ``entity_id`` is now (following merges); None when unknown."""
    seen: set[int] = set()
    current: int | None = entity_id
    while current is not None and current not in seen:
        seen.add(current)
        row = entity_row(conn, kind, current)
        if row is None:
            return None
        if row["merged_into"] is None:
            return current
        current = row["merged_into"]
    return None


def members(conn: Connection, kind: str, entity_id: int) -> list[int]:
    """The records (interactions of the entity's own type) linked to an entity, by id."""
    _, links, column = TABLES[kind]
    return [i for (i,) in conn.execute(
        select(links.c.interaction_id).join(interactions,
                                            interactions.c.id == links.c.interaction_id)
        .where(links.c[column] == entity_id, interactions.c.interaction_type == kind)
        .order_by(links.c.interaction_id))]


def link_of(conn: Connection, kind: str, interaction_id: int) -> RowMapping | None:
    """The link of one record: entity, rule, score, evidence."""
    _, links, column = TABLES[kind]
    return conn.execute(select(links.c[column].label("entity_id"), links.c.rule, links.c.score,
                               links.c.evidence)
                        .where(links.c.interaction_id == interaction_id)).mappings().one_or_none()


def links_of(conn: Connection, kind: str, interaction_ids: Collection[int]
             ) -> dict[int, RowMapping]:
    """Several records' links (entity, rule, score, evidence), by interaction id."""
    if not interaction_ids:
        return {}
    _, links, column = TABLES[kind]
    rows = conn.execute(select(links.c.interaction_id, links.c[column].label("entity_id"),
                               links.c.rule, links.c.score, links.c.evidence)
                        .where(among(conn, links.c.interaction_id, sorted(interaction_ids)))
                        ).mappings()
    return {r["interaction_id"]: r for r in rows}


def interaction_rows(conn: Connection, interaction_ids: Collection[int]) -> list[RowMapping]:
    """Stored interactions by id (to re-match them, or to show them)."""
    if not interaction_ids:
        return []
    return list(conn.execute(select(interactions).where(
        among(conn, interactions.c.id, sorted(interaction_ids))).order_by(interactions.c.id))
        .mappings())


def latest_merge(conn: Connection, kind: str, survivor_id: int) -> RowMapping | None:
    """The newest merge into ``survivor_id`` not undone yet."""
    return conn.execute(select(entity_merges).where(
        entity_merges.c.kind == kind, entity_merges.c.survivor_id == survivor_id,
        entity_merges.c.unmerged_at.is_(None)).order_by(entity_merges.c.id.desc()).limit(1)
    ).mappings().first()


# ---------------------------------------------------------------- history


def add_history(conn: Connection, *, customer_id: str, kind: str, action: str, actor: str,
                now: datetime, entity_id: int | None = None,
                other_entity_id: int | None = None, interaction_id: int | None = None,
                other_interaction_id: int | None = None, decision_id: int | None = None,
                reason: str | None = None, details: Mapping[str, Any] | None = None) -> None:
    conn.execute(entity_history.insert(), {
        "customer_id": customer_id, "kind": kind, "action": action, "actor": actor,
        "entity_id": entity_id, "other_entity_id": other_entity_id,
        "interaction_id": interaction_id, "other_interaction_id": other_interaction_id,
        "decision_id": decision_id, "reason": reason, "details": dict(details or {}),
        "created_at": now})


def history(conn: Connection, customer_id: str, kind: str,
            records: Collection[int]) -> list[RowMapping]:
    """What happened to an entity, oldest first: every row naming one of its records (entity
    ids change on a re-match, the records stay)."""
    if not records:
        return []
    wanted = sorted(records)
    clause: ColumnElement[bool] = or_(among(conn, entity_history.c.interaction_id, wanted),
                                      among(conn, entity_history.c.other_interaction_id, wanted))
    return list(conn.execute(select(entity_history).where(
        entity_history.c.customer_id == customer_id, entity_history.c.kind == kind, clause)
        .order_by(entity_history.c.id)).mappings())


# ---------------------------------------------------------------- the review band


def open_review_counts(conn: Connection, customer_id: str | None = None
                       ) -> dict[tuple[str, str], int]:
    """Open reviews per (customer, kind): what a steward has left to decide."""
    query = (select(match_reviews.c.customer_id, match_reviews.c.kind, func.count())
             .where(match_reviews.c.status == "open")
             .group_by(match_reviews.c.customer_id, match_reviews.c.kind))
    if customer_id is not None:
        query = query.where(match_reviews.c.customer_id == customer_id)
    return {(c, k): int(n) for c, k, n in conn.execute(query)}


def reviews(conn: Connection, *, customer_id: str | None = None, status: str | None = "open",
            kind: str | None = None) -> list[RowMapping]:
    """Review rows with the record's name and email, oldest first."""
    conditions: list[ColumnElement[bool]] = []
    if customer_id is not None:
        conditions.append(match_reviews.c.customer_id == customer_id)
    if status is not None:
        conditions.append(match_reviews.c.status == status)
    if kind is not None:
        conditions.append(match_reviews.c.kind == kind)
    query = (select(match_reviews, interactions.c.name.label("record_name"),
                    interactions.c.email.label("record_email"),
                    interactions.c.first_name, interactions.c.last_name,
                    interactions.c.integration_id, interactions.c.external_id)
             .join(interactions, interactions.c.id == match_reviews.c.interaction_id)
             .where(*conditions).order_by(match_reviews.c.id))
    return list(conn.execute(query).mappings())


def review(conn: Connection, review_id: int) -> RowMapping | None:
    return conn.execute(select(match_reviews).where(match_reviews.c.id == review_id)
                        ).mappings().one_or_none()


def set_review_status(conn: Connection, review_ids: Sequence[int], status: str) -> None:
    if review_ids:
        conn.execute(update(match_reviews).where(match_reviews.c.id.in_(sorted(review_ids)))
                     .values(status=status))


def reviews_between(conn: Connection, kind: str, records: Collection[int],
                    entity_ids: Collection[int]) -> list[int]:
    """Open reviews of ``records`` against ``entity_ids`` (settled by a decision on them)."""
    if not records or not entity_ids:
        return []
    return [i for (i,) in conn.execute(select(match_reviews.c.id).where(
        match_reviews.c.kind == kind, match_reviews.c.status == "open",
        among(conn, match_reviews.c.interaction_id, sorted(records)),
        match_reviews.c.candidate_id.in_(sorted(entity_ids))))]
