"""Integration Object assets: ``<provider>/<type>``, partitioned by integration id.

Each asset is backed by a graph of two ops, so the UI shows per partition what was retrieved
and what was matched: ``retrieve_<provider>_<type>`` stages the changed records, then
``process_<provider>_<type>`` types, matches and links them and commits the cursor.
"""


import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from dagster import (
    AssetIn,
    AssetKey,
    AssetMaterialization,
    AssetObservation,
    AssetsDefinition,
    Config,
    DagsterInstance,
    DagsterRunStatus,
    Failure,
    In,
    MetadataValue,
    Nothing,
    OpExecutionContext,
    Out,
    Output,
    graph_asset,
    op,
)
from pydantic import Field
from sqlalchemy import Engine

from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.errors import AkitaError, ConfigError
from akita_pipelines.core.types import STANDARD_TYPES, type_order
from akita_pipelines.db import integrations, state
from akita_pipelines.db.health import open_reviews
from akita_pipelines.defs.matched import MATCHED_KEYS, evaluate_matched_checks
from akita_pipelines.defs.partitions import integrations_partitions
from akita_pipelines.defs.resources import AkitaDatabase
from akita_pipelines.defs.run_coordinator import FULL_TAG, SINCE_TAG, trigger_of
from akita_pipelines.providers.base import ProviderSpec
from akita_pipelines.sync.failures import FailureReport, failure_report
from akita_pipelines.sync.process import ProcessResult, process_staged
from akita_pipelines.sync.retrieve import (
    ObjectBusy,
    Retrieved,
    RetrieveResult,
    parse_day,
    retrieve_changes,
)
from akita_pipelines.sync.status import health

ACTIVE_RUN_STATUSES = frozenset({
    DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING})

#: Who answers for the Integration Object assets (shown and filterable in the UI).
OWNER = "team:data-engineering"


class RetrieveConfig(Config):
    full: bool = Field(default=False, description="Re-read everything from the history start "
                                                  "instead of the changes since the cursor.")
    since: str | None = Field(default=None, description="History start (YYYY-MM-DD) for a "
                                                        "full re-read or backfill.")


#: What each materialisation's metadata means (shown in the asset's description).
METADATA_GLOSSARY = (
    "Metadata of each partition's materialisation: records_fetched (records the provider "
    "returned), records_staged (stored for processing), quarantined (records set aside as "
    "unreadable, see `akita status`), records_processed, created / matched / merged (Accounts "
    "or Contacts new, found existing, or folded together), match_reviews (uncertain pairs left "
    "for a steward), linked (records linked to an Account or Contact), cursor (the change "
    "marker before → after), history_window (read from → to; a backfill reads from the history "
    "start), api_calls / retries / rate_limit_waits (HTTP requests), *_seconds (wall time), "
    "trigger (sensor, manual, backfill, reexecution, cli) and full (a re-read from the history "
    "start).")


def asset_key(provider: str, interaction_type: str) -> AssetKey:
    return AssetKey([provider, interaction_type])


def _upstream_types(types: Collection[str], interaction_type: str) -> list[str]:
    """Accounts before contacts before the rest, within one provider."""
    if interaction_type == "accounts":
        return []
    if interaction_type == "contacts":
        return [t for t in ("accounts",) if t in types]
    return [t for t in ("accounts", "contacts") if t in types]


def _iso(value: Any) -> str:
    return value.isoformat() if value is not None else "—"


def _epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def history_request(config: RetrieveConfig, tags: Mapping[str, str]) -> tuple[bool, str | None]:
    """(full re-read?, history start) of a run, from its config or its tags.

    A backfill, however launched (the UI's dialog passes no run config), re-reads each
    partition's history from its history start: ``akita/since`` (a flat tag the UI's launch
    dialogs can set) or the integration's ``history_start`` setting.
    """
    since = config.since or tags.get(SINCE_TAG) or None
    if since is not None:
        parse_day(since)  # a clear config error before anything is read
    full = (config.full or since is not None or trigger_of(tags) == "backfill"
            or tags.get(FULL_TAG, "").lower() in ("1", "true", "yes"))
    return full, since


def _text(value: Any) -> Any:
    return MetadataValue.text(value) if isinstance(value, str) else value


