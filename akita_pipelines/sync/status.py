"""Per-Integration-Object health: ok / late / failing / needs_reauth / disabled."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from akita_pipelines.db.state import ObjectRow


@dataclass(frozen=True)
class ObjectStatus:
    integration_id: str
    provider: str
    customer_id: str
    interaction_type: str
    frequency_per_day: float
    last_synced_at: datetime | None
    next_due_at: datetime | None
    status: str
    consecutive_failures: int
    last_error: str | None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("last_synced_at", "next_due_at"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


def health(obj: ObjectRow, now: datetime) -> str:
    """Dagster freshness is per asset; this is per Integration Object: late once it has been
    due for more than one whole period of its own frequency."""
    if obj.integration_state == "disabled" or not obj.enabled:
        return "disabled"
    if obj.integration_state == "needs_reauth":
        return "needs_reauth"
    if obj.state == "failing":
        return "failing"
    period = timedelta(days=1 / obj.frequency_per_day)
    if obj.next_due_at is not None and now - obj.next_due_at > period:
        return "late"
    return "ok"


def object_status(obj: ObjectRow, now: datetime) -> ObjectStatus:
    return ObjectStatus(obj.integration_id, obj.provider, obj.customer_id, obj.interaction_type,
                        obj.frequency_per_day, obj.last_synced_at, obj.next_due_at,
                        health(obj, now), obj.consecutive_failures, obj.last_error)


#: The rule of :func:`health`'s ``late``, in words for the UI.
LATE_RULE = ("late = due for longer than one whole period of its own sync frequency "
             "(24 h / syncs per day), the rule of `akita status`")


def late_since(obj: ObjectRow) -> datetime | None:
    """When the object turns (or turned) late if it does not sync: one period after due."""
    if obj.next_due_at is None:
        return None
    return obj.next_due_at + timedelta(days=1 / obj.frequency_per_day)


def late_by_asset(objects: Iterable[ObjectRow],
                  now: datetime) -> dict[tuple[str, str], list[ObjectRow]]:
    """Late objects grouped by (provider, interaction type), most overdue first."""
    found: dict[tuple[str, str], list[ObjectRow]] = {}
    for obj in objects:
        if health(obj, now) == "late":
            found.setdefault((obj.provider, obj.interaction_type), []).append(obj)
    for group in found.values():
        group.sort(key=lambda o: o.next_due_at or now)
    return found
