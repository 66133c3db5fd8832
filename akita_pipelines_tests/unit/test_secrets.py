from __future__ import annotations

import stat
from pathlib import Path

import pytest

from akita_pipelines.core.errors import ConfigError
from akita_pipelines.db import secrets


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AKITA_HOME", str(tmp_path))
    monkeypatch.delenv(secrets.ENV, raising=False)
    secrets._fernet.cache_clear()


def test_round_trip_hides_the_values_and_creates_an_owner_only_key(tmp_path: Path) -> None:
    stored = secrets.encrypt({"refresh_token": "very-secret-refresh"})
    assert "very-secret-refresh" not in str(stored)
    assert secrets.decrypt(stored) == {"refresh_token": "very-secret-refresh"}
    mode = stat.S_IMODE((tmp_path / "secret.key").stat().st_mode)
    assert mode == 0o600


def test_rotation_keeps_old_tokens_readable(monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = secrets.new_key(), secrets.new_key()
    monkeypatch.setenv(secrets.ENV, old)
    stored = secrets.encrypt({"api_key": "k-123456"})
    monkeypatch.setenv(secrets.ENV, f"{new},{old}")
    rotated = secrets.rotate(stored)
    monkeypatch.setenv(secrets.ENV, new)
    assert secrets.decrypt(rotated) == {"api_key": "k-123456"}
    with pytest.raises(ConfigError, match="lacks the key"):
        secrets.decrypt(stored)


def test_a_bad_key_says_what_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(secrets.ENV, "not-a-key")
    with pytest.raises(ConfigError, match="comma-separated Fernet keys"):
        secrets.encrypt({})
