"""Credentials encrypted at rest with MultiFernet, so keys can be rotated.

Keys come from ``$AKITA_SECRET_KEYS`` (comma-separated Fernet keys, newest first). Without it,
the embedded default generates ``$AKITA_HOME/secret.key``, readable by its owner only. Stored
credentials look like ``{"fernet": "<token>"}``; nothing else about them is in the database.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from akita_pipelines.core.errors import ConfigError
from akita_pipelines.db.engine import akita_home

ENV = "AKITA_SECRET_KEYS"


def _local_key() -> bytes:
    path = akita_home() / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(Fernet.generate_key())
    return path.read_bytes().strip()


@lru_cache(maxsize=4)
def _fernet(keys: str | None) -> MultiFernet:
    raw = [k.strip().encode() for k in keys.split(",") if k.strip()] if keys else [_local_key()]
    try:
        return MultiFernet([Fernet(k) for k in raw])
    except ValueError:
        raise ConfigError(f"${ENV} must hold comma-separated Fernet keys "
                          "(generate one with `akita secrets new-key`)") from None


def fernet() -> MultiFernet:
    return _fernet(os.environ.get(ENV))


def encrypt(credentials: Mapping[str, Any]) -> dict[str, str]:
    token = fernet().encrypt(json.dumps(dict(credentials), sort_keys=True).encode())
    return {"fernet": token.decode()}


def decrypt(stored: Mapping[str, Any] | None) -> dict[str, Any]:
    if not stored:
        return {}
    token = stored.get("fernet")
    if not isinstance(token, str):
        raise ConfigError("stored credentials are not encrypted: run `akita secrets rotate`")
    try:
        value = json.loads(fernet().decrypt(token.encode()))
    except InvalidToken:
        raise ConfigError(f"cannot decrypt stored credentials: ${ENV} lacks the key they were "
                          "encrypted with") from None
    return dict(value)


def rotate(stored: Mapping[str, Any]) -> dict[str, str]:
    """Re-encrypt with the newest key (MultiFernet.rotate)."""
    token = stored.get("fernet")
    if not isinstance(token, str):
        return encrypt(stored)
    return {"fernet": fernet().rotate(token.encode()).decode()}


def new_key() -> str:
    return Fernet.generate_key().decode()
