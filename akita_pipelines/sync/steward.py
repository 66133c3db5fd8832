"""A steward's decisions: accept or reject a review, merge two entities, unmerge, detach.

Each action is stored as must-link / cannot-link pairs of records (``db/decisions.py``),
applied at once by re-matching the records it concerns (so the matcher itself moves them,
under the same rules a sync and a re-match obey) and written to the entities' history. A
later sync, a full re-sync or ``akita rematch`` reads the same decisions and keeps them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping

from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.errors import ConfigError
from akita_pipelines.db import decisions
from akita_pipelines.db.rematch import typed_record
from akita_pipelines.processing.resolve import Kind
from akita_pipelines.sync.process import ProcessResult, process_batch

KINDS: tuple[Kind, ...] = ("accounts", "contacts")


class StewardError(ConfigError):
    """An unknown id or an action that does not apply; the message says which."""


@dataclass(frozen=True)
class Outcome:
    """What an action did, in a sentence, and the entity the records ended up in."""

    message: str
    kind: str
    entity_id: int | None
    decision_ids: tuple[int, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"message": self.message, "kind": self.kind, "entity_id": self.entity_id,
                "decisions": list(self.decision_ids)}


def _kind(kind: str) -> Kind:
    if kind == "accounts":
        return "accounts"
    if kind == "contacts":
        return "contacts"
    raise StewardError(f"unknown kind {kind!r}: accounts or contacts")


def _live(conn: Connection, kind: Kind, entity_id: int) -> tuple[int, str]:
    """(live id, customer) of an entity, following merges; a clear error when unknown."""
    live = decisions.live_entity(conn, kind, entity_id)
    if live is None:
        raise StewardError(f"no {kind[:-1]} {entity_id}")
    row = decisions.entity_row(conn, kind, live)
    assert row is not None
    return live, str(row["customer_id"])


def _records(conn: Connection, kind: Kind, entity_id: int) -> list[int]:
    found = decisions.members(conn, kind, entity_id)
    if not found:
        raise StewardError(f"{kind[:-1]} {entity_id} holds no {kind} record")
    return found


def _rematch_records(conn: Connection, customer_id: str, interaction_ids: Iterable[int],
                     first: int | None = None) -> None:
    """Re-match some stored records now, in the caller's transaction (decisions included);
    the batch holding ``first`` goes first (a part that must leave its entity leaves it
    before the records pinned to it are matched)."""
    by_source: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for row in decisions.interaction_rows(conn, set(interaction_ids)):
        by_source[(row["integration_id"], row["interaction_type"])].append(row)
    now = utcnow()
    for (integration_id, interaction_type), rows in sorted(
            by_source.items(), key=lambda kv: (all(r["id"] != first for r in kv[1]), kv[0])):
        process_batch(conn, customer_id=customer_id, integration_id=integration_id,
                      records=[typed_record(r) for r in rows], now=now,
                      result=ProcessResult(integration_id, interaction_type))


def _entity_of(conn: Connection, kind: Kind, interaction_id: int) -> int | None:
    link = decisions.link_of(conn, kind, interaction_id)
    return None if link is None else int(link["entity_id"])


def _pin_parts(conn: Connection, *, customer_id: str, kind: Kind, action: str,
               parts: Collection[Collection[int]], actor: str, reason: str | None) -> list[int]:
    """Hold each part together and the parts apart: must-links from each part's first record
    to the others, cannot-links between the parts' first records. Any decision in force that
    joins two parts is lifted."""
    now = utcnow()
    listed = [sorted(p) for p in parts if p]
    for i, left in enumerate(listed):
        for right in listed[i + 1:]:
            joining = decisions.between(conn, customer_id, kind, set(left), set(right),
                                        link="must")
            decisions.revoke(conn, [d.id for d in joining], by=None, now=now)
    ids: list[int] = []
    anchors = [p[0] for p in listed]
    for i, a in enumerate(anchors):
        ids += decisions.record(conn, customer_id=customer_id, kind=kind, action=action,
                                link="cannot", pairs=[(a, b) for b in anchors[i + 1:]],
                                actor=actor, reason=reason, now=now)
    for part in listed:
        ids += decisions.record(conn, customer_id=customer_id, kind=kind, action=action,
                                link="must", pairs=[(part[0], x) for x in part[1:]],
                                actor=actor, reason=reason, now=now)
    return ids


# ---------------------------------------------------------------- the review band


def _open_review(conn: Connection, review_id: int
                 ) -> tuple[RowMapping, Kind, str, int, int]:
    """An open review: its row, kind, customer, record and the candidate's live entity."""
    review = decisions.review(conn, review_id)
    if review is None:
        raise StewardError(f"no review {review_id}")
    if review["status"] != "open":
        raise StewardError(f"review {review_id} is {review['status']} already")
    kind = _kind(review["kind"])
    candidate, _ = _live(conn, kind, int(review["candidate_id"]))
    return review, kind, review["customer_id"], int(review["interaction_id"]), candidate