def retrieval_metadata(retrieved: Retrieved) -> dict[str, Any]:
    """The retrieve op's output metadata: what was read and how."""
    return {
        "records_fetched": retrieved.records_fetched,
        "records_staged": retrieved.records_staged,
        "pages": retrieved.pages, "quarantined": retrieved.quarantined,
        "since": _iso(retrieved.since), "full": retrieved.full,
        "api_calls": retrieved.api_calls, "retries": retrieved.retries,
        "rate_limit_waits": retrieved.rate_limit_waits,
        "waited_seconds": retrieved.waited_seconds,
    }


def materialization_metadata(retrieved: Retrieved, result: ProcessResult) -> dict[str, Any]:
    """The metadata of one partition's materialisation (single-partition runs and batches)."""
    cursor_before = _iso(retrieved.cursor_before)
    cursor_after = _iso(result.cursor_after)
    since_at = _epoch(retrieved.since)
    now = utcnow().replace(microsecond=0)
    metadata: dict[str, Any] = {
        "trigger": retrieved.trigger,
        "full": retrieved.full,
        "records_fetched": retrieved.records_fetched,
        "records_staged": retrieved.records_staged,
        "pages": retrieved.pages,
        "records_processed": result.processed,
        "quarantined": retrieved.quarantined + result.quarantined,
        "deleted": result.deleted,
        # Gone at the provider without a trace, found by a complete full read.
        "reconciled_deleted": retrieved.reconciled_deleted,
        "created": result.created,
        "matched": result.matched,
        "merged": result.merged,
        "match_reviews": result.reviews,
        "updated": result.rules.get("source_id", 0),
        "linked": result.linked,
        "cursor": f"{cursor_before} → {cursor_after}",
        "cursor_before": cursor_before,
        "cursor_after": cursor_after,
        # Read from (cursor − lookback, or the history start) up to now.
        "history_window": (f"{_iso(retrieved.since) if since_at is not None else 'all history'}"
                           f" → {_iso(now)}"),
        "history_window_days": (round((now.timestamp() - since_at) / 86400, 2)
                                if since_at is not None else "all history"),
        "api_calls": retrieved.api_calls,
        "retries": retrieved.retries,
        "rate_limit_waits": retrieved.rate_limit_waits,
        "rate_limit_wait_seconds": retrieved.waited_seconds,
        "retrieve_seconds": round(retrieved.seconds, 3),
        "process_seconds": round(result.seconds, 3),
        "duration_seconds": round(retrieved.seconds + result.seconds, 3),
    }
    if retrieved.notices:  # e.g. a fallback to a full re-read, and why
        metadata["notices"] = " | ".join(retrieved.notices)
    for rule, count in sorted(result.rules.items()):
        metadata[f"links_by_rule/{rule}"] = count
    return metadata


def recovered_observation(key: AssetKey, integration_id: str,
                          status_before: str) -> AssetObservation | None:
    """The partition's page showed it failed or late (an observation): no longer."""
    if status_before == "ok":
        return None
    return AssetObservation(asset_key=key, partition=integration_id,
                            description=f"synced again (was {status_before})",
                            metadata={"status": MetadataValue.text("ok"),
                                      "was": MetadataValue.text(status_before)})


def failure_metadata(report: FailureReport) -> dict[str, Any]:
    """A classified failure as metadata: class, reason, what to do, next retry, alert."""
    return {
        "failure_class": report.failure_class, "reason": report.reason,
        "action": report.action,
        "next_retry": (report.next_retry.isoformat(timespec="seconds")
                       if report.next_retry else "none: waits for a person"),
        "integration_state": report.integration_state,
        "consecutive_failures": report.consecutive_failures, "alert": report.alert,
    }


def as_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    return {k: MetadataValue.text(v) if isinstance(v, str) else v for k, v in metadata.items()}


#: How long a single-partition run waits for another run's sync of the same object (a batch
#: holding it) before it gives up; the wait is usually one incremental sync, seconds.
BUSY_WAIT_SECONDS = 3600.0
BUSY_POLL_SECONDS = 2.0


def run_is_active(instance: DagsterInstance, run_id: str) -> bool:
    """Whether the run holding an object's lease is still queued or running."""
    run = instance.get_run_by_id(run_id)
    return run is not None and run.status in ACTIVE_RUN_STATUSES


