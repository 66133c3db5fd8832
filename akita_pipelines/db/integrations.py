"""The integrations repository: customers, integrations, their objects and credentials."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from akita_pipelines.config.settings import SettingLayers, resolve
from akita_pipelines.core.errors import ConfigError
from akita_pipelines.core.types import Customer, Integration
from akita_pipelines.db import bulk, secrets
from akita_pipelines.db.schema import customers, integration_objects, integrations
from akita_pipelines.providers.base import ProviderSpec


def save_customer(conn: Connection, customer: Customer, now: datetime) -> None:
    bulk.upsert(conn, customers, [{
        "id": customer.id, "name": customer.name, "admin_email": customer.admin_email,
        "settings": dict(customer.settings), "created_at": now,
    }], keys=["id"], set_sql=bulk.excluded(["name", "admin_email", "settings"]))


def get_customer(conn: Connection, customer_id: str) -> Customer:
    row = conn.execute(select(customers).where(customers.c.id == customer_id)).one_or_none()
    if row is None:
        raise ConfigError(f"unknown customer {customer_id!r}: add it to the registry first")
    return Customer(id=row.id, name=row.name, admin_email=row.admin_email,
                    settings=row.settings or {})


def save_integration(conn: Connection, integration: Integration, credentials: Mapping[str, Any],
                     now: datetime) -> None:
    bulk.upsert(conn, integrations, [{
        "id": integration.id, "customer_id": integration.customer_id,
        "provider": integration.provider, "config": dict(integration.config),
        "credentials": secrets.encrypt(credentials), "settings": dict(integration.settings),
        "state": integration.state, "created_at": now, "updated_at": now,
    }], keys=["id"], set_sql=bulk.excluded(["config", "credentials", "settings", "updated_at"]))


def _integration(row: Any) -> Integration:
    return Integration(id=row.id, customer_id=row.customer_id, provider=row.provider,
                       config=row.config or {}, settings=row.settings or {}, state=row.state)


def get_integration(conn: Connection, integration_id: str) -> Integration:
    query = select(integrations).where(integrations.c.id == integration_id)
    row = conn.execute(query).one_or_none()
    if row is None:
        raise ConfigError(f"unknown integration {integration_id!r}; `akita integrations list` "
                          "shows the registered ones")
    return _integration(row)


def list_integrations(conn: Connection, provider: str | None = None) -> list[Integration]:
    query = select(integrations).order_by(integrations.c.created_at, integrations.c.id)
    if provider is not None:
        query = query.where(integrations.c.provider == provider)
    return [_integration(r) for r in conn.execute(query)]


def customer_settings(conn: Connection, customer_id: str) -> Mapping[str, Any]:
    """The customer's own settings layer; empty for an unknown customer."""
    settings = conn.execute(select(customers.c.settings).where(customers.c.id == customer_id)
                            ).scalar_one_or_none()
    return settings or {}


def integration_created_at(conn: Connection, integration_id: str) -> datetime:
    return conn.execute(select(integrations.c.created_at).where(  # type: ignore[no-any-return]
        integrations.c.id == integration_id)).scalar_one()


def reencrypt_credentials(conn: Connection) -> int:
    """Re-encrypt every integration's credentials with the newest key; how many."""
    rows = conn.execute(select(integrations.c.id, integrations.c.credentials)).all()
    for row in rows:
        conn.execute(update(integrations).where(integrations.c.id == row.id)
                     .values(credentials=secrets.rotate(row.credentials or {})))
    return len(rows)


def set_integration_state(conn: Connection, integration_id: str, state: str,
                          now: datetime) -> None:
    get_integration(conn, integration_id)
    conn.execute(update(integrations).where(integrations.c.id == integration_id)
                 .values(state=state, updated_at=now))
    if state == "active":
        # Re-enabling starts afresh: counters reset, everything due now.
        conn.execute(update(integration_objects)
                     .where(integration_objects.c.integration_id == integration_id)
                     .values(consecutive_failures=0, state="ok", last_error=None,
                             next_due_at=now))


def effective_layers(spec: ProviderSpec, customer: Customer, integration: Integration,
                     interaction_type: str) -> SettingLayers:
    return SettingLayers.build(
        interaction_type=interaction_type, provider_settings=spec.settings,
        provider_type_settings=spec.type_settings, customer_settings=customer.settings,
        integration_settings=integration.settings,
    )


def sync_integration_objects(conn: Connection, spec: ProviderSpec, integration: Integration,
                             now: datetime) -> None:
    """Create or refresh the Integration Objects of ``integration``: one per provider stream,
    with the effective frequency and enabled flag resolved from the settings layers."""
    customer = get_customer(conn, integration.customer_id)
    existing = {
        r.interaction_type: r
        for r in conn.execute(select(integration_objects).where(
            integration_objects.c.integration_id == integration.id))
    }
    for interaction_type in spec.types_in_order(integration.config):
        layers = effective_layers(spec, customer, integration, interaction_type)
        frequency = float(resolve("sync_frequency_per_day", layers).value)
        enabled = bool(resolve("enabled", layers).value)
        row = existing.get(interaction_type)
        if row is None:
            conn.execute(integration_objects.insert().values(
                integration_id=integration.id, interaction_type=interaction_type,
                frequency_per_day=frequency, enabled=enabled, next_due_at=now,
                consecutive_failures=0, state="ok"))
            continue
        values: dict[str, Any] = {"frequency_per_day": frequency, "enabled": enabled}
        if row.last_synced_at is not None and row.state == "ok":
            values["next_due_at"] = row.last_synced_at + timedelta(days=1 / frequency)
        conn.execute(update(integration_objects)
                     .where(integration_objects.c.id == row.id).values(**values))


class DatabaseCredentialStore:
    """Credentials of one integration in the database.

    ``update`` runs in its own transaction and locks the integration's row (``FOR UPDATE`` on
    PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` write lock), so a rotated refresh token is read,
    spent and replaced by one run at a time and is never lost.
    """

    def __init__(self, engine: Engine, integration_id: str) -> None:
        self.engine = engine
        self.integration_id = integration_id

    def load(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            value = conn.execute(select(integrations.c.credentials)
                                 .where(integrations.c.id == self.integration_id)).scalar_one()
        return secrets.decrypt(value)

    def update(self, change: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        with self.engine.begin() as conn:
            query = select(integrations.c.credentials).where(
                integrations.c.id == self.integration_id)
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("UPDATE integrations SET id = id WHERE id = ?",
                                     (self.integration_id,))  # take the write lock first
            else:
                query = query.with_for_update()
            current = secrets.decrypt(conn.execute(query).scalar_one())
            new = change(dict(current))
            if new != current:
                conn.execute(update(integrations)
                             .where(integrations.c.id == self.integration_id)
                             .values(credentials=secrets.encrypt(new)))
        return dict(new)


def integration_ids_by_provider(conn: Connection) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for row in conn.execute(select(integrations.c.provider, integrations.c.id)
                            .order_by(integrations.c.created_at, integrations.c.id)):
        result.setdefault(row.provider, []).append(row.id)
    return result


def registered_types(conn: Connection,
                     providers: Mapping[str, ProviderSpec]) -> dict[str, set[str]]:
    """Every interaction type some integration of each provider has, custom ones included."""
    found: dict[str, set[str]] = {}
    for integration in list_integrations(conn):
        spec = providers.get(integration.provider)
        if spec is not None:
            found.setdefault(spec.name, set()).update(spec.streams_for(integration.config))
    return found
