"""The alert outbox: alerts are rows first and deliveries second, so none is lost in a crash."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine

from akita_pipelines.alerts.channels import Channel, configured_channels
from akita_pipelines.alerts.policy import Incident, tells_customer
from akita_pipelines.core.errors import FailureClass
from akita_pipelines.db import alerts as repo

log = logging.getLogger("akita.alerts")
MAX_ATTEMPTS = 5


def incident_key(integration_id: str, interaction_type: str) -> str:
    return f"{integration_id}/{interaction_type}"


def open_incident(conn: Connection, key: str, failures: int,
                  failing_since: datetime) -> Incident:
    """The incident of ``key`` since its last recovery."""
    rows = repo.recent_alerts(conn, key)
    current = []
    for row in rows:
        if row.kind == "recovered":
            break
        current.append(row)
    return Incident(failures=failures, failing_since=failing_since,
                    last_alert_at=current[0].created_at if current else None,
                    warned=any(r.kind == "warning" for r in current))


def has_open_incident(conn: Connection, key: str) -> bool:
    kind = repo.last_alert_kind(conn, key)
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
    alert_id = repo.insert_alert(conn, {
        "incident_key": key, "integration_id": alert.integration_id,
        "customer_id": alert.customer_id, "interaction_type": alert.interaction_type,
        "kind": alert.kind,
        "failure_class": alert.failure_class.value if alert.failure_class else None,
        "message": alert.message, "created_at": now})
    admin = repo.admin_email(conn, alert.customer_id)
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
    repo.insert_deliveries(conn, alert_id, sorted(deliveries))
    return alert_id


def deliver_pending(engine: Engine, channels: Sequence[Channel] | None = None) -> int:
    """Send every pending delivery; returns how many were sent. Never raises for a channel."""
    by_name = {c.name: c for c in (channels if channels is not None else configured_channels())}
    with engine.connect() as conn:
        rows = repo.pending_deliveries(conn)
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
            repo.record_delivery(conn, row.id, values)
    return sent


def _now() -> datetime:
    from akita_pipelines.core.clock import utcnow

    return utcnow()
