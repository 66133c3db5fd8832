"""The scheduler: a sensor that keeps partitions in step with the registry and requests runs."""


import json
from collections.abc import Mapping
from typing import Any

from dagster import (
    AddDynamicPartitionsRequest,
    DagsterRunStatus,
    DefaultSensorStatus,
    DeleteDynamicPartitionsRequest,
    JobDefinition,
    RunFailureSensorContext,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    run_failure_sensor,
    sensor,
)

from akita_pipelines.core.clock import utcnow
from akita_pipelines.db import integrations, state, stats
from akita_pipelines.defs.assets import asset_key
from akita_pipelines.defs.batches import BATCH_TAG, INTEGRATIONS_TAG, batch_job_name
from akita_pipelines.defs.partitions import integrations_partitions, partitions_name
from akita_pipelines.defs.resources import AkitaDatabase
from akita_pipelines.defs.run_coordinator import TRIGGER_TAG
from akita_pipelines.providers.base import ProviderSpec
from akita_pipelines.sync.batches import BatchPolicy, PlannedBatch, plan_batches
from akita_pipelines.sync.crashes import record_crashed_run
from akita_pipelines.sync.scheduler import partition_changes

#: Runs requested per tick at most; the rest stay due and go next tick, oldest first.
MAX_RUNS_PER_TICK = 200
#: Due objects read per tick (several objects of one integration make one run).
MAX_DUE_PER_TICK = 2000
#: New partitions registered per tick at most; the rest are added on the next ticks and their
#: runs wait for their partitions.
MAX_NEW_PARTITIONS_PER_TICK = 10_000
#: New partitions handed to the daemon as requests (the tick's page lists them). The daemon
#: checks each requested key with a query of its own before adding it, which holds the tick for
#: as long as the keys take one by one; above this many the sensor registers them itself with
#: one statement (Dagster's add_dynamic_partitions, as the daemon's own last step) and logs them
#: on the tick.
REQUESTED_PARTITIONS_MAX = 100
ACTIVE_STATUSES = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED,
                   DagsterRunStatus.STARTING, DagsterRunStatus.STARTED,
                   DagsterRunStatus.CANCELING]


def job_name(provider: str) -> str:
    return f"{provider}_sync"


def in_flight_integrations(context: SensorEvaluationContext) -> set[str]:
    """Integrations with a run queued or running (any trigger: sensor, backfill or the UI),
    the integrations of batch runs included."""
    runs = context.instance.get_runs(filters=RunsFilter(statuses=ACTIVE_STATUSES))
    found = {run.tags["dagster/partition"] for run in runs if "dagster/partition" in run.tags}
    for run in runs:
        found.update(i for i in run.tags.get(INTEGRATIONS_TAG, "").split(",") if i)
    return found


def run_request(batch: PlannedBatch, policy: BatchPolicy) -> RunRequest:
    """One integration: an ordinary partition run, as the UI's. Several: a batch run."""
    single = batch.single
    if single is not None:
        return RunRequest(
            job_name=job_name(single.provider),
            partition_key=single.integration_id,
            asset_selection=[asset_key(single.provider, t) for t in single.types],
            asset_check_keys=[],  # on_time checks are the staleness sensor's
            tags={"akita/customer": single.customer_id, "akita/provider": single.provider,
                  "akita/integration": single.integration_id, TRIGGER_TAG: "sensor",
                  "akita/types": ",".join(single.types)})
    threads = policy.for_provider(batch.provider).threads
    return RunRequest(
        job_name=batch_job_name(batch.provider),
        run_config={"ops": {f"batch_sync_{batch.provider}": {"config": {
            "integrations": {r.integration_id: list(r.types) for r in batch.runs},
            "threads": threads}}}},
        tags={"akita/provider": batch.provider, TRIGGER_TAG: "sensor", BATCH_TAG: "true",
              INTEGRATIONS_TAG: ",".join(batch.integration_ids),
              "akita/batch_size": str(len(batch.runs))})


