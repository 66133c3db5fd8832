"""Batch runs: the scheduler's many-integrations-per-run job of each provider.

One op syncs the integrations its run config names (threads, see ``sync/batches.py``) and
reports, per Integration Object, exactly what a single-partition run reports: a materialisation
of ``<provider>/<type>`` for the integration's partition with the full metadata, the matched
tables' materialisations and checks, an ``ok`` observation when the partition had been failing
or late. A failed object gets a ``failed`` observation on its partition (class, reason, action,
next retry, alert) and stays unmaterialised; the others go on. The run's tags and its output
metadata list the integrations it synced.
"""

from collections import Counter
from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetMaterialization,
    AssetObservation,
    Config,
    JobDefinition,
    MetadataValue,
    Nothing,
    OpExecutionContext,
    Out,
    Output,
    in_process_executor,
    job,
    op,
)
from pydantic import Field

from akita_pipelines.defs.assets import (
    _report_matched,
    as_metadata,
    asset_key,
    failure_metadata,
    materialization_metadata,
    recovered_observation,
    run_is_active,
)
from akita_pipelines.defs.resources import AkitaDatabase
from akita_pipelines.defs.run_coordinator import PROVIDER_TAG, trigger_of
from akita_pipelines.sync.batches import BatchItem, ObjectOutcome, sync_batch
from akita_pipelines.sync.failures import failure_report
from akita_pipelines.sync.retrieve import Retrieved

BATCH_TAG = "akita/batch"
#: The batch's integrations, comma-separated (the run page's tags; the sensor's in-flight set).
INTEGRATIONS_TAG = "akita/integrations"


def batch_job_name(provider: str) -> str:
    return f"{provider}_batch_sync"


class BatchConfig(Config):
    integrations: dict[str, list[str]] = Field(
        description="Integration id → its due interaction types, in order.")
    threads: int = Field(default=4, description="Integrations synced at once.")


def _failure_observation(context: OpExecutionContext, provider: str,
                         outcome: ObjectOutcome, engine: Any) -> AssetObservation:
    assert outcome.error is not None
    report = failure_report(engine, outcome.integration_id, outcome.interaction_type,
                            outcome.error, outcome.started)
    metadata = {"status": "failed" if outcome.status == "failed" else "skipped",
                **failure_metadata(report)}
    return AssetObservation(
        asset_key=asset_key(provider, outcome.interaction_type),
        partition=outcome.integration_id, description=f"failed: {report.summary}",
        metadata={**as_metadata(metadata), "run": MetadataValue.dagster_run(context.run_id)})


def build_batch_job(provider: str, database: AkitaDatabase) -> JobDefinition:
    """The provider's batch job, its resource bound here (a sensor targeting a job whose
    resources ``Definitions`` must bind is rebuilt through a beta code path)."""
    @op(name=f"batch_sync_{provider}", out=Out(Nothing), pool=f"{provider}_api",
        tags={PROVIDER_TAG: provider})
    def batch_sync(context: OpExecutionContext, config: BatchConfig,
                   akita_db: AkitaDatabase) -> Iterator[Any]:
        engine = akita_db.engine()
        trigger = trigger_of(context.run.tags)
        items = [BatchItem(i, tuple(types)) for i, types in config.integrations.items()]
        counts: Counter[str] = Counter()
        lines = []
        for outcomes in sync_batch(engine, items, trigger=trigger, run_id=context.run_id,
                                   threads=config.threads,
                                   alive=lambda r: run_is_active(context.instance, r)):
            for o in outcomes:
                counts[o.status] += 1
                key = asset_key(provider, o.interaction_type)
                if o.status == "synced":
                    assert o.retrieved is not None
                    assert o.processed is not None
                    retrieved = Retrieved.of(o.retrieved, full=False, trigger=trigger,
                                             status_before=o.status_before)
                    metadata = materialization_metadata(retrieved, o.processed)
                    metadata["batch_of"] = len(items)
                    yield AssetMaterialization(asset_key=key, partition=o.integration_id,
                                               metadata=as_metadata(metadata))
                    _report_matched(context, engine, o.interaction_type, o.integration_id,
                                    o.processed)
                    recovered = recovered_observation(key, o.integration_id, o.status_before)
                    if recovered is not None:
                        yield recovered
                    lines.append(f"| {o.integration_id} | {o.interaction_type} | synced | "
                                 f"{o.processed.processed} records |")
                elif o.status == "busy":
                    context.log.info("%s/%s left to run %s, which is syncing it",
                                     o.integration_id, o.interaction_type,
                                     ", ".join(o.holders))
                    lines.append(f"| {o.integration_id} | {o.interaction_type} | busy | "
                                 f"run {', '.join(o.holders)} |")
                else:
                    yield _failure_observation(context, provider, o, engine)
                    context.log.warning("%s/%s %s: %s", o.integration_id, o.interaction_type,
                                        o.status, o.reason)
                    lines.append(f"| {o.integration_id} | {o.interaction_type} | {o.status} "
                                 f"| {o.reason[:120]} |")
        table = "| integration | type | outcome | |\n|---|---|---|---|\n" + "\n".join(lines)
        yield Output(None, metadata={
            "integrations": len(items), "synced": counts["synced"],
            "failed": counts["failed"], "skipped": counts["skipped"], "busy": counts["busy"],
            "objects": MetadataValue.md(table)})

    @job(name=batch_job_name(provider), executor_def=in_process_executor,
         resource_defs={"akita_db": database},
         tags={PROVIDER_TAG: provider, BATCH_TAG: "true"},
         description=f"Scheduled syncs of many {provider} integrations in one run (the "
                     "scheduler's batches): each object's materialisation is reported on its "
                     "own partition.")
    def batch() -> None:
        batch_sync()

    return batch
