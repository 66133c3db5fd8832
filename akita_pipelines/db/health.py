"""Read-only queries behind what the UI shows of health: the alerts of a failure, open
reviews and the matched tables' checks (late objects: ``state.due_objects``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select

from akita_pipelines.db.entities import unexplained_duplicate_domains
from akita_pipelines.db.schema import (
    accounts,
    alert_deliveries,
    alerts,
    contacts,
    integration_objects,
    interactions,
    match_reviews,
    quarantine,
    sync_runs,
)


@dataclass(frozen=True)
class AlertSent:
    """An alert raised for an incident, and where its deliveries stand."""

    kind: str
    created_at: datetime
    #: (channel, status) per delivery: pending | sent | failed.
    deliveries: tuple[tuple[str, str], ...]


def alerts_since(conn: Connection, incident_key: str, since: datetime) -> list[AlertSent]:
    """Alerts of ``incident_key`` created at or after ``since``, oldest first."""
    rows = conn.execute(select(alerts.c.id, alerts.c.kind, alerts.c.created_at)
                        .where(alerts.c.incident_key == incident_key,
                               alerts.c.created_at >= since)
                        .order_by(alerts.c.id)).all()
    found = []
    for row in rows:
        deliveries = conn.execute(select(alert_deliveries.c.channel, alert_deliveries.c.status)
                                  .where(alert_deliveries.c.alert_id == row.id)
                                  .order_by(alert_deliveries.c.id)).all()
        found.append(AlertSent(row.kind, row.created_at,
                               tuple((d.channel, d.status) for d in deliveries)))
    return found


def open_reviews(conn: Connection, kind: str, customer_id: str | None = None) -> int:
    """Match reviews of ``kind`` (accounts | contacts) still waiting for a steward."""
    query = select(func.count()).select_from(match_reviews).where(
        match_reviews.c.kind == kind, match_reviews.c.status == "open")
    if customer_id is not None:
        query = query.where(match_reviews.c.customer_id == customer_id)
    return int(conn.execute(query).scalar_one())


@dataclass(frozen=True)
class DomainStats:
    unexplained_duplicates: int
    shared_domains: int
    open_reviews: int


def account_domain_stats(conn: Connection) -> DomainStats:
    """Live Accounts sharing a domain within a customer: explained (a review records it) or not."""
    shared = conn.execute(
        select(func.count()).select_from(
            select(accounts.c.customer_id, accounts.c.domain)
            .where(accounts.c.domain.is_not(None), accounts.c.merged_into.is_(None))
            .group_by(accounts.c.customer_id, accounts.c.domain)
            .having(func.count() > 1).subquery())).scalar_one()
    return DomainStats(unexplained_duplicate_domains(conn), int(shared),
                       open_reviews(conn, "accounts"))


def contact_account_counts(conn: Connection) -> tuple[int, int]:
    """(Contacts, Contacts without an Account)."""
    total = conn.execute(select(func.count()).select_from(contacts)).scalar_one()
    orphans = conn.execute(select(func.count()).select_from(contacts)
                           .where(contacts.c.account_id.is_(None))).scalar_one()
    return int(total), int(orphans)


def quarantine_counts(conn: Connection) -> tuple[int, int]:
    """(Records quarantined, interactions stored)."""
    bad = conn.execute(select(func.count()).select_from(quarantine)).scalar_one()
    good = conn.execute(select(func.count()).select_from(interactions)).scalar_one()
    return int(bad), int(good)


def failed_syncs_of_run(conn: Connection, run_id: str) -> list[tuple[str, str]]:
    """(interaction type, recorded error) of each sync the Dagster run ``run_id`` saw fail."""
    rows = conn.execute(
        select(integration_objects.c.interaction_type, sync_runs.c.error)
        .join(integration_objects, integration_objects.c.id == sync_runs.c.integration_object_id)
        .where(sync_runs.c.run_id == run_id, sync_runs.c.status == "failed")
        .order_by(sync_runs.c.id)).all()
    return [(r.interaction_type, r.error or "") for r in rows]
