"""One Integration Object synced in this process: retrieve and process (CLI, batch runs, tests,
benchmarks).

The retrieval runs on its own thread and the processor works beside it (see
:class:`akita_pipelines.sync.process.StagingFeed`): while batch k is typed, matched and written,
page k+1 is on the wire and then staged. Each page and each batch keeps its own transaction, so
a crash anywhere resumes as before.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Engine

from akita_pipelines.providers.http import HttpClient
from akita_pipelines.sync.process import ProcessResult, StagingFeed, process_staged
from akita_pipelines.sync.retrieve import RetrieveResult, retrieve_changes


@dataclass(frozen=True)
class SyncResult:
    retrieved: RetrieveResult
    processed: ProcessResult


def sync_object(engine: Engine, integration_id: str, interaction_type: str, *,
                trigger: str = "cli", full: bool = False, since: str | None = None,
                run_id: str | None = None, http: HttpClient | None = None,
                alive: Callable[[str], bool] | None = None) -> SyncResult:
    """Retrieve and process one Integration Object; raises (after recording) on failure."""
    feed = StagingFeed()

    def retrieve() -> RetrieveResult:
        error: BaseException | None = None
        try:
            return retrieve_changes(engine, integration_id, interaction_type, trigger=trigger,
                                    run_id=run_id, full=full, since=since, http=http,
                                    alive=alive, on_begin=feed.begun,
                                    on_page=feed.page_staged)
        except BaseException as exc:
            error = exc
            raise
        finally:
            feed.ended(error)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="akita-retrieve") as pool:
        retrieving = pool.submit(retrieve)
        processed = process_staged(engine, integration_id, interaction_type, feed=feed)
    return SyncResult(retrieving.result(), processed)
