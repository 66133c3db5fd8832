"""Fixtures the Dagster tests share: a throwaway Dagster instance, and a Salesforce-only sandbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dagster import DagsterInstance, instance_for_test

from akita_pipelines.sandbox.server import Sandbox, start_sandbox


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as inst:
        yield inst


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with start_sandbox(base_port=0, seed=5, providers=["salesforce"]) as running:
        yield running
