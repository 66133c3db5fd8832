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