def retrieve_when_free(context: OpExecutionContext, engine: Engine, integration_id: str,
                       interaction_type: str, *, trigger: str, full: bool,
                       since: str | None) -> RetrieveResult:
    """Retrieve once no other run (a batch) is syncing the object: a run of one partition
    waits for it, as it waits in the queue behind another run of its partition."""
    deadline = time.monotonic() + BUSY_WAIT_SECONDS
    told = False
    while True:
        try:
            return retrieve_changes(engine, integration_id, interaction_type, trigger=trigger,
                                    run_id=context.run_id, full=full, since=since,
                                    alive=lambda run_id: run_is_active(context.instance, run_id))
        except ObjectBusy as exc:
            if time.monotonic() > deadline:
                raise Failure(description=f"{exc}: still after {BUSY_WAIT_SECONDS:.0f} s; "
                                          "re-sync when that run has finished",
                              allow_retries=False) from None
            if not told:
                context.log.info("waiting: %s", exc)
                told = True
            time.sleep(BUSY_POLL_SECONDS)


@contextmanager
def classified_failures(context: OpExecutionContext, engine: Engine, key: AssetKey,
                        interaction_type: str) -> Iterator[None]:
    """Turn a failure we classified into a clean ``Failure``: class, reason, what to do, next
    retry and the alert, as the step's description and metadata; no stack trace of ours. The
    same facts go on the partition as an observation, so its asset page tells them too."""
    integration_id = context.partition_key
    started = utcnow()
    try:
        yield
    except AkitaError as exc:
        report = failure_report(engine, integration_id, interaction_type, exc, started)
        metadata = failure_metadata(report)
        # Events an op logs are dropped when it raises: record this one on the instance.
        context.instance.report_runless_asset_event(AssetObservation(
            asset_key=key, partition=integration_id, description=f"failed: {report.summary}",
            metadata={"status": MetadataValue.text("failed"),
                      "run": MetadataValue.dagster_run(context.run_id),
                      **{k: _text(v) for k, v in metadata.items()}}))
        raise Failure(description=report.summary,
                      metadata={k: _text(v) for k, v in metadata.items()},
                      allow_retries=False) from None


def _require_one_partition(context: OpExecutionContext) -> None:
    """A run syncs one integration: a backfill launched as a "Single run" over a range says so."""
    if context.has_partition_key_range:
        keys = context.partition_key_range
        if keys.start != keys.end:
            action = ("launch the backfill as \"Multiple runs\" (one per integration), the "
                      "default of the UI's dialog, or with `akita backfill`")
            raise Failure(description=f"one run syncs one integration, this one got "
                                      f"{keys.start} … {keys.end}: {action}",
                          metadata={"failure_class": "config",
                                    "action": MetadataValue.text(action)},
                          allow_retries=False)


def _status(engine: Engine, integration_id: str, interaction_type: str) -> str:
    """The object's health before this sync (``akita status``'s word), "ok" if unknown."""
    with engine.connect() as conn:
        obj = state.get_object(conn, integration_id, interaction_type)
    return health(obj, utcnow()) if obj is not None else "ok"


def _require_integration(engine: Engine, integration_id: str) -> None:
    """A partition key that names no integration (typed by hand in the UI) says so."""
    try:
        with engine.connect() as conn:
            integrations.get_integration(conn, integration_id)
    except ConfigError:
        action = ("register it (`akita integrations add`) or delete the partition; "
                  "`akita integrations list` shows the registered ones")
        raise Failure(description=f"integration {integration_id!r} does not exist: {action}",
                      metadata={"failure_class": "config",
                                "reason": MetadataValue.text(
                                    f"no integration {integration_id!r} is registered"),
                                "action": MetadataValue.text(action)},
                      allow_retries=False) from None


def _report_matched(context: OpExecutionContext, engine: Engine, interaction_type: str,
                    integration_id: str, result: ProcessResult) -> None:
    """An accounts or contacts sync changed the matched table: say so there, with its checks."""
    key = MATCHED_KEYS.get(interaction_type)
    if key is None or not (result.processed or result.deleted):
        return
    with engine.connect() as conn:
        reviews = open_reviews(conn, interaction_type)
    context.log_event(AssetMaterialization(asset_key=key, description=(
        f"{integration_id} synced {interaction_type}: {result.created} created, "
        f"{result.matched} matched, {result.merged} merged"), metadata={
        "integration": MetadataValue.text(integration_id),
        "source_asset": MetadataValue.text(f"{integration_id.split('.', 1)[0]}/"
                                           f"{interaction_type}"),
        "records_processed": result.processed, "created": result.created,
        "matched": result.matched, "merged": result.merged,
        "open_reviews": MetadataValue.int(reviews),
    }))
    for evaluation in evaluate_matched_checks(engine, interaction_type):
        # log_event takes check evaluations (1.13 source), though its annotation omits them.
        context.log_event(evaluation)  # type: ignore[arg-type]


