"""``akita resync`` and ``akita backfill``: runs launched through the webserver's run queue."""

from __future__ import annotations

import sys
from datetime import datetime

import click

from akita_pipelines.control.client import (
    DEFAULT_URL,
    LOCATION_NAME,
    BackfillProgress,
    ControlError,
    DagsterControl,
    RunOutcome,
    retrieve_run_config,
)

_URL_OPTION = click.option(
    "--url", default=DEFAULT_URL, show_default=True, envvar="AKITA_DAGSTER_URL",
    help="The Dagster webserver ($AKITA_DAGSTER_URL).")
_LOCATION_OPTION = click.option(
    "--location", default=LOCATION_NAME, show_default=True, envvar="AKITA_DAGSTER_LOCATION",
    help="The code location's name in the workspace ($AKITA_DAGSTER_LOCATION).")


def _seconds(outcome: RunOutcome) -> str:
    return f" in {outcome.seconds:.1f} s" if outcome.seconds is not None else ""


@click.command("resync")
@click.argument("integration_id")
@click.option("--type", "interaction_type", default=None,
              help="Only this interaction type (default: every type of the integration).")
@click.option("--full", is_flag=True, help="Re-read from the history start, not the cursor.")
@click.option("--wait", is_flag=True, help="Follow the run; exit 1 unless it succeeds.")
@click.option("--timeout", type=float, default=None, help="Give up waiting after SECONDS.")
@_URL_OPTION
@_LOCATION_OPTION
def resync(integration_id: str, interaction_type: str | None, full: bool, wait: bool,
           timeout: float | None, url: str, location: str) -> None:
    """Queue a manual sync of one integration (one partition) on the Dagster webserver."""
    from akita_pipelines.core.types import type_order
    from akita_pipelines.db import integrations, state
    from akita_pipelines.db.engine import make_engine

    engine = make_engine()
    with engine.connect() as conn:
        integration = integrations.get_integration(conn, integration_id)
        known = sorted(o.interaction_type for o in state.list_objects(
            conn, integration_id=integration_id))
    if interaction_type is not None and interaction_type not in known:
        raise click.ClickException(f"{integration_id} has no interaction type "
                                   f"{interaction_type!r}; it has: {', '.join(known)}")
    provider = integration.provider
    control = DagsterControl(url, location=location)
    if interaction_type is not None:
        types = [interaction_type]
    else:
        types = sorted((key[-1] for key in control.group_assets(provider)),
                       key=lambda t: (type_order(t), t))
    run_id = control.launch_run(
        job_name=f"{provider}_sync", partition_key=integration_id,
        asset_keys=[[provider, interaction_type]] if interaction_type else None,
        run_config=retrieve_run_config(provider, types, full=full),
        tags={"akita/customer": integration.customer_id, "akita/provider": provider,
              "akita/integration": integration_id, "akita/trigger": "manual",
              "akita/types": ",".join(types)})
    click.echo(f"queued run {run_id} ({integration_id}: {', '.join(types)}"
               f"{', full' if full else ''}) {control.ui_url('/runs/' + run_id)}")
    if not wait:
        return
    outcome = control.wait_for_run(
        run_id, timeout_seconds=timeout,
        on_change=lambda o: None if o.done else click.echo(f"  {o.status.lower()}"))
    if outcome.succeeded:
        click.echo(f"run {run_id} succeeded{_seconds(outcome)}")
        return
    steps = f" (failed steps: {', '.join(outcome.failed_steps)})" if outcome.failed_steps else ""
    click.echo(f"run {run_id} {outcome.status.lower()}{_seconds(outcome)}{steps}", err=True)
    sys.exit(1)


def _summary(progress: BackfillProgress) -> str:
    return (f"backfill {progress.backfill_id} {progress.status.lower()}: "
            f"{progress.num_partitions} partitions, {progress.materialized} materialised, "
            f"{progress.failed} failed")


@click.command("backfill")
@click.option("--provider", required=True, help="The provider whose partitions to backfill.")
@click.option("--integration", "integration_ids", multiple=True,
              help="Only these integrations (repeatable; default: every enabled one).")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="History start YYYY-MM-DD (default: each integration's history_start).")
@click.option("--wait", is_flag=True, help="Show progress until done; exit 1 if any failed.")
@click.option("--timeout", type=float, default=None, help="Give up waiting after SECONDS.")
@_URL_OPTION
@_LOCATION_OPTION
def backfill(provider: str, integration_ids: tuple[str, ...], since: datetime | None,
             wait: bool, timeout: float | None, url: str, location: str) -> None:
    """Re-read a provider's history for its integrations with a Dagster backfill.

    Each partition's run reads from the history start (``--since`` or the setting), in pages
    checkpointed as they are staged; the committed cursor never moves backwards. Exactly what
    the UI's "Launch backfill" does (add the tag ``akita/since=YYYY-MM-DD`` there for a date).
    """
    from akita_pipelines.db import integrations
    from akita_pipelines.db.engine import make_engine

    with make_engine().connect() as conn:
        registered = integrations.list_integrations(conn, provider=provider)
    if integration_ids:
        ids = {i.id for i in registered}
        unknown = [i for i in integration_ids if i not in ids]
        if unknown:
            raise click.ClickException(f"not {provider} integrations: {', '.join(unknown)}")
        keys = list(dict.fromkeys(integration_ids))
    else:
        keys = [i.id for i in registered if i.state != "disabled"]
    if not keys:
        raise click.ClickException(f"no enabled {provider} integration to backfill")
    control = DagsterControl(url, location=location)
    asset_keys = control.group_assets(provider)
    if not asset_keys:
        raise ControlError(f"the webserver has no partitioned assets in group {provider!r}")
    day = since.date().isoformat() if since else None
    # No run config: like a backfill launched from the UI, each run is recognised as a
    # backfill by its dagster/backfill tag; the history start is a flat tag the UI can set too.
    tags = {"akita/provider": provider, "akita/trigger": "backfill"}
    if day:
        tags["akita/since"] = day
    backfill_id = control.launch_backfill(
        asset_keys=asset_keys, partition_keys=keys, tags=tags,
        title=f"{provider} history" + (f" since {day}" if day else ""))
    click.echo(f"backfill {backfill_id}: {len(keys)} partitions x {len(asset_keys)} assets "
               f"{control.ui_url('/runs/b/' + backfill_id)}")
    if not wait:
        return
    with click.progressbar(length=len(keys), label="partitions", show_pos=True) as bar:
        shown = 0

        def advance(progress: BackfillProgress) -> None:
            nonlocal shown
            if progress.finished_partitions > shown:
                bar.update(progress.finished_partitions - shown)
                shown = progress.finished_partitions

        final = control.wait_for_backfill(backfill_id, timeout_seconds=timeout,
                                          on_progress=advance)
    click.echo(_summary(final))
    if final.error:
        click.echo(f"error: {final.error.splitlines()[0]}", err=True)
    if not final.succeeded:
        sys.exit(1)
