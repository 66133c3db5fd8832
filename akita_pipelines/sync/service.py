"""One Integration Object synced in this process: retrieve then process (CLI, tests, benchmarks)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from akita_pipelines.providers.http import HttpClient
from akita_pipelines.sync.process import ProcessResult, process_staged
from akita_pipelines.sync.retrieve import RetrieveResult, retrieve_changes


@dataclass(frozen=True)
class SyncResult:
    retrieved: RetrieveResult
    processed: ProcessResult


def sync_object(engine: Engine, integration_id: str, interaction_type: str, *,
                trigger: str = "cli", full: bool = False, since: str | None = None,
                run_id: str | None = None, http: HttpClient | None = None) -> SyncResult:
    """Retrieve and process one Integration Object; raises (after recording) on failure."""
    retrieved = retrieve_changes(engine, integration_id, interaction_type, trigger=trigger,
                                 run_id=run_id, full=full, since=since, http=http)
    processed = process_staged(engine, integration_id, interaction_type,
                               sync_id=retrieved.sync_id)
    return SyncResult(retrieved, processed)