def _close_review(conn: Connection, review: RowMapping, status: str, *, kind: Kind,
                  action: str, actor: str, reason: str | None, now: datetime,
                  other_entity: int | None, anchor: int, decision: int,
                  details: Mapping[str, Any] | None = None) -> int | None:
    """Close a review the steward decided, once its records are re-matched: its status, and
    the entities' history (who, why, which decision); the record's entity now."""
    record = int(review["interaction_id"])
    after = _entity_of(conn, kind, record)
    decisions.set_review_status(conn, [int(review["id"])], status)
    decisions.add_history(conn, customer_id=review["customer_id"], kind=kind, action=action,
                          actor=actor, now=now, entity_id=after, other_entity_id=other_entity,
                          interaction_id=record, other_interaction_id=anchor,
                          decision_id=decision, reason=reason,
                          details={"review": int(review["id"]), "rule": review["rule"],
                                   "score": review["score"], **(details or {})})
    return after


def accept_review(engine: Engine, review_id: int, *, actor: str,
                  reason: str | None = None) -> Outcome:
    """The record of a review is the candidate entity: they merge, and stay merged."""
    with engine.begin() as conn:
        review, kind, customer_id, record, candidate = _open_review(conn, review_id)
        before = _entity_of(conn, kind, record)
        theirs = _records(conn, kind, candidate)
        anchor = theirs[0]
        mine = set(decisions.members(conn, kind, before)) if before else {record}
        now = utcnow()
        # Every record of both sides, as the steward saw them: a later change of the merged
        # golden record must not let the matcher drop one of them on a re-match.
        ids = decisions.record(conn, customer_id=customer_id, kind=kind, action="accept",
                               link="must", pairs=[(record, x) for x in sorted(
                                   (mine | set(theirs)) - {record})],
                               actor=actor, reason=reason, now=now, review_id=review_id)
        # A cannot-link from an earlier reject of the same pair's entities goes too.
        apart = decisions.between(conn, customer_id, kind, mine, set(theirs), link="cannot")
        decisions.revoke(conn, [d.id for d in apart], by=ids[0], now=now)
        _rematch_records(conn, customer_id, [record])
        after = _close_review(conn, review, "merged", kind=kind, action="accept", actor=actor,
                              reason=reason, now=now, other_entity=before, anchor=anchor,
                              decision=ids[0], details={"candidate": candidate,
                                                        "parts": [sorted(mine), theirs]})
    return Outcome(f"review {review_id} accepted: record {record} is {kind[:-1]} {after} "
                   f"(was {before}, candidate {candidate})", kind, after, tuple(ids))


