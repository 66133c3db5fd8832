"""The alert outbox: alerts are rows first and deliveries second, so none is lost in a crash."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, select, update

from akita_pipelines.alerts.channels import Channel, configured_channels
from akita_pipelines.alerts.policy import Incident, tells_customer
from akita_pipelines.core.errors import FailureClass
from akita_pipelines.db.schema import alert_deliveries, alerts, customers

log = logging.getLogger("akita.alerts")
MAX_ATTEMPTS = 5


def incident_key(integration_id: str, interaction_type: str) -> str:
    return f"{integration_id}/{interaction_type}"


def open_incident(conn: Connection, key: str, failures: int,
                  failing_since: datetime) -> Incident:
    """The incident of ``key`` since its last recovery."""
    rows = conn.execute(select(alerts.c.kind, alerts.c.created_at)
                        .where(alerts.c.incident_key == key)
                        .order_by(alerts.c.id.desc()).limit(200)).all()
    current = []
    for row in rows:
        if row.kind == "recovered":
            break
        current.append(row)
    return Incident(failures=failures, failing_since=failing_since,
                    last_alert_at=current[0].created_at if current else None,
                    warned=any(r.kind == "warning" for r in current))


def has_open_incident(conn: Connection, key: str) -> bool:
    kind = conn.execute(select(alerts.c.kind).where(alerts.c.incident_key == key)
                        .order_by(alerts.c.id.desc()).limit(1)).scalar_one_or_none()
    return kind is not None and kind != "recovered"


@dataclass(frozen=True)
class NewAlert:
    integration_id: str
    customer_id: str
    interaction_type: str | None
    kind: str
    failure_class: FailureClass | None
    message: str


def enqueue(conn: Connection, alert: NewAlert, now: datetime,
            channels: Sequence[Channel] | None = None) -> int:
    """Store the alert and one pending delivery per channel and recipient."""
    key = incident_key(alert.integration_id, alert.interaction_type or "*")
    alert_id = int(conn.execute(alerts.insert().values(
        incident_key=key, integration_id=alert.integration_id, customer_id=alert.customer_id,
        interaction_type=alert.interaction_type, kind=alert.kind,
        failure_class=alert.failure_class.value if alert.failure_class else None,
        message=alert.message, created_at=now)).inserted_primary_key[0])  # type: ignore[index]
    admin = conn.execute(select(customers.c.admin_email)
                         .where(customers.c.id == alert.customer_id)).scalar_one_or_none()
    operators = [e.strip() for e in os.environ.get("AKITA_OPERATOR_EMAILS", "").split(",")
                 if e.strip()]
    deliveries = set()
    for channel in channels if channels is not None else configured_channels():
        if channel.name != "email":
            deliveries.add((channel.name, channel.default_recipient))
            continue
        for address in operators:
            deliveries.add(("email", address))
        if admin and tells_customer(alert.kind, alert.failure_class):
            deliveries.add(("email", admin))
    if deliveries:
        conn.execute(alert_deliveries.insert(), [
            {"alert_id": alert_id, "channel": c, "recipient": r, "status": "pending",
             "attempts": 0} for c, r in sorted(deliveries)])
    return alert_id


def deliver_pending(engine: Engine, channels: Sequence[Channel] | None = None) -> int:
    """Send every pending delivery; returns how many were sent. Never raises for a channel."""
    by_name = {c.name: c for c in (channels if channels is not None else configured_channels())}
    with engine.connect() as conn:
        rows = conn.execute(
            select(alert_deliveries.c.id, alert_deliveries.c.channel,
                   alert_deliveries.c.recipient, alert_deliveries.c.attempts, alerts.c.kind,
                   alerts.c.message, alerts.c.integration_id, alerts.c.interaction_type)
            .join(alerts, alerts.c.id == alert_deliveries.c.alert_id)
            .where(alert_deliveries.c.status == "pending")
            .order_by(alert_deliveries.c.id)).all()
    sent = 0
    for row in rows:
        channel = by_name.get(row.channel)
        values: dict[str, object]
        if channel is None:
            continue
        subject = f"[Akita] {row.kind}: {row.integration_id} {row.interaction_type or ''}".strip()
        try:
            channel.send(row.recipient, subject, row.message)
            values = {"status": "sent", "attempts": row.attempts + 1, "sent_at": _now()}
            sent += 1
        except Exception as exc:  # noqa: BLE001 - a failing channel must not stop the others
            attempts = row.attempts + 1
            values = {"attempts": attempts, "last_error": f"{type(exc).__name__}: {exc}"[:500],
                      "status": "failed" if attempts >= MAX_ATTEMPTS else "pending"}
            log.warning("alert delivery %s to %s failed (%d/%d)", row.channel, row.recipient,
                        attempts, MAX_ATTEMPTS)
        with engine.begin() as conn:
            conn.execute(update(alert_deliveries).where(alert_deliveries.c.id == row.id)
                         .values(**values))
    return sent


def _now() -> datetime:
    from akita_pipelines.core.clock import utcnow

    return utcnow()
