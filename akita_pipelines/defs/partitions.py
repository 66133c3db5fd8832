"""One dynamic partitions definition per provider: keys are integration ids."""

from __future__ import annotations

from functools import cache

from dagster import DynamicPartitionsDefinition


@cache
def integrations_partitions(provider: str) -> DynamicPartitionsDefinition:
    return DynamicPartitionsDefinition(name=f"{provider}_integrations")
