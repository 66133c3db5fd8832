"""The demo registry: customers and integrations that point at the running sandbox."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine

from akita_pipelines.core.types import Customer, Integration
from akita_pipelines.providers.registry import PROVIDERS
from akita_pipelines.registry import add_customer, add_integration

DEMO_CUSTOMERS = (
    Customer(id="acme-corp", name="Acme Corp", admin_email="cs-admin@acme-corp.example"),
    Customer(id="globex", name="Globex", admin_email="ops@globex.example",
             settings={"sync_frequency_per_day": 48.0}),
)

_CONFIG_KEYS = ("base_url",)


def register_demo(engine: Engine, sandbox_urls: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One integration per customer per provider the sandbox serves; returns their ids."""
    ids = []
    for customer in DEMO_CUSTOMERS:
        add_customer(engine, customer)
        for provider, info in sorted(sandbox_urls.items()):
            if provider not in PROVIDERS:
                continue
            config = dict(info.get("config") or {k: v for k, v in info.items()
                                                 if k in _CONFIG_KEYS})
            credentials = {k: v for k, v in info.items() if k not in (*_CONFIG_KEYS, "config")}
            integration_id = f"{provider}.{customer.id}"
            add_integration(engine, Integration(id=integration_id, customer_id=customer.id,
                                                provider=provider, config=config), credentials)
            ids.append(integration_id)
    return ids
