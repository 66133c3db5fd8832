"""Matching rows of any export without a database: the engine behind ``akita match`` and the
benchmarks.

Rows are plain mappings (a CSV's rows); ``columns`` says which of their fields holds each
attribute the matcher compares. Every row is incoming and there are no existing entities, so
the same tiers as the Processor run within the file: ids, email / domain, fuzzy, review.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from akita_pipelines.core.clock import parse_datetime
from akita_pipelines.processing.features import (
    account_record,
    contact_record,
    cross_ids,
    own_id,
)
from akita_pipelines.processing.keys import record_of
from akita_pipelines.processing.resolve import (
    EntityRef,
    Kind,
    Plan,
    Record,
    Thresholds,
    resolve,
)
from akita_pipelines.util.gcpause import without_gc

#: Attributes a column can be mapped to, per kind.
ATTRIBUTES: Mapping[str, tuple[str, ...]] = {
    "accounts": ("id", "source", "name", "website", "email", "phone", "address", "external_id",
                 "updated_at"),
    "contacts": ("id", "source", "email", "first_name", "middle_name", "last_name", "name",
                 "phone", "address", "birth_date", "company", "external_id", "updated_at"),
}


@dataclass(frozen=True)
class RowMatch:
    """Where one input row went."""

    row: int
    entity: str
    rule: str
    score: float
    review: str | None = None  # the entity it might also be (review band)


def parse_columns(spec: str | None, kind: Kind) -> dict[str, str]:
    """``name=Company,phone=Tel`` → {"name": "Company", "phone": "Tel"} (unknown names refused)."""
    mapping: dict[str, str] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        attr, sep, column = part.partition("=")
        attr, column = attr.strip(), column.strip()
        if not sep or not column:
            raise ValueError(f"--columns: expected attribute=column, got {part!r}")
        if attr not in ATTRIBUTES[kind]:
            raise ValueError(f"--columns: unknown attribute {attr!r} for {kind}; known: "
                             f"{', '.join(ATTRIBUTES[kind])}")
        mapping[attr] = column
    return mapping


def _get(row: Mapping[str, Any], columns: Mapping[str, str], attr: str) -> str | None:
    value = row.get(columns.get(attr, attr))
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _when(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parse_datetime(value)
    except (ValueError, TypeError):
        return None


def to_records(kind: Kind, rows: Sequence[Mapping[str, Any]],
               columns: Mapping[str, str] | None = None) -> list[Record]:
    """Normalise rows into the resolver's records (``rid`` = row number)."""
    columns = columns or {}
    mapped = set(columns.values())
    records: list[Record] = []
    for i, row in enumerate(rows):
        source = _get(row, columns, "source") or "file"
        ids: list[str] = []
        own = _get(row, columns, "id")
        if own:
            ids.append(own_id(source, own))
        external = _get(row, columns, "external_id")
        if external:
            ids.append(f"ext:{external}")
        ids += cross_ids(kind, {k: v for k, v in row.items() if k not in mapped})
        when = _when(_get(row, columns, "updated_at"))
        if kind == "accounts":
            records.append(account_record(
                i, name=_get(row, columns, "name"), website=_get(row, columns, "website"),
                phone=_get(row, columns, "phone"), email=_get(row, columns, "email"),
                address=_get(row, columns, "address"), ids=tuple(sorted(set(ids))),
                source=source, updated_at=when))
        else:
            records.append(contact_record(
                i, email=_get(row, columns, "email"), first_name=_get(row, columns, "first_name"),
                last_name=_get(row, columns, "last_name"), name=_get(row, columns, "name"),
                phone=_get(row, columns, "phone"), address=_get(row, columns, "address"),
                birth_date=_get(row, columns, "birth_date"), company=_get(row, columns, "company"),
                middle_name=_get(row, columns, "middle_name"),
                ids=tuple(sorted(set(ids))),
                source=source, updated_at=when))
    return records


@without_gc
def match_records(kind: Kind, records: Sequence[Record], *,
                  thresholds: Thresholds | None = None,
                  source_priority: Sequence[str] = ()) -> list[RowMatch]:
    """Resolve records among themselves; entity labels are ``A000001`` / ``C000001``."""
    ranks = {s: i for i, s in enumerate(source_priority)}
    plan = resolve(kind, records, None, thresholds=thresholds,
                   source_rank=lambda s: ranks.get(s, len(ranks)))
    return _rows(kind, plan)


def match_rows(kind: Kind, rows: Sequence[Mapping[str, Any]],
               columns: Mapping[str, str] | None = None, *,
               thresholds: Thresholds | None = None,
               source_priority: Sequence[str] = ()) -> list[RowMatch]:
    """Match the rows of an export: one :class:`RowMatch` per row, in input order."""
    return match_records(kind, to_records(kind, rows, columns), thresholds=thresholds,
                         source_priority=source_priority)


def _rows(kind: Kind, plan: Plan) -> list[RowMatch]:
    prefix = "A" if kind == "accounts" else "C"
    labels = {e.key: f"{prefix}{n:06d}" for n, e in enumerate(plan.new_entities, 1)}

    def label(ref: EntityRef) -> str:
        return labels.get(str(ref), str(ref))

    entity_of = {link.interaction_id: label(link.entity) for link in plan.links}
    review: dict[int, str] = {}
    for r in plan.reviews:
        record = record_of(r.candidate)
        target = label(r.candidate) if record is None else entity_of.get(record)
        if target and target != entity_of.get(r.interaction_id):
            review.setdefault(r.interaction_id, target)
    out = [RowMatch(link.interaction_id, label(link.entity), link.rule, link.score,
                    review.get(link.interaction_id)) for link in plan.links]
    return sorted(out, key=lambda m: m.row)


def explain(kind: Kind, a: Record, b: Record,
            thresholds: Thresholds | None = None) -> list[str]:
    """Why two records are (or are not) the same entity, tier by tier, in plain lines.

    Looks at the pair alone: within a whole file a third record can still join them.
    """
    from akita_pipelines.processing.resolve import (
        DEFAULT_THRESHOLDS,
        block_keys,
        names_conflict,
        score_pair,
    )

    th = thresholds or DEFAULT_THRESHOLDS[kind]
    shared = sorted(set(a.ids) & set(b.ids))
    if shared:
        return [f"tier 1 (ids): same entity — both carry {', '.join(shared)}"]
    lines = ["tier 1 (ids): no shared id"]
    rule = "email" if kind == "contacts" else "domain"
    if a.key and a.key == b.key:
        if names_conflict(kind, a, b):
            lines.append(f"tier 2 ({rule}): both {a.key}, but the names clearly differ "
                         f"({a.name!r} vs {b.name!r}) → review band, not merged")
            return lines
        return [*lines, f"tier 2 ({rule}): same entity — both {a.key}"]
    lines.append(f"tier 2 ({rule}): {a.key or '—'} vs {b.key or '—'}: no match")
    blocks = sorted(block_keys(kind, a) & block_keys(kind, b))
    score = score_pair(kind, a, b)
    verdict = ("same entity" if score.total >= th.accept and score.name_evidence
               else "review band" if score.total >= th.review else "different entities")
    if score.total >= th.accept and not score.name_evidence:
        verdict += " (score high enough, but no name evidence: not merged)"
    lines.append(f"tier 3 (fuzzy): blocks shared: {', '.join(blocks) or 'none'}; "
                 f"weight {score.total:+.1f} (accept ≥ {th.accept:g}, review ≥ {th.review:g}), "
                 f"evidence {dict(score.evidence)} → {verdict}")
    return lines
