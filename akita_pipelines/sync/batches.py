"""Batched scheduled syncs: many integrations of one provider in one run.

A run costs the orchestrator seconds of CPU whatever it does, while an incremental sync that
finds little costs hundredths: the scheduler shares one run between many due integrations of a
provider. :func:`plan_batches` decides the runs (pure); :func:`sync_batch` syncs a batch's
integrations concurrently (threads: the work is mostly waiting for the provider), each
Integration Object in its own transactions exactly as a single-partition run does, and reports
one :class:`ObjectOutcome` per object as soon as its integration is done. One object's
failure never stops the others; an object another run is syncing is left to that run.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.errors import AkitaError, classify
from akita_pipelines.db import leases, state
from akita_pipelines.db.state import ObjectRow
from akita_pipelines.sync.crashes import SkippedAfterFailure
from akita_pipelines.sync.failures import record_failure
from akita_pipelines.sync.process import ProcessResult
from akita_pipelines.sync.retrieve import ObjectBusy, RetrieveResult
from akita_pipelines.sync.scheduler import PlannedRun, plan_runs
from akita_pipelines.sync.service import sync_object
from akita_pipelines.sync.status import health

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchPolicy:
    """How the scheduler shares runs.

    ``max_size``: integrations per run at most. ``runs_per_provider``: runs of one provider
    that may run at once (keep it equal to dagster.yaml's ``akita/provider`` limit): a batch
    is only as large as it must be to cover the due integrations with that many runs, so a
    few due integrations still get one run each. ``requests_per_provider``: the provider's
    concurrent request budget, shared by those runs' threads.
    """

    max_size: int = 50
    runs_per_provider: int = 3
    requests_per_provider: int = 12
    overrides: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def for_provider(self, provider: str) -> BatchPolicy:
        found = self.overrides.get(provider)
        if not found:
            return self
        return BatchPolicy(max_size=int(found.get("max_size", self.max_size)),
                           runs_per_provider=int(found.get("runs_per_provider",
                                                           self.runs_per_provider)),
                           requests_per_provider=int(found.get("requests_per_provider",
                                                               self.requests_per_provider)))

    @property
    def threads(self) -> int:
        """Integrations synced at once within one run of the provider."""
        return max(1, self.requests_per_provider // max(1, self.runs_per_provider))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BatchPolicy:
        """``AKITA_BATCH_MAX_SIZE``, ``AKITA_BATCH_RUNS_PER_PROVIDER``,
        ``AKITA_BATCH_REQUESTS_PER_PROVIDER``; a size of 1 turns batching off."""
        env = os.environ if environ is None else environ
        default = cls()
        return cls(
            max_size=max(1, int(env.get("AKITA_BATCH_MAX_SIZE", default.max_size))),
            runs_per_provider=max(1, int(env.get("AKITA_BATCH_RUNS_PER_PROVIDER",
                                                 default.runs_per_provider))),
            requests_per_provider=max(1, int(env.get("AKITA_BATCH_REQUESTS_PER_PROVIDER",
                                                     default.requests_per_provider))))


@dataclass(frozen=True)
class PlannedBatch:
    """One run of one provider: one or more integrations, each with its due types in order."""

    provider: str
    runs: tuple[PlannedRun, ...]

    @property
    def single(self) -> PlannedRun | None:
        """The integration, when the run syncs only one (an ordinary partition run)."""
        return self.runs[0] if len(self.runs) == 1 else None

    @property
    def integration_ids(self) -> list[str]:
        return [r.integration_id for r in self.runs]


def batch_size(due_integrations: int, policy: BatchPolicy) -> int:
    """Integrations per run: enough that ``runs_per_provider`` runs cover the due ones, at most
    ``max_size``; 1 while no more are due than runs may run at once."""
    if due_integrations <= 0:
        return 1
    return max(1, min(policy.max_size,
                      math.ceil(due_integrations / max(1, policy.runs_per_provider))))


def plan_batches(due: Iterable[ObjectRow], *, in_flight: Collection[str],
                 known_providers: Collection[str], max_runs: int,
                 policy: BatchPolicy) -> list[PlannedBatch]:
    """Group due objects into runs: per provider, integrations most overdue first, in batches
    sized by :func:`batch_size`; at most ``max_runs`` runs."""
    per_integration = plan_runs(due, in_flight=in_flight, known_providers=known_providers,
                                max_runs=max(1, max_runs) * max(1, policy.max_size))
    by_provider: dict[str, list[PlannedRun]] = {}
    for run in per_integration:
        by_provider.setdefault(run.provider, []).append(run)
    batches: list[PlannedBatch] = []
    for provider, runs in sorted(by_provider.items()):
        size = batch_size(len(runs), policy.for_provider(provider))
        batches += [PlannedBatch(provider, tuple(runs[i:i + size]))
                    for i in range(0, len(runs), size)]
    # Interleave providers so one provider's backlog does not starve the others' runs.
    ordered: list[PlannedBatch] = []
    queues = {p: [b for b in batches if b.provider == p] for p in sorted(by_provider)}
    while any(queues.values()) and len(ordered) < max_runs:
        for provider in sorted(queues):
            if queues[provider] and len(ordered) < max_runs:
                ordered.append(queues[provider].pop(0))
    return ordered


@dataclass(frozen=True)
class BatchItem:
    integration_id: str
    types: tuple[str, ...]


@dataclass
class ObjectOutcome:
    """What happened to one Integration Object of a batch.

    ``status``: ``synced``; ``failed`` (recorded as a failure of the object, with its alert);
    ``skipped`` (not tried because an earlier type of its integration failed; recorded as a
    failure without an alert of its own); ``busy`` (another run is syncing it: left alone).
    """

    integration_id: str
    interaction_type: str
    status: str
    started: datetime
    status_before: str = "ok"
    retrieved: RetrieveResult | None = None
    processed: ProcessResult | None = None
    error: BaseException | None = None
    holders: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        if self.error is None:
            return ""
        if isinstance(self.error, AkitaError):
            return f"{type(self.error).__name__}: {self.error}"
        return type(self.error).__name__


def _object(engine: Engine, integration_id: str, interaction_type: str) -> ObjectRow | None:
    with engine.connect() as conn:
        return state.get_object(conn, integration_id, interaction_type)


def _record_unexpected(engine: Engine, obj: ObjectRow, run_id: str, exc: BaseException) -> None:
    """An error our code did not record (a bug, not the provider): record it on the object."""
    with engine.connect() as conn:
        sync_id = leases.running_sync(conn, obj.id, run_id)
    record_failure(engine, obj, sync_id, exc)


def sync_integration(engine: Engine, item: BatchItem, *, trigger: str, run_id: str,
                     alive: Callable[[str], bool] | None = None) -> list[ObjectOutcome]:
    """Sync an integration's types in order (accounts before contacts before the rest), each
    object retrieved and processed (beside each other) in its own transactions. A type that
    fails leaves the later ones untried (recorded as failures caused by it, without alerts of
    their own)."""
    outcomes: list[ObjectOutcome] = []
    failed: ObjectOutcome | None = None
    for interaction_type in item.types:
        started = utcnow()
        obj = _object(engine, item.integration_id, interaction_type)
        outcome = ObjectOutcome(item.integration_id, interaction_type, "synced", started,
                                status_before=health(obj, started) if obj else "ok")
        outcomes.append(outcome)
        if obj is None:
            outcome.status, outcome.error = "failed", AkitaError(
                f"{item.integration_id} has no interaction type {interaction_type!r}")
            continue
        if failed is not None:
            cause = SkippedAfterFailure(
                f"skipped: {failed.interaction_type} failed first in run {run_id} "
                f"({failed.reason})", classify(failed.error or AkitaError()))
            record_failure(engine, obj, None, cause, alert=False)
            outcome.status, outcome.error = "skipped", cause
            continue
        try:
            synced = sync_object(engine, item.integration_id, interaction_type,
                                 trigger=trigger, run_id=run_id, alive=alive)
            outcome.retrieved, outcome.processed = synced.retrieved, synced.processed
        except ObjectBusy as exc:
            outcome.status, outcome.holders = "busy", exc.holders
        except (AkitaError, OSError, ValueError) as exc:  # recorded by the sync already
            outcome.status, outcome.error = "failed", exc
            failed = outcome
        except Exception as exc:  # noqa: BLE001 - one object's bug must not stop the batch
            log.exception("sync of %s/%s failed", item.integration_id, interaction_type)
            _record_unexpected(engine, obj, run_id, exc)
            outcome.status, outcome.error = "failed", exc
            failed = outcome
    return outcomes


def sync_batch(engine: Engine, items: Sequence[BatchItem], *, trigger: str, run_id: str,
               threads: int, alive: Callable[[str], bool] | None = None
               ) -> Iterator[list[ObjectOutcome]]:
    """Sync the batch's integrations, ``threads`` at a time; yields each integration's
    outcomes as soon as it is done (so the caller reports them while the others go on)."""
    if not items:
        return
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(items))),
                            thread_name_prefix="akita-batch") as pool:
        futures = [pool.submit(sync_integration, engine, item, trigger=trigger, run_id=run_id,
                               alive=alive) for item in items]
        for future in as_completed(futures):
            yield future.result()
