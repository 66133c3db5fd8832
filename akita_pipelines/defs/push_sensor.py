"""The push sensor: runs for Integration Objects a provider said changed, within seconds.

The receiver (``akita_pipelines.push``) records notified objects in ``push_due`` and makes them
due; this sensor ticks every few seconds, requests one run per notified integration with no
run in flight, and forgets the objects it handed over. An integration with a run in flight
waits: when that run ends it gets one follow-up run, however many notifications came. Push
runs of one integration start at least ``PUSH_RUN_GAP`` apart, so a flood of notifications
makes two runs a minute, not one per run's length. The scheduler sensor keeps polling at the
configured frequency beside it.
"""


import json
from collections.abc import Mapping
from datetime import datetime, timedelta

from dagster import (
    DefaultSensorStatus,
    JobDefinition,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from akita_pipelines.core.clock import utcnow
from akita_pipelines.db import push
from akita_pipelines.defs.assets import asset_key
from akita_pipelines.defs.partitions import partitions_name
from akita_pipelines.defs.resources import AkitaDatabase
from akita_pipelines.defs.run_coordinator import TRIGGER_TAG
from akita_pipelines.defs.sensors import in_flight_integrations, job_name
from akita_pipelines.providers.base import ProviderSpec
from akita_pipelines.sync.scheduler import plan_runs

#: The sensor daemon's loop (5 s) paces the ticks. A 5 s minimum would skip every other loop
#: whenever a tick lands a moment early (ticks 10 s apart, seen on the real stack).
PUSH_INTERVAL_SECONDS = 1
#: Notified objects read per tick; the rest wait for the next tick, longest waiting first.
MAX_PUSHED_PER_TICK = 2000
MAX_PUSH_RUNS_PER_TICK = 200
#: Event ids are kept this long (past Stripe's three days of retries), then forgotten.
EVENT_RETENTION = timedelta(days=4)
#: The least time between two push runs of one integration. The first notification after a
#: quiet spell is served at once; a stream of them is served twice a minute.
PUSH_RUN_GAP = timedelta(seconds=60)


def recent_push_runs(context: SensorEvaluationContext, since: datetime) -> set[str]:
    """Integrations with a push run created since ``since`` (whatever its status)."""
    runs = context.instance.get_runs(filters=RunsFilter(tags={TRIGGER_TAG: "push"},
                                                        created_after=since))
    return {run.tags["dagster/partition"] for run in runs if "dagster/partition" in run.tags}


def build_push_sensor(providers: Mapping[str, ProviderSpec],
                      jobs: list[JobDefinition]) -> SensorDefinition:
    @sensor(name="akita_push_sensor", jobs=jobs, minimum_interval_seconds=PUSH_INTERVAL_SECONDS,
            default_status=DefaultSensorStatus.RUNNING,
            description="Every 5 s: one run per integration whose provider notified a change "
                        "(webhooks), unless a run of it is in flight.")
    def akita_push_sensor(context: SensorEvaluationContext,
                          akita_db: AkitaDatabase) -> SensorResult:
        now = utcnow()
        with akita_db.engine().begin() as conn:
            pushed = push.pushed_objects(conn, limit=MAX_PUSHED_PER_TICK)
            pruned = push.prune_events(conn, now - EVENT_RETENTION)
        pushed = [p for p in pushed if p.obj.provider in providers]
        # Runs need the partition: an integration registered since the scheduler's last tick
        # waits for it (the scheduler adds partitions).
        known = {k for p in {i.obj.provider for i in pushed}
                 for k in context.instance.get_dynamic_partitions(partitions_name(p))}
        pushed = [p for p in pushed if p.obj.integration_id in known]
        waiting = (in_flight_integrations(context) | recent_push_runs(context, now - PUSH_RUN_GAP)
                   if pushed else set())
        runs = plan_runs([p.obj for p in pushed], in_flight=waiting,
                         known_providers=providers, max_runs=MAX_PUSH_RUNS_PER_TICK)
        run_requests = [
            RunRequest(
                job_name=job_name(run.provider),
                partition_key=run.integration_id,
                asset_selection=[asset_key(run.provider, t) for t in run.types],
                tags={"akita/customer": run.customer_id, "akita/provider": run.provider,
                      "akita/integration": run.integration_id, TRIGGER_TAG: "push",
                      "akita/types": ",".join(run.types)},
            )
            for run in runs
        ]
        handed = {r.integration_id for r in runs}
        with akita_db.engine().begin() as conn:
            push.clear_pushed(conn, [p for p in pushed if p.obj.integration_id in handed])
        cursor = json.dumps({"last_tick": now.isoformat(), "pushed_objects": len(pushed),
                             "runs_requested": len(run_requests), "events_pruned": pruned})
        if not run_requests:
            reason = (f"{len(pushed)} notified objects, all of integrations with a run in "
                      "flight or a push run in the last minute" if pushed
                      else "no notifications")
            return SensorResult(skip_reason=reason, cursor=cursor)
        return SensorResult(run_requests=run_requests, cursor=cursor)

    return akita_push_sensor
