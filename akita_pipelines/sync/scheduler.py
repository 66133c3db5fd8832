"""The scheduler's decisions, as pure functions: which runs to request, which partitions to add."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from akita_pipelines.core.types import type_order
from akita_pipelines.db.state import ObjectRow


@dataclass(frozen=True)
class PlannedRun:
    """One run: one integration, its due types in dependency order."""

    integration_id: str
    provider: str
    customer_id: str
    types: tuple[str, ...]


def plan_runs(due: Iterable[ObjectRow], *, in_flight: Collection[str],
              known_providers: Collection[str], max_runs: int) -> list[PlannedRun]:
    """Group due objects into one run per integration, skipping integrations already in flight
    (their next run would only queue behind the current one) and unknown providers."""
    grouped: dict[str, list[ObjectRow]] = {}
    for obj in due:
        if obj.integration_id in in_flight or obj.provider not in known_providers:
            continue
        grouped.setdefault(obj.integration_id, []).append(obj)
    runs = []
    for integration_id, objects in grouped.items():  # insertion order = most overdue first
        first = objects[0]
        types = tuple(sorted({o.interaction_type for o in objects},
                             key=lambda t: (type_order(t), t)))
        runs.append(PlannedRun(integration_id, first.provider, first.customer_id, types))
        if len(runs) >= max_runs:
            break
    return runs


@dataclass(frozen=True)
class PartitionChanges:
    add: Mapping[str, Sequence[str]]
    delete: Mapping[str, Sequence[str]]

    @property
    def empty(self) -> bool:
        return not any(self.add.values()) and not any(self.delete.values())


def partition_changes(registered: Mapping[str, Sequence[str]],
                      current: Mapping[str, Collection[str]]) -> PartitionChanges:
    """Keys to add and delete so each provider's partitions equal its registered integrations."""
    add: dict[str, list[str]] = {}
    delete: dict[str, list[str]] = {}
    for provider in sorted(set(registered) | set(current)):
        wanted = list(registered.get(provider, ()))
        have = set(current.get(provider, ()))
        new = [k for k in wanted if k not in have]
        gone = sorted(have - set(wanted))
        if new:
            add[provider] = new
        if gone:
            delete[provider] = gone
    return PartitionChanges(add, delete)
