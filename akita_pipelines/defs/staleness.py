"""Staleness per Integration Object in the UI, with the ``late`` rule of ``akita status``.

Dagster's freshness policies are per asset, not per partition, so each Integration Object
asset gets an ``on_time`` check listing its late partitions (integrations), and a sensor
evaluates those checks whenever the late set of an asset changes. It also records an
observation on each partition that turns late, so the partition's own page says so.
"""


import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime

from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    AssetObservation,
    DefaultSensorStatus,
    MetadataValue,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    asset_check,
    sensor,
)

from akita_pipelines.core.clock import utcnow
from akita_pipelines.db import state
from akita_pipelines.db.state import ObjectRow
from akita_pipelines.defs.partitions import partitions_name
from akita_pipelines.defs.resources import AkitaDatabase
from akita_pipelines.sync.status import LATE_RULE, late_by_asset, late_since

CHECK_NAME = "on_time"
#: Late integrations named in a check's metadata (the count is always complete).
LISTED = 50
#: Late partitions marked per asset when its late set changes (the check counts them all).
MAX_OBSERVATIONS = 500


def _iso(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "—"


def on_time_result(late: Sequence[ObjectRow], now: datetime) -> AssetCheckResult:
    """The ``on_time`` check of one Integration Object asset over its late objects."""
    oldest = late[0] if late else None
    metadata = {
        "late_integrations": MetadataValue.int(len(late)),
        "late": MetadataValue.text(", ".join(o.integration_id for o in late[:LISTED])
                                   + (" …" if len(late) > LISTED else "") or "none"),
        "most_overdue": MetadataValue.text(
            f"{oldest.integration_id}: due since {_iso(oldest.next_due_at)}" if oldest
            else "none"),
        "most_overdue_hours": MetadataValue.float(
            round((now - oldest.next_due_at).total_seconds() / 3600, 2)
            if oldest and oldest.next_due_at else 0.0),
        "rule": MetadataValue.text(LATE_RULE),
    }
    return AssetCheckResult(passed=not late, severity=AssetCheckSeverity.WARN,
                            metadata=metadata)


def _on_time_check(key: AssetKey) -> AssetChecksDefinition:
    provider, interaction_type = key.path

    @asset_check(asset=key, name=CHECK_NAME, blocking=False,
                 description=f"No integration's objects are late: {LATE_RULE}. The partition "
                             "of a late integration also gets an observation saying so.")
    def on_time(akita_db: AkitaDatabase) -> AssetCheckResult:
        now = utcnow()
        with akita_db.engine().connect() as conn:
            late = late_by_asset(state.due_objects(conn, now), now)
        return on_time_result(late.get((provider, interaction_type), []), now)

    return on_time


def build_on_time_checks(object_keys: Sequence[AssetKey]) -> list[AssetChecksDefinition]:
    """One ``on_time`` check per Integration Object asset (evaluated by the staleness sensor,
    or on demand from the asset's Checks tab)."""
    return [_on_time_check(key) for key in object_keys]


def _digest(late: Sequence[ObjectRow]) -> str:
    return hashlib.sha1(",".join(o.integration_id for o in late).encode(),
                        usedforsecurity=False).hexdigest()[:12]


def staleness_events(objects: Sequence[ObjectRow], now: datetime, *,
                     assets: Sequence[AssetKey], known: Mapping[str, Sequence[str]],
                     previous: Mapping[str, str]
                     ) -> tuple[list[AssetCheckEvaluation | AssetObservation], dict[str, str]]:
    """Events for every asset whose late set changed since ``previous`` (digests by asset;
    an asset missing there has never been evaluated): its ``on_time`` check evaluation and
    an observation on each of its late partitions Dagster knows (``known``, by provider).
    Returns them with the new digests ("" = on time)."""
    late = late_by_asset(objects, now)
    digests: dict[str, str] = {}
    events: list[AssetCheckEvaluation | AssetObservation] = []
    names = {"/".join(k.path) for k in assets} | {f"{p}/{t}" for p, t in late}
    for name in sorted(names):
        provider, interaction_type = name.split("/", 1)
        key = AssetKey([provider, interaction_type])
        group = late.get((provider, interaction_type), [])
        digests[name] = _digest(group) if group else ""
        if previous.get(name) == digests[name]:
            continue
        result = on_time_result(group, now)
        events.append(AssetCheckEvaluation(
            asset_key=key, check_name=CHECK_NAME, passed=bool(result.passed),
            severity=result.severity, metadata=dict(result.metadata)))
        partitions = set(known.get(provider, ()))
        for obj in group[:MAX_OBSERVATIONS]:
            if obj.integration_id in partitions:
                events.append(_late_observation(key, obj))
    return events, digests


def _late_observation(key: AssetKey, obj: ObjectRow) -> AssetObservation:
    return AssetObservation(
        asset_key=key, partition=obj.integration_id, description=f"late: {LATE_RULE}",
        metadata={"status": MetadataValue.text("late"),
                  "due_since": MetadataValue.text(_iso(obj.next_due_at)),
                  "late_since": MetadataValue.text(_iso(late_since(obj))),
                  "last_synced_at": MetadataValue.text(_iso(obj.last_synced_at)),
                  "syncs_per_day": MetadataValue.float(obj.frequency_per_day),
                  "rule": MetadataValue.text(LATE_RULE)})


def build_staleness_sensor(assets: Sequence[AssetKey]) -> SensorDefinition:
    providers = sorted({k.path[0] for k in assets})

    @sensor(name="akita_staleness_sensor", minimum_interval_seconds=60,
            default_status=DefaultSensorStatus.RUNNING,
            description="Every minute: evaluates each Integration Object asset's on_time check "
                        "when its late integrations change (and once at first), and marks "
                        "those partitions late with an observation (the rule of `akita status`).")
    def akita_staleness_sensor(context: SensorEvaluationContext,
                               akita_db: AkitaDatabase) -> SensorResult:
        now = utcnow()
        cursor = json.loads(context.cursor) if context.cursor else {}
        with akita_db.engine().connect() as conn:
            overdue = [o for o in state.due_objects(conn, now) if o.provider in providers]
        known = {p: context.instance.get_dynamic_partitions(partitions_name(p))
                 for p in {o.provider for o in overdue}}
        events, digests = staleness_events(overdue, now, assets=assets, known=known,
                                           previous=cursor.get("late", {}))
        new_cursor = json.dumps({"at": now.isoformat(), "late": digests})
        if not events:
            late = sum(1 for d in digests.values() if d)
            return SensorResult(skip_reason=f"{late} assets with late integrations; no change",
                                cursor=new_cursor)
        return SensorResult(asset_events=events, cursor=new_cursor)

    return akita_staleness_sensor
