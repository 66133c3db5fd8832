"""Onboarding customers and integrations, declared in YAML or through the CLI.

```yaml
customers:
  - id: acme-corp
    name: Acme Corp
    admin_email: cs@acme.example
    settings: {sync_frequency_per_day: 6}          # customer layer (optional)
    integrations:
      - id: salesforce.acme-corp                   # <provider>.<slug>, globally unique
        provider: salesforce
        config: {base_url: "https://acme.my.salesforce.com"}
        credentials_env: {client_secret: ACME_SF_SECRET}   # secrets from the environment
        credentials: {client_id: "...", refresh_token: "..."}
        settings: {types: {tasks: {enabled: false}}}       # integration-object layer
```
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine

from akita_pipelines.config.settings import validate_settings
from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.errors import ConfigError
from akita_pipelines.core.types import Customer, Integration
from akita_pipelines.db import integrations as repo
from akita_pipelines.providers.registry import PROVIDERS, get_provider

_SLUG = r"[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?"
CUSTOMER_ID = re.compile(rf"^{_SLUG}$")
INTEGRATION_ID = re.compile(rf"^(?P<provider>[a-z0-9_]+)\.(?P<slug>{_SLUG})$")


def check_customer_id(value: str) -> str:
    if not CUSTOMER_ID.match(value):
        raise ConfigError(f"customer id {value!r} must be lower-case letters, digits and dashes "
                          "(e.g. acme-corp)")
    return value


def check_integration_id(value: str, provider: str) -> str:
    match = INTEGRATION_ID.match(value)
    if not match or match["provider"] != provider:
        raise ConfigError(f"integration id {value!r} must read '{provider}.<slug>' with a slug of "
                          "lower-case letters, digits and dashes (e.g. salesforce.acme-corp)")
    return value


def add_customer(engine: Engine, customer: Customer) -> None:
    """Register (or update) a customer. Its settings are a layer of every Integration Object
    of its integrations, so those are refreshed at once (frequency, next due, enabled)."""
    check_customer_id(customer.id)
    validate_settings(customer.settings, where=f"customer {customer.id} settings")
    now = utcnow()
    with engine.begin() as conn:
        repo.save_customer(conn, customer, now)
        for integration in repo.list_integrations(conn):
            spec = PROVIDERS.get(integration.provider)
            if integration.customer_id == customer.id and spec is not None:
                repo.sync_integration_objects(conn, spec, integration, now)


def add_integration(engine: Engine, integration: Integration,
                    credentials: Mapping[str, Any]) -> None:
    """Register (or update) an integration and its Integration Objects, refusing bad input."""
    spec = get_provider(integration.provider)
    check_integration_id(integration.id, integration.provider)
    validate_settings(integration.settings, where=f"integration {integration.id} settings")
    streams = spec.streams_for(integration.config)
    unknown_types = set(integration.settings.get("types", {})) - set(streams)
    if unknown_types:
        raise ConfigError(f"integration {integration.id}: {spec.title} has no interaction types "
                          f"{sorted(unknown_types)}; it has {sorted(streams)}")
    missing = [k for k in spec.required_config if not integration.config.get(k)]
    if missing:
        raise ConfigError(f"integration {integration.id}: config lacks {missing}")
    if spec.check_config is not None:
        spec.check_config(integration.config)
    missing = [k for k in spec.required_credentials if not credentials.get(k)]
    if missing:
        raise ConfigError(f"integration {integration.id}: credentials lack {missing}")
    now = utcnow()
    with engine.begin() as conn:
        repo.get_customer(conn, integration.customer_id)
        repo.save_integration(conn, integration, credentials, now)
        repo.sync_integration_objects(conn, spec, integration, now)


def load_file(engine: Engine, path: Path) -> list[str]:
    """Register every customer and integration of a YAML file; returns the integration ids."""
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read registry file {path}: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("customers"), list):
        raise ConfigError(f"{path}: expected a mapping with a 'customers' list")
    added: list[str] = []
    for entry in document["customers"]:
        if not isinstance(entry, dict) or "id" not in entry:
            raise ConfigError(f"{path}: every customer needs an 'id'")
        add_customer(engine, Customer(id=entry["id"], name=str(entry.get("name") or entry["id"]),
                                      admin_email=entry.get("admin_email"),
                                      settings=entry.get("settings") or {}))
        for item in entry.get("integrations") or []:
            where = f"{path}: customer {entry['id']}"
            if not isinstance(item, dict) or "id" not in item or "provider" not in item:
                raise ConfigError(f"{where}: every integration needs an 'id' and a 'provider'")
            credentials = dict(item.get("credentials") or {})
            for key, env_name in (item.get("credentials_env") or {}).items():
                if env_name not in os.environ:
                    raise ConfigError(f"{where}: integration {item['id']} reads {key} from "
                                      f"${env_name}, which is not set")
                credentials[key] = os.environ[env_name]
            add_integration(engine, Integration(
                id=item["id"], customer_id=entry["id"], provider=item["provider"],
                config=item.get("config") or {}, settings=item.get("settings") or {}),
                credentials)
            added.append(item["id"])
    return added