def reject_review(engine: Engine, review_id: int, *, actor: str,
                  reason: str | None = None) -> Outcome:
    """The record of a review is never the candidate entity (split off if it is there now)."""
    with engine.begin() as conn:
        review, kind, customer_id, record, candidate = _open_review(conn, review_id)
        others = [i for i in _records(conn, kind, candidate) if i != record]
        if not others:
            raise StewardError(f"review {review_id}: {kind[:-1]} {candidate} holds only "
                               f"record {record} itself")
        anchor = others[0]
        now = utcnow()
        joining = decisions.between(conn, customer_id, kind, {record}, set(others), link="must")
        ids = decisions.record(conn, customer_id=customer_id, kind=kind, action="reject",
                               link="cannot", pairs=[(record, anchor)], actor=actor,
                               reason=reason, now=now, review_id=review_id)
        decisions.revoke(conn, [d.id for d in joining], by=ids[0], now=now)
        if _entity_of(conn, kind, record) == candidate:
            _rematch_records(conn, customer_id, [record])
        after = _close_review(conn, review, "rejected", kind=kind, action="reject", actor=actor,
                              reason=reason, now=now, other_entity=candidate, anchor=anchor,
                              decision=ids[0])
    return Outcome(f"review {review_id} rejected: record {record} stays apart from "
                   f"{kind[:-1]} {candidate} (it is in {after})", kind, after, tuple(ids))


# ---------------------------------------------------------------- entities


def merge(engine: Engine, kind: str, first: int, second: int, *, actor: str,
          reason: str | None = None) -> Outcome:
    """Two entities are one: they merge now and after every later sync or re-match."""
    k = _kind(kind)
    with engine.begin() as conn:
        a, customer_a = _live(conn, k, first)
        b, customer_b = _live(conn, k, second)
        if customer_a != customer_b:
            raise StewardError(f"{k} {first} and {second} belong to different customers")
        if a == b:
            raise StewardError(f"{k[:-1]} {first} and {second} are one {k[:-1]} ({a}) already")
        left, right = _records(conn, k, a), _records(conn, k, b)
        now = utcnow()
        # Every record of both, as the steward saw them (see accept_review).
        ids = decisions.record(conn, customer_id=customer_a, kind=k, action="merge",
                               link="must", pairs=[(left[0], x) for x in left[1:] + right],
                               actor=actor, reason=reason, now=now)
        apart = decisions.between(conn, customer_a, k, set(left), set(right), link="cannot")
        decisions.revoke(conn, [d.id for d in apart], by=ids[0], now=now)
        _rematch_records(conn, customer_a, [left[0]])
        survivor = _entity_of(conn, k, left[0])
        settled = decisions.reviews_between(conn, k, left, [b]) + \
            decisions.reviews_between(conn, k, right, [a])
        decisions.set_review_status(conn, settled, "merged")
        decisions.add_history(conn, customer_id=customer_a, kind=k, action="merge", actor=actor,
                              now=now, entity_id=survivor, other_entity_id=b if survivor == a
                              else a, interaction_id=left[0], other_interaction_id=right[0],
                              decision_id=ids[0], reason=reason,
                              details={"merged": [a, b], "records": len(left) + len(right),
                                       "reviews_settled": settled, "parts": [left, right]})
    return Outcome(f"{k} {a} and {b} merged into {survivor} "
                   f"({len(left) + len(right)} records)", k, survivor, tuple(ids))


