"""The declarative REST provider against the emulated customer API, over real HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from werkzeug.serving import make_server

from akita_pipelines.core.clock import parse_datetime
from akita_pipelines.core.errors import AuthError, ConfigError, DataError, ProviderError
from akita_pipelines.providers.auth import MemoryCredentialStore
from akita_pipelines.providers.base import ConnectionContext, Page
from akita_pipelines.providers.http import HttpClient
from akita_pipelines.providers.rest import PROVIDER
from akita_pipelines.sandbox.rest_api import STYLES, RestApiEmulator
from akita_pipelines.sandbox.world import World


@pytest.fixture
def api() -> Iterator[tuple[RestApiEmulator, str]]:
    emulator = RestApiEmulator(World(seed=11, n_companies=60))
    server = make_server("127.0.0.1", 0, emulator.wsgi_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield emulator, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def _read(emulator: RestApiEmulator, config: dict[str, Any], kind: str, since: Any = None,
          *, creds: dict[str, Any] | None = None, sleeps: list[float] | None = None,
          page_size: int = 20) -> list[Page]:
    waits = sleeps if sleeps is not None else []
    ctx = ConnectionContext("rest.acme", config,
                            MemoryCredentialStore(creds or emulator.credentials()),
                            HttpClient(sleep=waits.append), page_size=page_size)
    stream = PROVIDER.streams_for(config)[kind]
    return list(PROVIDER.connect(ctx).read_changes(stream, since))


def _ids(pages: list[Page]) -> list[str]:
    return [r["id"] for p in pages for r in p.records]


@pytest.mark.parametrize("style", STYLES)
def test_every_paginator_reads_every_record_once(api: tuple[RestApiEmulator, str],
                                                 style: str) -> None:
    emulator, url = api
    config = emulator.integration_config(url, style=style)
    for stream in config["streams"].values():
        stream["paginator"] = {**stream["paginator"], "page_size": 7}
    pages = _read(emulator, config, "accounts")
    expected = {r["id"] for r in emulator.records("accounts", include_deleted=True)}
    assert len(pages) > 3
    assert sorted(_ids(pages)) == sorted(expected)


@pytest.mark.parametrize("auth", ["bearer", "api_key", "basic", "oauth2_client_credentials"])
def test_every_auth_style_is_accepted(api: tuple[RestApiEmulator, str], auth: str) -> None:
    emulator, url = api
    config = emulator.integration_config(url, auth=auth)
    assert _ids(_read(emulator, config, "accounts"))
    with pytest.raises(AuthError):
        _read(emulator, config, "accounts", creds={k: "wrong" for k in emulator.credentials()})


def test_api_key_in_query_string(api: tuple[RestApiEmulator, str]) -> None:
    emulator, url = api
    config = emulator.integration_config(url, auth="api_key")
    config["auth"] = {"type": "api_key", "in": "query", "name": "api_key"}
    assert _ids(_read(emulator, config, "contacts"))


def test_pages_are_sorted_and_unsorted_api_checkpoints_only_at_the_end(
        api: tuple[RestApiEmulator, str]) -> None:
    emulator, url = api
    pages = _read(emulator, emulator.integration_config(url), "accounts")
    for page in pages:
        stamps = [parse_datetime(r["updated_at"]) for r in page.records]
        assert stamps == sorted(stamps)
    # The emulator orders by id, not by updated_at: no intermediate page is a safe resume point.
    assert [p.checkpoint for p in pages[:-1]] == [None] * (len(pages) - 1)
    newest = max(parse_datetime(r["updated_at"]) for r in emulator.records("accounts", True))
    assert pages[-1].checkpoint == newest


def test_incremental_read_returns_what_changed(api: tuple[RestApiEmulator, str]) -> None:
    emulator, url = api
    for style in ("cursor", "offset"):  # iso and unix filters
        config = emulator.integration_config(url, style=style)
        first = _read(emulator, config, "accounts")
        cursor = first[-1].checkpoint
        assert cursor is not None
        touched = emulator.touch("accounts", 3)
        emulator.delete("accounts", [touched[0]])
        second = _read(emulator, config, "accounts", cursor - timedelta(seconds=300))
        ids = set(_ids(second))
        assert set(touched) <= ids
        assert len(ids) < len(_ids(first)) // 2
        typed = {r["id"]: PROVIDER.streams_for(config)["accounts"].to_typed(r)
                 for p in second for r in p.records}
        assert typed[touched[0]].deleted is True
        assert typed[touched[1]].deleted is False


def test_contacts_map_nested_account_ref(api: tuple[RestApiEmulator, str]) -> None:
    emulator, url = api
    config = emulator.integration_config(url)
    stream = PROVIDER.streams_for(config)["contacts"]
    typed = [stream.to_typed(r) for p in _read(emulator, config, "contacts") for r in p.records]
    assert any(t.account_ref and t.account_ref.startswith("acc_") for t in typed)
    assert all(t.name == f"{t.first_name} {t.last_name}" for t in typed)


def test_rate_limit_waits_retry_after_then_succeeds(api: tuple[RestApiEmulator, str]) -> None:
    emulator, url = api
    emulator.inject("rate_limit", 2)
    sleeps: list[float] = []
    pages = _read(emulator, emulator.integration_config(url, auth="bearer"), "accounts",
                  sleeps=sleeps)
    assert sleeps[:2] == [1.0, 1.0]
    assert len(_ids(pages)) == len(emulator.records("accounts", True))


def test_expired_oauth_token_is_fetched_again_once(api: tuple[RestApiEmulator, str]) -> None:
    emulator, url = api
    config = emulator.integration_config(url)
    store = MemoryCredentialStore(emulator.credentials())
    ctx = ConnectionContext("rest.acme", config, store, HttpClient(sleep=lambda _: None),
                            page_size=20)
    connector = PROVIDER.connect(ctx)
    stream = PROVIDER.streams_for(config)["accounts"]
    pages = connector.read_changes(stream, None)
    next(pages)
    emulator.expire_tokens()
    rest = list(pages)
    assert rest
    assert emulator.stats["token_refreshes"] == 2
    assert store.load()["access_token"] in emulator.tokens


def test_bad_record_is_quarantined_by_to_typed(api: tuple[RestApiEmulator, str]) -> None:
    emulator, url = api
    config = emulator.integration_config(url)
    emulator.inject("bad_record")
    pages = _read(emulator, config, "accounts")
    stream = PROVIDER.streams_for(config)["accounts"]
    broken = [r for p in pages for r in p.records if "id" not in r]
    assert len(broken) == 1
    with pytest.raises(KeyError):
        stream.to_typed(broken[0])


def test_truncated_body_is_a_data_error(api: tuple[RestApiEmulator, str]) -> None:
    emulator, url = api
    emulator.inject("truncated")
    with pytest.raises(DataError, match="not JSON"):
        _read(emulator, emulator.integration_config(url), "accounts")


def test_next_link_to_another_host_is_refused(api: tuple[RestApiEmulator, str]) -> None:
    emulator, url = api
    config = emulator.integration_config(url, style="next")
    emulator.link_host = "collector.evil.example"
    with pytest.raises(ProviderError, match="another host"):
        _read(emulator, config, "accounts")


def test_a_paginator_that_repeats_itself_stops(api: tuple[RestApiEmulator, str]) -> None:
    emulator, url = api
    config = emulator.integration_config(url, style="pages")
    # Wrong parameter name: the API ignores it and serves page 1 forever.
    config["streams"]["accounts"]["paginator"] = {"type": "cursor", "cursor_param": "after",
                                                  "cursor_path": "page"}
    config["streams"]["accounts"]["records"] = "data"
    with pytest.raises(ProviderError, match="same next page"):
        _read(emulator, config, "accounts")


def test_config_errors_are_clear() -> None:
    with pytest.raises(ConfigError, match="path"):
        PROVIDER.streams_for({"streams": {"accounts": {"path": "https://evil.example/x",
                                                       "primary_key": "id"}}})
    with pytest.raises(ConfigError, match="paginator"):
        PROVIDER.streams_for({"streams": {"accounts": {"path": "/x", "primary_key": "id",
                                                       "paginator": {"type": "magic"}}}})
    with pytest.raises(ConfigError, match="unknown keys"):
        PROVIDER.streams_for({"streams": {"accounts": {"path": "/x", "primay_key": "id"}}})
