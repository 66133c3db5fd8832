from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from akita_pipelines.core.types import Customer, Integration
from akita_pipelines.onboarding import add_customer, add_integration
from akita_pipelines.sandbox.server import Sandbox, start_sandbox


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with start_sandbox(base_port=0, seed=11) as running:
        yield running


def register_salesforce(engine: Engine, sandbox: Sandbox, customer: str = "acme",
                        settings: dict[str, Any] | None = None) -> str:
    info = dict(sandbox.urls["salesforce"])
    add_customer(engine, Customer(id=customer, name=customer.title()))
    integration_id = f"salesforce.{customer}"
    add_integration(engine, Integration(
        id=integration_id, customer_id=customer, provider="salesforce",
        config={"base_url": info.pop("base_url")}, settings=settings or {}), info)
    return integration_id