def unmerge(engine: Engine, kind: str, entity_id: int, *, record: int | None = None,
            actor: str, reason: str | None = None) -> Outcome:
    """Split an entity back into the parts its latest merge joined, or (``record``) detach
    one record from it; the parts stay apart after every later sync or re-match."""
    k = _kind(kind)
    with engine.begin() as conn:
        live, customer_id = _live(conn, k, entity_id)
        held = _records(conn, k, live)
        now = utcnow()
        last = None
        if record is not None:
            if record not in held:
                raise StewardError(f"record {record} is not in {k[:-1]} {live}")
            rest = [i for i in held if i != record]
            if not rest:
                raise StewardError(f"record {record} is the only record of {k[:-1]} {live}")
            parts: list[list[int]] = [[record], rest]
            action, what = "detach", f"record {record} detached from {k[:-1]} {live}"
        else:
            action = "unmerge"
            last = decisions.latest_merge(conn, k, live)
            steward_parts = _steward_merge_parts(conn, customer_id, k, held)
            if last is not None:
                from akita_pipelines.db.entities import unmerge as undo_merge

                undo_merge(conn, int(last["id"]), now)
                parts = [_records(conn, k, live), decisions.members(conn, k,
                                                                     int(last["absorbed_id"]))]
                if not parts[1]:
                    raise StewardError(f"{k[:-1]} {last['absorbed_id']} came back without "
                                       "records")
                what = f"{k[:-1]} {live} split: {last['absorbed_id']} is separate again"
            elif steward_parts is not None:
                # A re-match rebuilt the entities since (merge rows go with them): the parts
                # the steward's merge joined are in its history.
                parts = steward_parts
                what = f"{k[:-1]} {live} split back into the parts a steward's merge joined"
            else:
                raise StewardError(f"{k[:-1]} {live} has no merge to undo "
                                   f"(detach a record with --record)")
        ids = _pin_parts(conn, customer_id=customer_id, kind=k, action=action, parts=parts,
                         actor=actor, reason=reason)
        if action == "detach" or last is None:
            # The matcher moves the leaving part out, obeying the decisions just stored.
            leaving = parts[0] if action == "detach" else parts[1]
            _rematch_records(conn, customer_id, held, first=leaving[0])
        other = _entity_of(conn, k, parts[0][0])
        decisions.add_history(conn, customer_id=customer_id, kind=k, action=action, actor=actor,
                              now=now, entity_id=live, other_entity_id=other,
                              interaction_id=parts[1][0], other_interaction_id=parts[0][0],
                              decision_id=ids[0] if ids else None, reason=reason,
                              details={"parts": [len(p) for p in parts]})
    return Outcome(f"{what} ({' + '.join(str(len(p)) for p in parts)} records)", k,
                   other, tuple(ids))


def _steward_merge_parts(conn: Connection, customer_id: str, kind: Kind,
                         held: list[int]) -> list[list[int]] | None:
    """The parts of the newest steward merge (or accept) still in force in an entity."""
    members = set(held)
    for row in reversed(decisions.history(conn, customer_id, kind, held)):
        recorded = (row["details"] or {}).get("parts")
        if row["action"] not in ("merge", "accept") or not recorded or \
                not decisions.in_force(conn, row["decision_id"]):
            continue
        parts = [[i for i in part if i in members] for part in recorded]
        if all(parts):
            return parts
    return None


def history(engine: Engine, kind: str, entity_id: int) -> list[dict[str, Any]]:
    """Every steward action and automatic merge that concerns an entity's records."""
    k = _kind(kind)
    with engine.connect() as conn:
        live, customer_id = _live(conn, k, entity_id)
        rows = decisions.history(conn, customer_id, k, decisions.members(conn, k, live))
    return [dict(r) for r in rows]


