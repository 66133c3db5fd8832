"""The real stack: the sensor, the run queue's limits, ``akita resync`` and ``akita backfill``.

Everything runs as in production: PostgreSQL storage from deploy/dagster.postgres.yaml, the run
queue with its ``dagster/partition`` limit, ``dagster-daemon run`` and ``dagster-webserver`` as
separate processes, runs in their own processes, the commands talking to the webserver.
"""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict

import pytest

from akita_pipelines_tests.e2e.stack import BIN, ROOT, Stack, StoredRun

pytestmark = pytest.mark.e2e


def _by_partition(runs: list[StoredRun]) -> dict[str, list[StoredRun]]:
    grouped: dict[str, list[StoredRun]] = defaultdict(list)
    for run in runs:
        if run.partition:
            grouped[run.partition].append(run)
    for group in grouped.values():
        group.sort(key=lambda r: r.start_time or 0.0)
    return grouped


def test_sensor_resync_and_backfill_on_the_real_stack(stack: Stack) -> None:
    # 1. The scheduler sensor registers the integrations as partitions and its runs succeed.
    sensor_runs = stack.wait_for_sensor_runs()
    for run in sensor_runs:
        assert run.tags["akita/provider"] == "salesforce"
        assert run.tags["akita/integration"] == run.partition
        assert run.tags["akita/customer"] == run.partition.split(".", 1)[1]

    # 2. A backfill of three partitions and three manual re-syncs of one partition, all at
    # once: the queue has to hold runs of salesforce.acme back while another one runs.
    # (The browser test shares this stack: only the runs launched here are counted below.)
    earlier = {r.run_id for r in stack.stored_runs()}
    acme, *_ = stack.integrations
    backfill = subprocess.Popen(
        [str(BIN / "akita"), "backfill", "--provider", "salesforce",
         *(arg for i in stack.integrations for arg in ("--integration", i)),
         "--since", "2020-01-01", "--wait", "--timeout", "200", "--url", stack.url],
        env=stack.env, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for only in ([], ["--type", "contacts"]):
            queued = stack.akita("resync", acme, *only, "--url", stack.url)
            assert queued.returncode == 0, queued.stderr
            assert "queued run" in queued.stdout
        resync = stack.akita("resync", acme, "--full", "--wait", "--timeout", "200",
                             "--url", stack.url)
        backfill_out, _ = backfill.communicate(timeout=240)
    finally:
        if backfill.poll() is None:
            backfill.kill()
            backfill.wait()
    sys.stdout.write(f"$ akita backfill ...\n{backfill_out}")

    # 3. `akita resync --wait` followed its run to success.
    assert resync.returncode == 0, resync.stdout + resync.stderr
    assert "succeeded" in resync.stdout

    # 4. `akita backfill --wait` saw all three partitions through.
    assert backfill.returncode == 0, backfill_out
    assert "completed_success: 3 partitions, 3 materialised, 0 failed" in backfill_out

    runs = stack.stored_runs()
    launched = [r for r in runs if r.run_id not in earlier]
    manual = [r for r in launched if r.tags.get("akita/trigger") == "manual"]
    assert len(manual) == 3
    assert {r.partition for r in manual} == {acme}
    assert all(r.status == "SUCCESS" for r in manual), [(r.run_id, r.status) for r in manual]
    backfilled = [r for r in launched if "dagster/backfill" in r.tags]
    assert sorted(r.partition or "" for r in backfilled) == sorted(stack.integrations)
    assert all(r.status == "SUCCESS" and r.trigger == "backfill" for r in backfilled)
    # The backfill daemon creates these runs; the run coordinator tagged them when queued.
    for run in backfilled:
        assert run.tags["akita/integration"] == run.partition
        assert run.tags["akita/customer"] == (run.partition or "").split(".", 1)[1]
        assert run.tags["akita/since"] == "2020-01-01"

    # 5. Two runs of one partition never overlap (start/end times from the run storage), and
    # the limit was really exercised: some run was queued before its predecessor ended.
    assert all(r.status in ("SUCCESS", "FAILURE", "CANCELED") for r in runs)
    created = stack.run_creation_times()
    held_back = 0
    for partition, group in _by_partition(runs).items():
        for before, after in zip(group, group[1:], strict=False):
            assert before.end_time is not None
            assert after.start_time is not None
            assert after.start_time >= before.end_time, (
                f"runs {before.run_id} and {after.run_id} of {partition} overlapped")
            if created[after.run_id] < before.end_time:
                held_back += 1
    assert len(_by_partition(runs)[acme]) >= 5
    assert held_back >= 1, "no run ever waited for another run of its partition"
