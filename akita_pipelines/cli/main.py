"""The ``akita`` group and its commands for the database, registry, sandbox and status."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import click

from akita_pipelines.cli.common import engine as _engine
from akita_pipelines.cli.common import table as _table
from akita_pipelines.cli.common import when as _when
from akita_pipelines.core.errors import AkitaError


def _default_urls_file() -> Path:
    from akita_pipelines.db.engine import akita_home

    return akita_home() / "sandbox.json"


class AkitaGroup(click.Group):
    """Turns AkitaError into a one-line message and exit code 2 instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AkitaError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=AkitaGroup)
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def main(verbose: bool) -> None:
    """Akita Pipelines: schedule → retrieve → process."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@main.group()
def db() -> None:
    """The Akita database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the Akita database ($AKITA_DATABASE_URL or .akita/akita.db)."""
    from akita_pipelines.db.migrate import upgrade

    engine = _engine()
    upgrade(engine)
    click.echo(f"database at {engine.url.render_as_string(hide_password=True)} is up to date")


@main.group()
def sandbox() -> None:
    """Local emulators of the providers' APIs."""


@sandbox.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--base-port", default=8701, show_default=True, type=int,
              help="First provider's port; the next providers use the following ports.")
@click.option("--urls-file", type=click.Path(path_type=Path), default=None,
              help="Where to write {provider: {base_url, credentials}} [.akita/sandbox.json].")
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--churn-per-minute", default=6.0, show_default=True, type=float,
              help="Records each emulator changes per minute, so incremental syncs find work.")
@click.option("--history-contacts", default=0, show_default=True, type=int,
              help="Extra contacts with a year of history (backfill and memory benchmarks).")
