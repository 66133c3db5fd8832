"""Push repository: webhook subscriptions, received event ids, pushed objects, receiver counts.

A notification is only a trigger: it marks Integration Objects due (``state.mark_due``) and
records them in ``push_due`` for the push sensor; the normal incremental sync fetches the
change. Subscription secrets are encrypted like credentials and never leave this module in
a ``repr``.
"""

from __future__ import annotations

import secrets as token_source
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select

from akita_pipelines.core.errors import ConfigError
from akita_pipelines.db import bulk, secrets, state
from akita_pipelines.db.dialect import among
from akita_pipelines.db.integrations import get_integration
from akita_pipelines.db.schema import (
    push_due,
    webhook_counts,
    webhook_events,
    webhook_subscriptions,
)

OUTCOMES = ("accepted", "duplicate", "ignored", "bad_signature", "stale", "unknown",
            "oversized", "malformed")


@dataclass(frozen=True)
class Subscription:
    """One integration's webhook endpoint and its signing secret (kept out of ``repr``)."""

    id: int
    integration_id: str
    provider: str
    path_token: str
    account_ref: str | None
    secret: str = field(repr=False)
    created_at: datetime | None = None


def _subscription(row: Any) -> Subscription:
    stored = secrets.decrypt(row.secret)
    return Subscription(id=int(row.id), integration_id=row.integration_id,
                        provider=row.provider, path_token=row.path_token,
                        account_ref=row.account_ref, secret=str(stored["secret"]),
                        created_at=row.created_at)


def new_path_token() -> str:
    """An unguessable path segment (256 random bits)."""
    return token_source.token_urlsafe(32)


def create_subscription(conn: Connection, integration_id: str, *, secret: str,
                        account_ref: str | None, now: datetime,
                        path_token: str | None = None) -> Subscription:
    """A new endpoint for ``integration_id``: an unguessable path token (``path_token`` when
    the URL was already given to the provider), the secret encrypted."""
    integration = get_integration(conn, integration_id)
    if not secret:
        raise ConfigError("a webhook subscription needs the provider's signing secret")
    token = path_token or new_path_token()
    result = conn.execute(webhook_subscriptions.insert().values(
        integration_id=integration_id, provider=integration.provider, path_token=token,
        account_ref=account_ref, secret=secrets.encrypt({"secret": secret}), created_at=now))
    return Subscription(id=int(result.inserted_primary_key[0]),  # type: ignore[index]
                        integration_id=integration_id, provider=integration.provider,
                        path_token=token, account_ref=account_ref, secret=secret,
                        created_at=now)


def list_subscriptions(conn: Connection, integration_id: str | None = None
                       ) -> list[Subscription]:
    query = select(webhook_subscriptions).order_by(webhook_subscriptions.c.id)
    if integration_id is not None:
        query = query.where(webhook_subscriptions.c.integration_id == integration_id)
    return [_subscription(r) for r in conn.execute(query)]


def delete_subscription(conn: Connection, subscription_id: int) -> bool:
    conn.execute(delete(webhook_events)
                 .where(webhook_events.c.subscription_id == subscription_id))
    result = conn.execute(delete(webhook_subscriptions)
                          .where(webhook_subscriptions.c.id == subscription_id))
    return bool(result.rowcount)


def by_token(conn: Connection, provider: str, token: str) -> Subscription | None:
    row = conn.execute(select(webhook_subscriptions).where(
        webhook_subscriptions.c.path_token == token,
        webhook_subscriptions.c.provider == provider)).one_or_none()
    return None if row is None else _subscription(row)


def by_account(conn: Connection, provider: str, account_refs: Iterable[str]
               ) -> list[Subscription]:
    refs = sorted(set(account_refs))
    if not refs:
        return []
    rows = conn.execute(select(webhook_subscriptions).where(
        webhook_subscriptions.c.provider == provider,
        webhook_subscriptions.c.account_ref.in_(refs)).order_by(webhook_subscriptions.c.id))
    return [_subscription(r) for r in rows]


