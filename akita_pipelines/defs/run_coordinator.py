"""The run queue, with the ``akita/*`` tags put on every run before it is queued.

Runs launched from the UI (materialise, backfill, re-execution) carry no tags of ours: the
backfill daemon and the webserver build them from the asset graph. Tag concurrency limits
(``akita/provider`` in dagster.yaml) are checked by the queue daemon against the tags a
queued run has, so the tags must be on the run *before* it is queued. Every launch path —
sensor, UI, backfill daemon, re-execution, GraphQL — hands the new run to the instance's run
coordinator (``instance.submit_run``): this subclass adds the tags there, then queues the run
exactly as Dagster's own ``QueuedRunCoordinator`` does (same ``concurrency:`` settings).

Configured in dagster.yaml::

    run_coordinator:
      module: akita_pipelines.defs.run_coordinator
      class: AkitaRunCoordinator
"""


import logging
from collections.abc import Callable, Mapping

from dagster import (
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    QueuedRunCoordinator,
    SubmitRunContext,
)
from sqlalchemy.exc import SQLAlchemyError

from akita_pipelines.core.errors import AkitaError
from akita_pipelines.core.types import Integration
from akita_pipelines.db import integrations
from akita_pipelines.db.engine import cached_engine, default_database_url

log = logging.getLogger(__name__)

CUSTOMER_TAG = "akita/customer"
INTEGRATION_TAG = "akita/integration"
PROVIDER_TAG = "akita/provider"
TRIGGER_TAG = "akita/trigger"
#: History start (YYYY-MM-DD) of a backfill or full re-read: a flat run tag, settable in the
#: UI's launch dialogs ("Add tags"), where nested run config is hard to find.
SINCE_TAG = "akita/since"
#: ``true``: re-read from the history start instead of the cursor (a manual full re-sync).
FULL_TAG = "akita/full"
PARTITION_TAG = "dagster/partition"
BACKFILL_TAG = "dagster/backfill"
PARENT_RUN_TAG = "dagster/parent_run_id"
SENSOR_TAG = "dagster/sensor_name"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

Lookup = Callable[[str], Integration | None]


def trigger_of(tags: Mapping[str, str]) -> str:
    """What launched the run: backfill | reexecution | sensor | cli | manual (the UI).

    A backfill's runs keep ``backfill`` (a re-executed backfill run re-reads history too);
    a re-execution copies its parent's tags, so its own parent tag wins over a copied trigger.
    """
    if BACKFILL_TAG in tags:
        return "backfill"
    if PARENT_RUN_TAG in tags:
        return "reexecution"
    if TRIGGER_TAG in tags:
        return tags[TRIGGER_TAG]
    if SENSOR_TAG in tags:
        return "sensor"
    return "manual"


def integration_of(tags: Mapping[str, str]) -> str | None:
    """The run's integration: its partition key (or a one-key range)."""
    if PARTITION_TAG in tags:
        return tags[PARTITION_TAG]
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if start is not None and start == end:
        return start
    return None


def akita_tags(tags: Mapping[str, str], lookup: Lookup) -> dict[str, str]:
    """The ``akita/*`` tags a run with ``tags`` lacks (tags it already has are kept as set,
    except the trigger, which is derived for backfills and re-executions)."""
    added: dict[str, str] = {}
    trigger = trigger_of(tags)
    if tags.get(TRIGGER_TAG) != trigger:
        added[TRIGGER_TAG] = trigger
    integration_id = integration_of(tags)
    if integration_id is None:
        return added
    integration = lookup(integration_id)
    found = {INTEGRATION_TAG: integration_id}
    if integration is not None:
        found[PROVIDER_TAG] = integration.provider
        found[CUSTOMER_TAG] = integration.customer_id
    else:
        # Unknown key (typed by hand in the UI): the run fails saying so; the prefix still
        # puts it under its provider's limit.
        found[PROVIDER_TAG] = integration_id.split(".", 1)[0]
    added.update({k: v for k, v in found.items() if k not in tags})
    return added


def database_lookup(integration_id: str) -> Integration | None:
    """The integration from the Akita database, or None when it is not registered."""
    try:
        with cached_engine(default_database_url()).connect() as conn:
            return integrations.get_integration(conn, integration_id)
    except (AkitaError, SQLAlchemyError) as exc:
        log.warning("no integration %r for run tags: %s", integration_id, type(exc).__name__)
        return None


class AkitaRunCoordinator(QueuedRunCoordinator[DagsterInstance]):
    """Dagster's queued run coordinator that first tags each run with ``akita/*`` tags."""

    lookup: Lookup = staticmethod(database_lookup)

    def submit_run(self, context: SubmitRunContext) -> DagsterRun:
        run = context.dagster_run
        if run.status == DagsterRunStatus.NOT_STARTED:
            added = akita_tags(run.tags, type(self).lookup)
            if added:
                self._instance.add_run_tags(run.run_id, added)
                refreshed = self._instance.get_run_by_id(run.run_id)
                if refreshed is not None:
                    context = SubmitRunContext(refreshed, context.workspace)
        return super().submit_run(context)
