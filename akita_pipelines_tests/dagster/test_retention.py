"""Runs and their event logs are deleted after the retention; running ones never."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    Definitions,
    asset,
    build_sensor_context,
    define_asset_job,
)

from akita_pipelines.core.clock import set_clock, utcnow
from akita_pipelines.defs.retention import build_run_retention_sensor


@asset
def trivial() -> int:
    return 1


def test_finished_runs_older_than_the_retention_are_deleted_with_their_events(
        instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch) -> None:
    job = Definitions(assets=[trivial], jobs=[define_asset_job("j", selection=[trivial])]
                      ).resolve_job_def("j")
    done = [job.execute_in_process(instance=instance).run_id for _ in range(2)]
    running = instance.create_run_for_job(job, status=DagsterRunStatus.STARTED).run_id
    sensor = build_run_retention_sensor()
    monkeypatch.setenv("AKITA_RUN_RETENTION_DAYS", "30")

    # Within the retention: everything stays.
    sensor(build_sensor_context(instance=instance))
    assert {r.run_id for r in instance.get_runs()} == {*done, running}

    later = utcnow() + timedelta(days=31)
    set_clock(lambda: later)
    try:
        monkeypatch.setenv("AKITA_RUN_RETENTION_DAYS", "0")  # 0 keeps them forever
        sensor(build_sensor_context(instance=instance))
        assert {r.run_id for r in instance.get_runs()} == {*done, running}

        monkeypatch.setenv("AKITA_RUN_RETENTION_DAYS", "30")
        sensor(build_sensor_context(instance=instance))
    finally:
        set_clock(None)
    assert [r.run_id for r in instance.get_runs()] == [running]
    assert all(not instance.all_logs(run_id) for run_id in done)
