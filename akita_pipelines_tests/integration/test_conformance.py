"""One conformance suite for every provider that has an emulator, over real HTTP.

Incremental correctness, paging to the end, auth refresh, rate-limit handling and bad
payloads, each driven through the real sync path (retrieve → stage → process) against the
provider's emulator.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select

from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.errors import AkitaError
from akita_pipelines.core.types import Customer, Integration
from akita_pipelines.db.integrations import get_integration, set_integration_state
from akita_pipelines.db.schema import interactions
from akita_pipelines.onboarding import add_customer, add_integration
from akita_pipelines.providers.http import HttpClient
from akita_pipelines.providers.registry import PROVIDERS
from akita_pipelines.sandbox.server import EMULATORS, Sandbox, start_sandbox
from akita_pipelines.sync.service import SyncResult, sync_object

CONFORMING = sorted(set(PROVIDERS) & set(EMULATORS))


@pytest.fixture(params=CONFORMING)
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def running(provider: str) -> Iterator[Sandbox]:
    with start_sandbox(base_port=0, seed=21, providers=[provider]) as sandbox:
        yield sandbox


def _register(engine: Engine, sandbox: Sandbox, provider: str) -> str:
    info = dict(sandbox.urls[provider])
    base_url = info.pop("base_url")
    config = info.pop("config", None) or {"base_url": base_url}
    add_customer(engine, Customer(id="conform", name="Conform"))
    integration_id = f"{provider}.conform"
    add_integration(engine, Integration(id=integration_id, customer_id="conform",
                                        provider=provider, config=config), info)
    _CONFIGS[provider] = config
    return integration_id


_CONFIGS: dict[str, dict[str, Any]] = {}


def _sync(engine: Engine, integration: str, kind: str) -> SyncResult:
    return sync_object(engine, integration, kind, http=HttpClient(sleep=lambda s: None))


def _stored_ids(engine: Engine, integration: str, kind: str) -> set[str]:
    with engine.connect() as conn:
        return {r for (r,) in conn.execute(select(interactions.c.external_id).where(
            interactions.c.integration_id == integration,
            interactions.c.interaction_type == kind))}


def _source_ids(sandbox: Sandbox, provider: str, kind: str) -> set[str]:
    stream = PROVIDERS[provider].streams_for(_CONFIGS[provider])[kind]
    records: list[dict[str, Any]] = sandbox.emulators[provider].records(kind,
                                                                         include_deleted=True)
    return {str(r[stream.primary_key]) for r in records}


def _types(provider: str) -> list[str]:
    return PROVIDERS[provider].types_in_order(_CONFIGS[provider])


def test_pages_to_the_end_and_stores_every_record(sqlite_engine: Engine, running: Sandbox,
                                                  provider: str) -> None:
    integration = _register(sqlite_engine, running, provider)
    for kind in _types(provider):
        _sync(sqlite_engine, integration, kind)
        assert _stored_ids(sqlite_engine, integration, kind) == \
            _source_ids(running, provider, kind), kind


def test_incremental_sync_processes_only_what_changed(sqlite_engine: Engine, running: Sandbox,
                                                      provider: str) -> None:
    integration = _register(sqlite_engine, running, provider)
    kind = _types(provider)[0]
    _sync(sqlite_engine, integration, kind)
    touched = running.emulators[provider].touch(kind, 3)
    created = running.emulators[provider].create(kind, 2)
    second = _sync(sqlite_engine, integration, kind)
    assert second.processed.processed == len(touched) + len(created)
    assert set(created) <= _stored_ids(sqlite_engine, integration, kind)


def test_survives_token_expiry_rate_limits_and_server_errors(
        sqlite_engine: Engine, running: Sandbox, provider: str) -> None:
    integration = _register(sqlite_engine, running, provider)
    emulator = running.emulators[provider]
    kind = _types(provider)[0]
    _sync(sqlite_engine, integration, kind)
    emulator.inject("rate_limit")
    emulator.inject("server_error")
    emulator.touch(kind, 2)
    result = _sync(sqlite_engine, integration, kind)  # retried inside the HTTP door
    assert result.retrieved.http["retries"] >= 1
    emulator.expire_tokens()
    try:
        _sync(sqlite_engine, integration, kind)
        recovered = True
    except AkitaError:
        recovered = False  # a revoked key: the integration must wait for the customer
        with sqlite_engine.connect() as conn:
            assert get_integration(conn, integration).state == "needs_reauth"
    if "refresh_token" in PROVIDERS[provider].required_credentials:
        assert recovered, "an expired OAuth token must be refreshed, not fail the sync"

def test_bad_payloads_are_quarantined_or_retried_never_lost(
        sqlite_engine: Engine, running: Sandbox, provider: str) -> None:
    integration = _register(sqlite_engine, running, provider)
    emulator = running.emulators[provider]
    kind = _types(provider)[0]
    emulator.inject("bad_record")
    first = _sync(sqlite_engine, integration, kind)
    assert first.retrieved.quarantined + first.processed.quarantined >= 1
    emulator.inject("truncated")
    emulator.touch(kind, 2)
    with pytest.raises(AkitaError):
        _sync(sqlite_engine, integration, kind)
    with sqlite_engine.begin() as conn:
        set_integration_state(conn, integration, "active", utcnow())
    _sync(sqlite_engine, integration, kind)
    _sync(sqlite_engine, integration, kind)
    assert _stored_ids(sqlite_engine, integration, kind) == _source_ids(running, provider, kind)