def build_scheduler_sensor(providers: Mapping[str, ProviderSpec],
                           jobs: list[JobDefinition],
                           policy: BatchPolicy | None = None) -> SensorDefinition:
    policy = policy or BatchPolicy.from_env()

    @sensor(name="akita_scheduler_sensor", jobs=jobs, minimum_interval_seconds=30,
            default_status=DefaultSensorStatus.RUNNING,
            description="Every 30 s: registers new integrations as partitions and requests "
                        "runs for the integrations whose Integration Objects are due: one run "
                        "per integration while few are due, else batch runs of many "
                        "integrations of one provider.")
    def akita_scheduler_sensor(context: SensorEvaluationContext,
                               akita_db: AkitaDatabase) -> SensorResult:
        now = utcnow()
        # A bulk onboarding leaves the due query planned for tables the planner thinks small.
        stats.analyze_stale(akita_db.engine(), stats.SCHEDULER_TABLES)
        with akita_db.engine().connect() as conn:
            registered = integrations.integration_ids_by_provider(conn)
            due = state.due_objects(conn, now, limit=MAX_DUE_PER_TICK)
        registered = {p: ids for p, ids in registered.items() if p in providers}
        current = {p: context.instance.get_dynamic_partitions(partitions_name(p))
                   for p in providers}
        changes = partition_changes(registered, current)
        budget = MAX_NEW_PARTITIONS_PER_TICK
        adds: dict[str, list[str]] = {}
        for provider, keys in sorted(changes.add.items()):
            if budget > 0:
                adds[provider] = sorted(keys)[:budget]
                budget -= len(adds[provider])
        known = {k for keys in current.values() for k in keys}
        known |= {k for keys in adds.values() for k in keys}
        registered_here = 0
        if sum(len(keys) for keys in adds.values()) > REQUESTED_PARTITIONS_MAX:
            for provider, keys in adds.items():
                context.instance.add_dynamic_partitions(partitions_name(provider), keys)
                context.log.info(f"registered {len(keys)} new partitions of "
                                 f"{partitions_name(provider)}: {', '.join(keys)}")
                registered_here += len(keys)
            adds = {}
        due = [o for o in due if o.integration_id in known]
        batches = plan_batches(due, in_flight=in_flight_integrations(context),
                               known_providers=providers, max_runs=MAX_RUNS_PER_TICK,
                               policy=policy)
        # No run_key: keys de-duplicate forever (even after a failed run); the in-flight check
        # and the next_due_at moved by every attempt keep one run per due window instead.
        run_requests = [run_request(batch, policy) for batch in batches]
        partition_requests: list[AddDynamicPartitionsRequest | DeleteDynamicPartitionsRequest] = [
            *(integrations_partitions(p).build_add_request(keys) for p, keys in adds.items()),
            *(integrations_partitions(p).build_delete_request(list(keys))
              for p, keys in changes.delete.items()),
        ]
        cursor = json.dumps({"last_tick": now.isoformat(), "due_objects": len(due),
                             "partitions_registered": registered_here,
                             "runs_requested": len(run_requests),
                             "integrations_requested": sum(len(b.runs) for b in batches)})
        if not run_requests and not partition_requests:
            reason = (f"{len(due)} due objects, all of integrations with a run in flight"
                      if due else "nothing due")
            if registered_here:
                reason += f"; {registered_here} new partitions registered"
            return SensorResult(skip_reason=reason, cursor=cursor)
        return SensorResult(run_requests=run_requests,
                            dynamic_partitions_requests=partition_requests, cursor=cursor)

    return akita_scheduler_sensor


def batch_objects(run_config: Mapping[str, Any], tags: Mapping[str, str]
                  ) -> dict[str, list[str]]:
    """A batch run's integrations and their types (from its run config), else nothing."""
    if BATCH_TAG not in tags:
        return {}
    for op_config in (run_config.get("ops") or {}).values():
        found = (op_config or {}).get("config", {}).get("integrations")
        if isinstance(found, Mapping):
            return {str(k): [str(t) for t in v] for k, v in found.items()}
    return {}


def build_run_failure_sensor(providers: Mapping[str, ProviderSpec]) -> SensorDefinition:
    @run_failure_sensor(name="akita_run_failure_sensor",
                        default_status=DefaultSensorStatus.RUNNING,
                        description="Feeds runs that failed outside the sync code (killed, "
                                    "crashed) into the same failure and alert path.")
    def akita_run_failure_sensor(context: RunFailureSensorContext,
                                 akita_db: AkitaDatabase) -> None:
        run = context.dagster_run
        integration_id = run.tags.get("dagster/partition")
        reason = context.failure_event.message or "the run failed"
        if not integration_id:
            for batch_integration, types in batch_objects(run.run_config, run.tags).items():
                recorded = record_crashed_run(akita_db.engine(), run_id=run.run_id,
                                              integration_id=batch_integration, types=types,
                                              reason=reason[:300])
                if recorded:
                    context.log.info("recorded crashed syncs of %s: %s", batch_integration,
                                     recorded)
            return
        provider = integration_id.split(".", 1)[0]
        if provider not in providers:
            return
        types = [key.path[-1] for key in (run.asset_selection or ())
                 if len(key.path) == 2 and key.path[0] == provider]
        if not types:
            types = providers[provider].types_in_order()
        recorded = record_crashed_run(akita_db.engine(), run_id=run.run_id,
                                      integration_id=integration_id, types=types,
                                      reason=reason[:300])
        if recorded:
            context.log.info("recorded crashed syncs of %s: %s", integration_id, recorded)

    return akita_run_failure_sensor
