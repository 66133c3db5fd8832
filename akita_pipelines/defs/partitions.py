"""One dynamic partitions definition per provider: keys are integration ids."""


from functools import cache

from dagster import DynamicPartitionsDefinition


def partitions_name(provider: str) -> str:
    return f"{provider}_integrations"


@cache
def integrations_partitions(provider: str) -> DynamicPartitionsDefinition:
    return DynamicPartitionsDefinition(name=partitions_name(provider))
