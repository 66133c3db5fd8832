"""Runs that failed outside our code (killed, out of memory, a step that never started), and
the objects a run skipped because another of its syncs failed."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import Engine

from akita_pipelines.core.errors import AkitaError, FailureClass, TransientError
from akita_pipelines.db import health, state
from akita_pipelines.sync.failures import record_failure


class RunCrashed(TransientError):
    """The orchestrator reports the run failed, but the sync never recorded an outcome."""


class SkippedAfterFailure(AkitaError):
    """Not tried: an earlier sync of the same run failed (accounts before contacts before the
    rest). Carries that failure's class, so a revoked grant is not blamed on a crash."""

    def __init__(self, message: str, failure_class: FailureClass) -> None:
        super().__init__(message)
        self.failure_class = failure_class


_CLASS = re.compile(r"^\[(\w+)\]\s*")


def cause_of(run_id: str, failed: Sequence[tuple[str, str]]) -> SkippedAfterFailure | None:
    """The first recorded failure of the run, as the cause of what the run skipped."""
    if not failed:
        return None
    interaction_type, error = failed[0]
    found = _CLASS.match(error)
    try:
        failure_class = FailureClass(found.group(1)) if found else FailureClass.TRANSIENT
    except ValueError:
        failure_class = FailureClass.TRANSIENT
    reason = _CLASS.sub("", error, count=1) or "failed"
    return SkippedAfterFailure(f"skipped: {interaction_type} failed first in run {run_id} "
                               f"({reason})", failure_class)


def record_crashed_run(engine: Engine, *, run_id: str, integration_id: str,
                       types: Sequence[str], reason: str) -> list[str]:
    """Feed a failed run into the normal failure path for each type whose sync did not
    finish; returns those types. The cursor stays; the staged pages are resumed next time.

    A type the run never started because an earlier sync failed is recorded with that
    failure's class and reason (and raises no alert of its own); a sync left running is a
    crash (``RunCrashed``).
    """
    with engine.connect() as conn:
        cause = cause_of(run_id, health.failed_syncs_of_run(conn, run_id))
    recorded = []
    for interaction_type in types:
        with engine.connect() as conn:
            obj = state.get_object(conn, integration_id, interaction_type)
            if obj is None:
                continue
            rows = state.syncs_of_run(conn, run_id, obj.id)
        if rows and all(r.status != "running" for r in rows):
            continue  # our code saw the outcome and recorded it already
        sync_id = next((r.id for r in rows if r.status == "running"), None)
        if sync_id is None and cause is not None:
            record_failure(engine, obj, None, cause, alert=False)
        else:
            record_failure(engine, obj, sync_id, RunCrashed(f"run {run_id} failed: {reason}"))
        recorded.append(interaction_type)
    return recorded
