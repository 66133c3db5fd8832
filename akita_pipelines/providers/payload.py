"""Reading provider payloads for the streams' typed mappings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def text(payload: Mapping[str, Any], key: str) -> str | None:
    """A string field; None when missing or empty; TypeError (so the record is quarantined)
    when it holds anything else."""
    value = payload.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError(f"{key} must be a string, got {type(value).__name__}")
    return value


def first_email(fields: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    """The first value under ``keys`` that reads as an email address (a string with an ``@``);
    anything else under those keys is passed over, not refused: they are the source's own
    fields, kept in ``fields`` as they came."""
    for key in keys:
        value = fields.get(key)
        if isinstance(value, str) and "@" in value:
            return value
    return None
