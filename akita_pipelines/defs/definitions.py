"""Wire the code location from the provider registry."""


import logging
from collections.abc import Mapping

from dagster import (
    AssetSelection,
    Definitions,
    JobDefinition,
    define_asset_job,
    in_process_executor,
)
from sqlalchemy.exc import SQLAlchemyError

from akita_pipelines.core.errors import AkitaError
from akita_pipelines.db import integrations
from akita_pipelines.db.engine import database_exists
from akita_pipelines.defs.assets import build_provider_assets
from akita_pipelines.defs.batches import build_batch_job
from akita_pipelines.defs.matched import CHECKS, build_matched_assets
from akita_pipelines.defs.push_sensor import build_push_sensor
from akita_pipelines.defs.resources import AkitaDatabase
from akita_pipelines.defs.retention import build_run_retention_sensor
from akita_pipelines.defs.sensors import (
    build_run_failure_sensor,
    build_scheduler_sensor,
    job_name,
)
from akita_pipelines.defs.staleness import build_on_time_checks, build_staleness_sensor
from akita_pipelines.providers.base import ProviderSpec
from akita_pipelines.providers.registry import PROVIDERS

log = logging.getLogger(__name__)


def registered_custom_types(database: AkitaDatabase,
                            providers: Mapping[str, ProviderSpec]) -> dict[str, set[str]]:
    """Custom interaction types registered in the Akita database become assets too.

    Read when the code location loads: after registering a custom type, reload the code
    location (the UI's "Reload" button) to see its asset. A database that does not exist yet
    simply has none, and loading definitions never creates it (nor anything else).
    """
    if not database_exists(database.database_url()):
        log.info("no custom interaction types loaded: no Akita database yet")
        return {}
    try:
        with database.engine().connect() as conn:
            types = integrations.registered_types(conn, providers)
    except (SQLAlchemyError, AkitaError) as exc:
        log.info("no custom interaction types loaded: %s", type(exc).__name__)
        return {}
    return {p: t - set(providers[p].streams) for p, t in types.items()}


def build_definitions(providers: Mapping[str, ProviderSpec] = PROVIDERS,
                      database: AkitaDatabase | None = None) -> Definitions:
    database = database or AkitaDatabase()
    custom = registered_custom_types(database, providers)
    object_assets = [a for name, spec in providers.items()
                     for a in build_provider_assets(spec, custom.get(name, set()))]
    jobs: list[JobDefinition] = [
        define_asset_job(  # type: ignore[misc]
            name=job_name(name),
            # The on_time checks are the staleness sensor's: a sync run does not run them.
            selection=AssetSelection.groups(name).without_checks(),
            tags={"akita/provider": name},
            description=f"Sync {spec.title} Integration Objects of one integration (partition).",
        )
        for name, spec in providers.items()
    ]
    # The scheduler's batch runs: many integrations of one provider, materialisations reported
    # per partition (the asset jobs above stay for single partitions, the UI and backfills).
    batch_jobs = [build_batch_job(name, database) for name in providers]
    # Lineage from every Integration Object asset built, custom types (sql, files, rest) too.
    object_keys = [key for a in object_assets for key in a.keys]
    matched = build_matched_assets(object_keys)
    return Definitions(
        assets=[*object_assets, *matched],
        asset_checks=[*CHECKS, *build_on_time_checks(object_keys)],
        jobs=[*jobs, *batch_jobs],
        sensors=[build_scheduler_sensor(providers, [*jobs, *batch_jobs]),
                 build_run_failure_sensor(providers),
                 build_push_sensor(providers, jobs), build_staleness_sensor(object_keys),
                 build_run_retention_sensor()],
        resources={"akita_db": database},
        # One process per run is the capacity limit; steps run in that process.
        executor=in_process_executor,
    )