def sandbox_serve(host: str, base_port: int, urls_file: Path | None, seed: int,
                  churn_per_minute: float, history_contacts: int) -> None:
    """Serve every provider emulator until interrupted."""
    from akita_pipelines.sandbox.server import start_sandbox

    target = urls_file or _default_urls_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    running = start_sandbox(host=host, base_port=base_port, seed=seed,
                            churn_per_minute=churn_per_minute,
                            history_contacts=history_contacts)
    running.write_urls(target)
    for provider, info in running.urls.items():
        click.echo(f"{provider:12s} {info['base_url']}")
    click.echo(f"URLs and demo credentials written to {target}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        running.stop()


@main.group()
def seed() -> None:
    """Seed data."""


@seed.command("demo")
@click.option("--urls-file", type=click.Path(path_type=Path, exists=True), default=None)
def seed_demo(urls_file: Path | None) -> None:
    """Register demo customers and integrations pointing at the running sandbox."""
    from akita_pipelines.demo import register_demo

    source = urls_file or _default_urls_file()
    if not source.exists():
        raise click.ClickException(f"{source} not found: start `akita sandbox serve` first")
    from akita_pipelines.db.engine import akita_home

    ids = register_demo(_engine(), json.loads(source.read_text()), akita_home())
    click.echo(f"registered {len(ids)} integrations: {', '.join(ids)}")


@main.group()
def integrations() -> None:
    """Customers' integrations."""


@integrations.command("list")
def integrations_list() -> None:
    """List the registered integrations."""
    from akita_pipelines.db.integrations import list_integrations

    with _engine().connect() as conn:
        found = list_integrations(conn)
    click.echo(_table([[i.id, i.provider, i.customer_id, i.state, i.config.get("base_url")]
                       for i in found], ["integration", "provider", "customer", "state",
                                         "base_url"]))


def json_object(text: str, where: str) -> dict[str, Any]:
    """``text`` parsed as a JSON object; a message naming ``where`` (an option or a file)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{where}: invalid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise click.ClickException(f"{where}: expected a JSON object ({{...}}), "
                                   f"got a {type(value).__name__}")
    return value


@integrations.command("add")
@click.argument("integration_id")
@click.option("--customer", required=True, help="Customer id (created if new).")
@click.option("--customer-name", default=None)
@click.option("--config", "config_json", default="{}", help="JSON, e.g. '{\"base_url\": ...}'")
@click.option("--credentials-file", required=True,
              type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="JSON file with the credentials (kept out of shell history).")
@click.option("--settings", "settings_json", default="{}", help="JSON layered-config overrides.")
@click.option("--replace", is_flag=True,
              help="Replace an integration registered under the same id (config, credentials "
                   "and settings), e.g. to re-authorise it.")
def integrations_add(integration_id: str, customer: str, customer_name: str | None,
                     config_json: str, credentials_file: Path, settings_json: str,
                     replace: bool) -> None:
    """Register INTEGRATION_ID (``<provider>.<slug>``) for a customer."""
    from akita_pipelines.core.types import Customer, Integration
    from akita_pipelines.db.integrations import get_customer, get_integration
    from akita_pipelines.onboarding import add_customer, add_integration

    config = json_object(config_json, "--config")
    settings = json_object(settings_json, "--settings")
    try:
        text = credentials_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"--credentials-file {credentials_file}: cannot read it "
                                   f"({type(exc).__name__})") from None
    credentials = json_object(text, f"--credentials-file {credentials_file}")
    engine = _engine()
    try:
        with engine.connect() as conn:
            existing = get_integration(conn, integration_id)
    except AkitaError:
        existing = None
    if existing is not None and not replace:
        raise click.ClickException(
            f"{integration_id} is registered already (customer {existing.customer_id}); "
            f"pass --replace to replace its config and credentials")
    if existing is not None and existing.customer_id != customer:
        raise click.ClickException(
            f"{integration_id} belongs to customer {existing.customer_id}, not {customer}")
    try:
        with engine.connect() as conn:
            get_customer(conn, customer)
    except AkitaError:
        add_customer(engine, Customer(id=customer, name=customer_name or customer))
    provider = integration_id.split(".", 1)[0]
    add_integration(engine, Integration(id=integration_id, customer_id=customer,
                                        provider=provider, config=config, settings=settings),
                    credentials)
    click.echo(f"{'replaced' if existing else 'registered'} {integration_id}")


def _set_state(integration_id: str, new_state: str) -> None:
    from akita_pipelines.core.clock import utcnow
    from akita_pipelines.db.integrations import set_integration_state

    with _engine().begin() as conn:
        set_integration_state(conn, integration_id, new_state, utcnow())
    click.echo(f"{integration_id}: {new_state}")


@integrations.command("enable")
@click.argument("integration_id")
def integrations_enable(integration_id: str) -> None:
    """Enable an integration (resets its failure counters; due now)."""
    _set_state(integration_id, "active")


@integrations.command("disable")
@click.argument("integration_id")
def integrations_disable(integration_id: str) -> None:
    """Disable an integration: the scheduler skips it."""
    _set_state(integration_id, "disabled")


@main.group()
def secrets() -> None:
    """Encryption keys for stored credentials ($AKITA_SECRET_KEYS, newest first)."""


@secrets.command("new-key")
def secrets_new_key() -> None:
    """Print a new key: prepend it to $AKITA_SECRET_KEYS, then run `akita secrets rotate`."""
    from akita_pipelines.db.secrets import new_key

    click.echo(new_key())


@secrets.command("rotate")
def secrets_rotate() -> None:
    """Re-encrypt every integration's credentials with the newest key."""
    from akita_pipelines.db.integrations import reencrypt_credentials

    with _engine().begin() as conn:
        count = reencrypt_credentials(conn)
    click.echo(f"re-encrypted the credentials of {count} integrations")


@main.group()
def registry() -> None:
    """Customers and integrations from a YAML file."""


@registry.command("load")
@click.argument("path", type=click.Path(path_type=Path, exists=True))
def registry_load(path: Path) -> None:
    """Register the customers and integrations declared in PATH."""
    from akita_pipelines.onboarding import load_file

    ids = load_file(_engine(), path)
    click.echo(f"registered {len(ids)} integrations")


@main.command()
@click.option("--once", is_flag=True, required=True,
              help="One scheduler pass in this process (the daemon runs the sensor otherwise).")
@click.option("--integration", "integration_id", default=None)
@click.option("--type", "types", multiple=True, help="Interaction type (repeatable).")
@click.option("--full", is_flag=True, help="Re-read from the history start.")
def sync(once: bool, integration_id: str | None, types: tuple[str, ...], full: bool) -> None:
    """Sync what is due (or what is named), print a summary, exit 1 if a sync failed."""
    from akita_pipelines.core.clock import utcnow
    from akita_pipelines.core.types import type_order
    from akita_pipelines.db import state
    from akita_pipelines.sync.service import sync_object

    engine = _engine()
    with engine.connect() as conn:
        if integration_id or types:
            objects = state.list_objects(conn, integration_id=integration_id,
                                         types=list(types) or None)
            if not objects:
                raise click.ClickException("no Integration Object matches those options")
        else:
            objects = state.due_objects(conn, utcnow())
    objects.sort(key=lambda o: (o.integration_id, type_order(o.interaction_type)))
    rows: list[list[Any]] = []
    failed = 0
    for obj in objects:
        try:
            result = sync_object(engine, obj.integration_id, obj.interaction_type, full=full)
        except AkitaError as exc:
            failed += 1
            rows.append([obj.integration_id, obj.interaction_type, "failed", "", "", "", "",
                         str(exc)[:80]])
            continue
        r, p = result.retrieved, result.processed
        rows.append([obj.integration_id, obj.interaction_type, "ok", r.records_fetched, r.pages,
                     p.created, p.matched, f"{r.seconds + p.seconds:.2f}s"])
    click.echo(_table(rows, ["integration", "type", "result", "fetched", "pages", "created",
                             "matched", "time / error"]) if rows else "nothing due")
    if failed:
        sys.exit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True)
def status(as_json: bool) -> None:
    """Every Integration Object: frequency, last synced, next due, health, last error."""
    from akita_pipelines.core.clock import utcnow
    from akita_pipelines.db import state
    from akita_pipelines.sync.status import object_status

    now = utcnow()
    with _engine().connect() as conn:
        statuses = [object_status(o, now) for o in state.list_objects(conn)]
    if as_json:
        click.echo(json.dumps([s.as_json() for s in statuses], indent=2))
        return
    click.echo(_table([[s.provider, s.customer_id, s.integration_id, s.interaction_type,
                        f"{s.frequency_per_day:g}/day", _when(s.last_synced_at),
                        _when(s.next_due_at), s.status, s.consecutive_failures,
                        (s.last_error or "")[:60]] for s in statuses],
                      ["provider", "customer", "integration", "type", "frequency",
                       "last synced", "next due", "status", "failures", "last error"]))


def _register_commands() -> None:
    """Commands that live in their own modules (imported lazily by their bodies)."""
    from akita_pipelines.cli.control import backfill, resync
    from akita_pipelines.cli.match import match
    from akita_pipelines.cli.push import push
    from akita_pipelines.cli.steward import entities, rematch, reviews

    main.add_command(match)
    main.add_command(push)
    main.add_command(resync)
    main.add_command(backfill)
    main.add_command(rematch)
    main.add_command(reviews)
    main.add_command(entities)


_register_commands()

if __name__ == "__main__":
    main()
