"""Integration Object assets: ``<provider>/<type>``, partitioned by integration id.

Each asset is backed by a graph of two ops, so the UI shows per partition what was retrieved
and what was matched: ``retrieve_<provider>_<type>`` stages the changed records, then
``process_<provider>_<type>`` types, matches and links them and commits the cursor.
"""


from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from dagster import (
    AssetIn,
    AssetKey,
    AssetsDefinition,
    Config,
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

from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.types import STANDARD_TYPES, type_order
from akita_pipelines.defs.partitions import integrations_partitions
from akita_pipelines.defs.resources import AkitaDatabase
from akita_pipelines.providers.base import ProviderSpec
from akita_pipelines.sync.process import process_staged
from akita_pipelines.sync.retrieve import retrieve_changes

TRIGGER_TAG = "akita/trigger"
#: Who answers for the Integration Object assets (shown and filterable in the UI).
OWNER = "team:data-engineering"


class RetrieveConfig(Config):
    full: bool = Field(default=False, description="Re-read everything from the history start "
                                                  "instead of the changes since the cursor.")
    since: str | None = Field(default=None, description="History start (YYYY-MM-DD) for a "
                                                        "full re-read or backfill.")


def trigger_of(tags: Mapping[str, str]) -> str:
    """sensor | backfill | manual, from the run's tags."""
    if "dagster/backfill" in tags:
        return "backfill"
    return tags.get(TRIGGER_TAG, "manual")


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


def build_object_asset(spec: ProviderSpec, interaction_type: str,
                       types: Collection[str]) -> AssetsDefinition:
    provider = spec.name
    upstream = _upstream_types(types, interaction_type)
    stem = f"{provider}_{interaction_type}"

    @op(name=f"retrieve_{stem}", ins={t: In(Nothing) for t in upstream},
        out=Out(dict), tags={"akita/provider": provider}, pool=f"{provider}_api")
    def retrieve(context: OpExecutionContext, config: RetrieveConfig,
                 akita_db: AkitaDatabase) -> dict[str, Any]:
        result = retrieve_changes(
            akita_db.engine(), context.partition_key, interaction_type,
            trigger=trigger_of(context.run.tags), run_id=context.run_id, full=config.full,
            since=config.since)
        staged = result.records_fetched - result.quarantined
        context.add_output_metadata({
            "records_fetched": result.records_fetched, "records_staged": staged,
            "pages": result.pages, "quarantined": result.quarantined,
            "since": _iso(result.since), "full": config.full or config.since is not None,
            **result.http,
        })
        return {"sync_id": result.sync_id, "records_fetched": result.records_fetched,
                "records_staged": staged, "pages": result.pages,
                "quarantined": result.quarantined, "cursor_before": _iso(result.cursor_before),
                "since": _iso(result.since), "since_at": _epoch(result.since),
                "full": config.full or config.since is not None,
                "trigger": trigger_of(context.run.tags), "seconds": result.seconds,
                "reconciled_deleted": result.reconciled_deleted,
                "notices": " | ".join(result.notices), **result.http}

    @op(name=f"process_{stem}", out=Out(dict))
    def process(context: OpExecutionContext, retrieved: dict[str, Any],
                akita_db: AkitaDatabase) -> Output[dict[str, Any]]:
        result = process_staged(akita_db.engine(), context.partition_key, interaction_type,
                                sync_id=int(retrieved["sync_id"]))
        cursor_after = _iso(result.cursor_after)
        since_at = retrieved["since_at"]
        now = utcnow().replace(microsecond=0)
        metadata: dict[str, Any] = {
            "trigger": retrieved["trigger"],
            "full": retrieved["full"],
            "records_fetched": retrieved["records_fetched"],
            "records_staged": retrieved["records_staged"],
            "pages": retrieved["pages"],
            "records_processed": result.processed,
            "quarantined": retrieved["quarantined"] + result.quarantined,
            "deleted": result.deleted,
            # Gone at the provider without a trace, found by a complete full read.
            "reconciled_deleted": retrieved["reconciled_deleted"],
            "created": result.created,
            "matched": result.matched,
            "merged": result.merged,
            "match_reviews": result.reviews,
            "updated": result.rules.get("source_id", 0),
            "linked": result.linked,
            "cursor": f"{retrieved['cursor_before']} → {cursor_after}",
            "cursor_before": retrieved["cursor_before"],
            "cursor_after": cursor_after,
            # Read from (cursor − lookback, or the history start) up to now.
            "history_window": f"{retrieved['since']} → {_iso(now)}",
            "history_window_days": (round((now.timestamp() - since_at) / 86400, 2)
                                    if since_at is not None else 0.0),
            "api_calls": retrieved["api_calls"],
            "retries": retrieved["retries"],
            "rate_limit_waits": retrieved["rate_limit_waits"],
            "rate_limit_wait_seconds": retrieved.get("waited_seconds", 0.0),
            "retrieve_seconds": round(retrieved["seconds"], 3),
            "process_seconds": round(result.seconds, 3),
            "duration_seconds": round(retrieved["seconds"] + result.seconds, 3),
        }
        if retrieved["notices"]:  # e.g. a fallback to a full re-read, and why
            metadata["notices"] = retrieved["notices"]
            context.log.warning("%s: %s", context.partition_key, retrieved["notices"])
        for rule, count in sorted(result.rules.items()):
            metadata[f"links_by_rule/{rule}"] = count
        summary = {k: v for k, v in metadata.items() if isinstance(v, int | float | str)}
        return Output(summary, metadata={
            k: MetadataValue.text(v) if isinstance(v, str) else v for k, v in metadata.items()})

    kinds = {provider, "sql"}
    description = (f"{spec.title} {interaction_type}: one partition per integration. Retrieves "
                   f"the changes since the last successful sync, then types, matches and links "
                   f"them to the customer's Accounts and Contacts.")

    @graph_asset(
        name=interaction_type,
        key_prefix=[provider],
        group_name=provider,
        partitions_def=integrations_partitions(provider),
        ins={t: AssetIn(key=asset_key(provider, t), dagster_type=Nothing) for t in upstream},
        description=description,
        kinds=kinds,
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
