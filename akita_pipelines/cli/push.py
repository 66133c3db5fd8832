"""``akita push``: the webhook receiver and its subscriptions."""

from __future__ import annotations

import os

import click

from akita_pipelines.cli.common import engine as _engine


@click.group()
def push() -> None:
    """Push beside polling: providers' webhooks make Integration Objects due at once."""


@push.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8702, show_default=True, type=int)
@click.option("--public-url", default=None,
              help="The URL providers post to, if a proxy rewrites it [$AKITA_PUSH_PUBLIC_URL].")
def push_serve(host: str, port: int, public_url: str | None) -> None:
    """Serve the webhook receiver until interrupted (stateless: run as many as you like)."""
    import uvicorn

    from akita_pipelines.push.app import create_app

    uvicorn.run(create_app(public_url=public_url), host=host, port=port, log_level="warning",
                access_log=False)


@push.command("add")
@click.argument("integration_id")
@click.option("--secret-env", required=True, metavar="VAR",
              help="Environment variable holding the provider's signing secret (never a "
                   "command-line argument: it would stay in the shell history).")
@click.option("--account-ref", default=None,
              help="The provider's account id (HubSpot portal, Stripe Connect account, "
                   "Zendesk account, Intercom app id) for its shared endpoint.")
@click.option("--receiver-url", default="http://127.0.0.1:8702", show_default=True)
def push_add(integration_id: str, secret_env: str, account_ref: str | None,
             receiver_url: str) -> None:
    """Register a provider webhook for INTEGRATION_ID; prints the URL to give the provider."""
    from akita_pipelines.core.clock import utcnow
    from akita_pipelines.db import push as repo
    from akita_pipelines.push.notifications import PUSH_PROVIDERS
    from akita_pipelines.push.subscribe import endpoint_url

    secret = os.environ.get(secret_env, "")
    if not secret:
        raise click.ClickException(f"${secret_env} is empty: export the signing secret first")
    with _engine().begin() as conn:
        sub = repo.create_subscription(conn, integration_id, secret=secret,
                                       account_ref=account_ref, now=utcnow())
        if sub.provider not in PUSH_PROVIDERS:  # raised inside: the subscription is undone
            raise click.ClickException(f"{sub.provider} does not push; it is polled only")
    click.echo(endpoint_url(receiver_url, sub.provider, sub.path_token))


@push.command("subscribe-sandbox")
@click.option("--receiver-url", default="http://127.0.0.1:8702", show_default=True)
@click.option("--retry-scale", default=1.0, show_default=True, type=float,
              help="Shorten the emulators' retry delays (the providers' take hours).")
def push_subscribe_sandbox(receiver_url: str, retry_scale: float) -> None:
    """Subscribe the demo integrations to their emulators' webhooks."""
    from akita_pipelines.push.subscribe import subscribe_sandbox

    # The emulators just started: they know no subscription, so the old ones are replaced.
    for done in subscribe_sandbox(_engine(), receiver_url, retry_scale=retry_scale,
                                  replace=True):
        click.echo(f"{done.integration_id:28s} subscription {done.subscription_id}")


@push.command("list")
def push_list() -> None:
    """Webhook subscriptions (their path tokens and secrets are not shown)."""
    from akita_pipelines.cli.common import table as _table
    from akita_pipelines.cli.common import when as _when
    from akita_pipelines.db import push as repo

    with _engine().connect() as conn:
        subs = repo.list_subscriptions(conn)
        pending = repo.pending_count(conn)
    click.echo(_table([[s.id, s.integration_id, s.provider, s.account_ref, _when(s.created_at)]
                       for s in subs], ["id", "integration", "provider", "account", "created"]))
    click.echo(f"{pending} notified objects waiting for a run")


@push.command("remove")
@click.argument("subscription_id", type=int)
def push_remove(subscription_id: int) -> None:
    """Delete a subscription (its endpoint answers 404 from then on)."""
    from akita_pipelines.db import push as repo

    with _engine().begin() as conn:
        if not repo.delete_subscription(conn, subscription_id):
            raise click.ClickException(f"no subscription {subscription_id}")
    click.echo(f"removed subscription {subscription_id}")


@push.command("stats")
def push_stats() -> None:
    """What the receivers answered: accepted, duplicate, and every refusal, counted."""
    from akita_pipelines.cli.common import table as _table
    from akita_pipelines.db import push as repo

    with _engine().connect() as conn:
        found = repo.counts(conn)
    click.echo(_table([[p, i or "-", o, n] for (p, i, o), n in sorted(found.items())],
                      ["provider", "integration", "outcome", "count"]))