def _retrieve(context: OpExecutionContext, config: RetrieveConfig, engine: Engine,
              key: AssetKey, interaction_type: str) -> Retrieved:
    """The retrieve op: stage the partition's changes, say what was read."""
    _require_one_partition(context)
    integration_id = context.partition_key
    _require_integration(engine, integration_id)
    status_before = _status(engine, integration_id, interaction_type)
    trigger = trigger_of(context.run.tags)
    with classified_failures(context, engine, key, interaction_type):
        full, since = history_request(config, context.run.tags)
        result = retrieve_when_free(context, engine, integration_id, interaction_type,
                                    trigger=trigger, full=full, since=since)
    retrieved = Retrieved.of(result, full=full, trigger=trigger, status_before=status_before)
    context.add_output_metadata(retrieval_metadata(retrieved))
    return retrieved


def _process(context: OpExecutionContext, retrieved: Retrieved, engine: Engine,
             key: AssetKey, interaction_type: str) -> Iterator[Output[dict[str, Any]]]:
    """The process op: type, match and link what was staged; materialise the partition."""
    integration_id = context.partition_key
    with classified_failures(context, engine, key, interaction_type):
        result = process_staged(engine, integration_id, interaction_type,
                                sync_id=retrieved.sync_id)
    metadata = materialization_metadata(retrieved, result)
    if retrieved.notices:  # e.g. a fallback to a full re-read, and why
        context.log.warning("%s: %s", integration_id, metadata["notices"])
    summary = {k: v for k, v in metadata.items() if isinstance(v, int | float | str)}
    yield Output(summary, metadata=as_metadata(metadata))
    # After the output, so the matched table's event is newer than its source's (the UI
    # would call it unsynced otherwise).
    _report_matched(context, engine, interaction_type, integration_id, result)
    recovered = recovered_observation(key, integration_id, retrieved.status_before)
    if recovered is not None:
        context.log_event(recovered)


def build_object_asset(spec: ProviderSpec, interaction_type: str,
                       types: Collection[str]) -> AssetsDefinition:
    provider = spec.name
    upstream = _upstream_types(types, interaction_type)
    stem = f"{provider}_{interaction_type}"
    key = asset_key(provider, interaction_type)

    @op(name=f"retrieve_{stem}", ins={t: In(Nothing) for t in upstream},
        out=Out(Retrieved), tags={"akita/provider": provider}, pool=f"{provider}_api")
    def retrieve(context: OpExecutionContext, config: RetrieveConfig,
                 akita_db: AkitaDatabase) -> Retrieved:
        return _retrieve(context, config, akita_db.engine(), key, interaction_type)

    @op(name=f"process_{stem}", out=Out(dict))
    def process(context: OpExecutionContext, retrieved: Retrieved,
                akita_db: AkitaDatabase) -> Iterator[Output[dict[str, Any]]]:
        yield from _process(context, retrieved, akita_db.engine(), key, interaction_type)

    @graph_asset(
        name=interaction_type,
        key_prefix=[provider],
        group_name=provider,
        partitions_def=integrations_partitions(provider),
        ins={t: AssetIn(key=asset_key(provider, t), dagster_type=Nothing) for t in upstream},
        description=(f"{spec.title} {interaction_type}: one partition per integration. "
                     f"Retrieves the changes since the last successful sync, then types, "
                     f"matches and links them to the customer's Accounts and Contacts."
                     f"\n\n{METADATA_GLOSSARY}"),
        kinds={provider, "sql"},
        owners=[OWNER],
        tags={"akita/provider": provider},
    )
    def integration_object(**upstream_done: Any) -> Any:
        return process(retrieve(**upstream_done))

    return integration_object


def build_provider_assets(spec: ProviderSpec,
                          custom_types: Collection[str] = ()) -> list[AssetsDefinition]:
    """One asset per standard stream of the provider and per custom type registered for it."""
    types = sorted(set(spec.streams) | set(custom_types), key=lambda t: (type_order(t), t))
    return [build_object_asset(spec, t, types) for t in types]


__all__ = ["STANDARD_TYPES", "asset_key", "build_object_asset", "build_provider_assets"]
