"""Runs that died outside our code (killed, out of memory, a step that never started)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, select

from akita_pipelines.core.errors import TransientError
from akita_pipelines.db import state
from akita_pipelines.db.schema import sync_runs
from akita_pipelines.sync.failures import record_failure


class RunCrashed(TransientError):
    """The orchestrator reports the run failed, but the sync never recorded an outcome."""


def record_crashed_run(engine: Engine, *, run_id: str, integration_id: str,
                       types: Sequence[str], reason: str) -> list[str]:
    """Feed a crashed run into the normal failure path for each type whose sync did not
    finish; returns those types. The cursor stays; the staged pages are resumed next time."""
    recorded = []
    for interaction_type in types:
        with engine.connect() as conn:
            obj = state.get_object(conn, integration_id, interaction_type)
            if obj is None:
                continue
            rows = conn.execute(select(sync_runs.c.id, sync_runs.c.status).where(
                sync_runs.c.run_id == run_id,
                sync_runs.c.integration_object_id == obj.id)).all()
        if rows and all(r.status != "running" for r in rows):
            continue  # our code saw the outcome and recorded it already
        sync_id = next((r.id for r in rows if r.status == "running"), None)
        record_failure(engine, obj, sync_id, RunCrashed(f"run {run_id} failed: {reason}"))
        recorded.append(interaction_type)
    return recorded
