"""Run and event-log retention: Dagster OSS keeps runs forever (its ``retention:`` block covers
ticks only), so a sensor deletes finished runs older than ``AKITA_RUN_RETENTION_DAYS``.

Deleting a run deletes its events, its materialisations included: a partition whose last sync
is older than the retention shows as never materialised until it syncs again (the Akita
database keeps every sync's record in ``sync_runs`` regardless).
"""

import os
from collections.abc import Mapping
from datetime import timedelta

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from akita_pipelines.core.clock import utcnow

#: Days a finished run and its event log are kept; 0 keeps them forever.
DEFAULT_RETENTION_DAYS = 30
#: Runs deleted per tick at most (a tick every 5 minutes: 12,000 an hour).
MAX_DELETES_PER_TICK = 1000
FINISHED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]


def retention_days(environ: Mapping[str, str] | None = None) -> float:
    env = os.environ if environ is None else environ
    return max(0.0, float(env.get("AKITA_RUN_RETENTION_DAYS", DEFAULT_RETENTION_DAYS)))


def build_run_retention_sensor() -> SensorDefinition:
    @sensor(name="akita_run_retention_sensor", minimum_interval_seconds=300,
            default_status=DefaultSensorStatus.RUNNING,
            description="Deletes finished runs (and their event logs) older than "
                        "AKITA_RUN_RETENTION_DAYS (default 30; 0 keeps them forever), at most "
                        f"{MAX_DELETES_PER_TICK} per tick, oldest first.")
    def akita_run_retention_sensor(context: SensorEvaluationContext) -> SkipReason:
        days = retention_days()
        if days <= 0:
            return SkipReason("AKITA_RUN_RETENTION_DAYS is 0: runs are kept forever")
        cutoff = utcnow() - timedelta(days=days)
        records = context.instance.get_run_records(
            RunsFilter(statuses=FINISHED, created_before=cutoff),
            limit=MAX_DELETES_PER_TICK, ascending=True)
        for record in records:
            context.instance.delete_run(record.dagster_run.run_id)
        return SkipReason(f"deleted {len(records)} runs finished before "
                          f"{cutoff.isoformat(timespec='seconds')}")

    return akita_run_retention_sensor
