"""Subscribing integrations: the endpoint URL a provider is given, and the demo's emulators."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass

from sqlalchemy import Engine

from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.errors import ConfigError
from akita_pipelines.db import integrations, push
from akita_pipelines.push.notifications import PUSH_PROVIDERS


def endpoint_url(receiver_url: str, provider: str, path_token: str) -> str:
    """Where ``provider`` posts one integration's notifications."""
    return f"{receiver_url.rstrip('/')}/webhooks/{provider}/{path_token}"


@dataclass(frozen=True)
class Subscribed:
    integration_id: str
    subscription_id: int
    url: str


def subscribe_sandbox(engine: Engine, receiver_url: str, *, retry_scale: float = 1.0,
                      timeout: float = 10.0, replace: bool = False) -> list[Subscribed]:
    """Subscribe every integration of a pushing provider that has no subscription yet to its
    emulator (``<base_url>/__sandbox/webhooks``), as a customer would configure the real one.

    Args:
        engine: The Akita database.
        receiver_url: The receiver's base URL, as the emulators reach it.
        retry_scale: Shortens the providers' retry delays (1.0: as documented).
        timeout: Seconds to wait for an emulator.
        replace: Drop the integrations' subscriptions first (freshly started emulators
            know none).
    """
    done = []
    with engine.connect() as conn:
        registered = [i for p in PUSH_PROVIDERS for i in integrations.list_integrations(conn, p)]
        have = {s.integration_id for s in push.list_subscriptions(conn)}
    if replace:
        wanted = {i.id for i in registered if i.config.get("base_url")}
        with engine.begin() as conn:
            for sub in push.list_subscriptions(conn):
                if sub.integration_id in wanted:
                    push.delete_subscription(conn, sub.id)
        have -= wanted
    for integration in registered:
        base_url = integration.config.get("base_url")
        if integration.id in have or not base_url:
            continue
        token = push.new_path_token()
        url = endpoint_url(receiver_url, integration.provider, token)
        request = urllib.request.Request(
            f"{str(base_url).rstrip('/')}/__sandbox/webhooks", method="POST",
            data=json.dumps({"url": url, "retry_scale": retry_scale}).encode(),
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                created = json.loads(answer.read())
        except OSError as exc:
            raise ConfigError(f"cannot subscribe {integration.id} at its emulator "
                              f"{base_url}: {exc}") from None
        with engine.begin() as conn:
            sub = push.create_subscription(conn, integration.id, secret=created["secret"],
                                           account_ref=created.get("account_ref"),
                                           now=utcnow(), path_token=token)
        done.append(Subscribed(integration.id, sub.id, url))
    return done
