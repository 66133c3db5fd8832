"""The alert outbox's rows: alerts, and one delivery per channel and recipient."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select, update

from akita_pipelines.db.schema import alert_deliveries, alerts, customers


def recent_alerts(conn: Connection, incident_key: str, limit: int = 200) -> list[Any]:
    """The incident's latest alerts, newest first: rows with ``kind`` and ``created_at``."""
    return list(conn.execute(select(alerts.c.kind, alerts.c.created_at)
                             .where(alerts.c.incident_key == incident_key)
                             .order_by(alerts.c.id.desc()).limit(limit)).all())


def last_alert_kind(conn: Connection, incident_key: str) -> str | None:
    return conn.execute(select(alerts.c.kind).where(alerts.c.incident_key == incident_key)
                        .order_by(alerts.c.id.desc()).limit(1)).scalar_one_or_none()


def insert_alert(conn: Connection, values: Mapping[str, Any]) -> int:
    """Store one alert row; its id."""
    return int(conn.execute(alerts.insert().values(**values))
               .inserted_primary_key[0])  # type: ignore[index]


def admin_email(conn: Connection, customer_id: str) -> str | None:
    return conn.execute(select(customers.c.admin_email)
                        .where(customers.c.id == customer_id)).scalar_one_or_none()


def insert_deliveries(conn: Connection, alert_id: int,
                      deliveries: Iterable[tuple[str, str]]) -> None:
    """One pending delivery per (channel, recipient)."""
    rows = [{"alert_id": alert_id, "channel": c, "recipient": r, "status": "pending",
             "attempts": 0} for c, r in deliveries]
    if rows:
        conn.execute(alert_deliveries.insert(), rows)


def pending_deliveries(conn: Connection) -> Sequence[Any]:
    """Every pending delivery with its alert's kind, message, integration and type."""
    return conn.execute(
        select(alert_deliveries.c.id, alert_deliveries.c.channel,
               alert_deliveries.c.recipient, alert_deliveries.c.attempts, alerts.c.kind,
               alerts.c.message, alerts.c.integration_id, alerts.c.interaction_type)
        .join(alerts, alerts.c.id == alert_deliveries.c.alert_id)
        .where(alert_deliveries.c.status == "pending")
        .order_by(alert_deliveries.c.id)).all()


def record_delivery(conn: Connection, delivery_id: int, values: Mapping[str, Any]) -> None:
    """What one delivery attempt did: status, attempts, sent_at or last_error."""
    conn.execute(update(alert_deliveries).where(alert_deliveries.c.id == delivery_id)
                 .values(**values))