def explain(engine: Engine, kind: str, entity_id: int, other: int | None = None) -> list[str]:
    """Why an entity's records are together (each record's rule, the decisions that pin them)
    or, with ``other``, what keeps two entities apart."""
    k = _kind(kind)
    with engine.connect() as conn:
        live, customer_id = _live(conn, k, entity_id)
        held = decisions.members(conn, k, live)
        merged = f" (now holding {entity_id})" if live != entity_id else ""
        lines = [f"{k[:-1]} {live}{merged}: {len(held)} record{'' if len(held) == 1 else 's'}"]
        if other is None:
            links = decisions.links_of(conn, k, held)
            rows = {r["id"]: r for r in decisions.interaction_rows(conn, held)}
            for i in held:
                link, row = links[i], rows[i]
                lines.append(f"  record {i} ({row['integration_id']} {row['external_id']}, "
                             f"{_label(row)}): rule {link['rule']}, score {link['score']:.2f}"
                             + (f", evidence {dict(link['evidence'])}" if link["evidence"]
                                else ""))
            mine = set(held)
            found = [d for d in decisions.active(conn, customer_id, k)
                     if d.interaction_id in mine or d.other_interaction_id in mine]
            for d in found:
                outside = next((i for i in (d.interaction_id, d.other_interaction_id)
                                if i not in mine), None)
                where = "" if outside is None else \
                    f" (record {outside} is in {k[:-1]} {_entity_of(conn, k, outside)})"
                lines.append(f"  decision {d.id}: {d.action} by {d.actor} on "
                             f"{d.created_at:%Y-%m-%d %H:%M}: records {d.interaction_id} and "
                             f"{d.other_interaction_id} {_verb(d.link)}{where}"
                             + (f" ({d.reason})" if d.reason else ""))
            if not found:
                lines.append("  no steward decision: the matcher's rules alone hold it")
            return lines
        other_live, other_customer = _live(conn, k, other)
        if other_customer != customer_id:
            raise StewardError(f"{k} {entity_id} and {other} belong to different customers")
        if other_live == live:
            return [*lines, f"  {k[:-1]} {other} is the same {k[:-1]} ({live})"]
        theirs = decisions.members(conn, k, other_live)
        found = decisions.between(conn, customer_id, k, set(held), set(theirs))
        for d in found:
            lines.append(f"  decision {d.id}: {d.action} by {d.actor} on "
                         f"{d.created_at:%Y-%m-%d %H:%M}: records {d.interaction_id} and "
                         f"{d.other_interaction_id} {_verb(d.link)}"
                         + (f" ({d.reason})" if d.reason else ""))
        if found:
            return lines
        lines.append(f"  no steward decision keeps it apart from {k[:-1]} {other_live}; "
                     "the matcher's rules on their first records:")
        return lines + [f"    {line}" for line in _pair_explained(conn, k, held[0], theirs[0])]


def _pair_explained(conn: Connection, kind: Kind, a: int, b: int) -> list[str]:
    from akita_pipelines.processing.features import account_record, address_of, contact_record
    from akita_pipelines.processing.match import explain as explain_pair

    records = []
    for row in decisions.interaction_rows(conn, [a, b]):
        if kind == "accounts":
            records.append(account_record(row["id"], name=row["name"], website=row["website"],
                                          phone=row["phone"], email=row["email"],
                                          address=address_of(row["fields"] or {})))
        else:
            records.append(contact_record(row["id"], email=row["email"],
                                          first_name=row["first_name"],
                                          last_name=row["last_name"], name=row["name"],
                                          phone=row["phone"],
                                          address=address_of(row["fields"] or {})))
    return explain_pair(kind, records[0], records[1])


def _verb(link: str) -> str:
    return "held together" if link == "must" else "kept apart"


def _label(row: Any) -> str:
    if row["interaction_type"] == "contacts":
        name = " ".join(p for p in (row["first_name"], row["last_name"]) if p) or row["name"]
        return ", ".join(str(p) for p in (name, row["email"]) if p) or "no name"
    return ", ".join(str(p) for p in (row["name"], row["domain"]) if p) or "no name"


def review_rows(engine: Engine, *, customer_id: str | None = None,
                status: str | None = "open") -> list[dict[str, Any]]:
    """The review band, with each candidate's name (for ``akita reviews list``)."""
    with engine.connect() as conn:
        rows = [dict(r) for r in decisions.reviews(conn, customer_id=customer_id,
                                                    status=status)]
        for row in rows:
            candidate = decisions.entity_row(conn, row["kind"], row["candidate_id"])
            row["candidate_name"] = None if candidate is None else candidate["name"]
            row["record"] = _label({**row, "name": row["record_name"],
                                    "email": row["record_email"], "domain": None,
                                    "interaction_type": row["kind"]})
    return rows