def record_events(conn: Connection, subscription_id: int, event_ids: Sequence[str],
                  now: datetime) -> set[str]:
    """Remember the event ids; returns those not received before (the rest are duplicates)."""
    wanted = list(dict.fromkeys(event_ids))
    if not wanted:
        return set()
    new = bulk.upsert(conn, webhook_events, {
        "subscription_id": [subscription_id] * len(wanted), "event_id": wanted,
        "received_at": [now] * len(wanted)},
        keys=["subscription_id", "event_id"], returning=["event_id"])
    return {str(e) for (e,) in new}


def push(conn: Connection, integration_id: str, types: Sequence[str], now: datetime,
         notifications: int = 1) -> list[int]:
    """Make the objects of ``types`` due now and record them for the push sensor, one row per
    object whatever the number of notifications (they are counted). Returns the object ids."""
    ids = state.mark_due(conn, integration_id, types, now)
    if not ids:
        return []
    bulk.upsert(conn, push_due, [
        {"integration_object_id": i, "integration_id": integration_id,
         "first_notified_at": now, "last_notified_at": now, "notifications": notifications}
        for i in ids], keys=["integration_object_id"], set_sql={
        "last_notified_at": "CASE WHEN excluded.last_notified_at > push_due.last_notified_at "
                            "THEN excluded.last_notified_at ELSE push_due.last_notified_at END",
        "notifications": "push_due.notifications + excluded.notifications"})
    return ids


@dataclass(frozen=True)
class Pushed:
    """An object notified and not yet handed to a run."""

    obj: state.ObjectRow
    last_notified_at: datetime
    notifications: int


def pushed_objects(conn: Connection, *, limit: int) -> list[Pushed]:
    """Notified objects, longest waiting first; rows of disabled objects or integrations that
    are not active are dropped (their polling is off too)."""
    rows = conn.execute(select(push_due).order_by(push_due.c.first_notified_at,
                                                  push_due.c.integration_object_id)
                        .limit(limit)).all()
    objects = {o.id: o for o in state.objects_by_ids(
        conn, [r.integration_object_id for r in rows])}
    found, stale = [], []
    for row in rows:
        obj = objects.get(row.integration_object_id)
        if obj is None or not obj.enabled or obj.integration_state != "active":
            stale.append(row.integration_object_id)
            continue
        found.append(Pushed(obj, row.last_notified_at, row.notifications))
    if stale:
        conn.execute(delete(push_due).where(among(conn, push_due.c.integration_object_id,
                                                  stale)))
    return found


def clear_pushed(conn: Connection, handed: Sequence[Pushed]) -> None:
    """Forget objects handed to a run, unless notified again since they were read (then the
    next run after this one fetches that change)."""
    for item in handed:
        conn.execute(delete(push_due).where(
            push_due.c.integration_object_id == item.obj.id,
            push_due.c.last_notified_at <= item.last_notified_at))


def prune_events(conn: Connection, before: datetime) -> int:
    """Forget event ids received before ``before`` (past every provider's retry horizon)."""
    result = conn.execute(delete(webhook_events).where(webhook_events.c.received_at < before))
    return int(result.rowcount or 0)


def count(conn: Connection, provider: str, integration_id: str | None, outcome: str,
          now: datetime, n: int = 1) -> None:
    """Add ``n`` to the receivers' count of ``outcome``."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown webhook outcome {outcome!r}")
    bulk.upsert(conn, webhook_counts, [
        {"provider": provider, "integration_id": integration_id or "", "outcome": outcome,
         "count": n, "last_at": now}], keys=["provider", "integration_id", "outcome"],
        set_sql={"count": "webhook_counts.count + excluded.count", **bulk.excluded(["last_at"])})


def counts(conn: Connection) -> dict[tuple[str, str, str], int]:
    """``{(provider, integration id or "", outcome): count}``."""
    return {(r.provider, r.integration_id, r.outcome): int(r._mapping["count"])
            for r in conn.execute(select(webhook_counts))}


def pending_count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(push_due)).scalar_one())
