"""Declarative field mapping onto :class:`TypedRecord`, shared by the sql, files and rest providers.

Those providers have no built-in streams: every interaction type an integration syncs is
declared in its config as ``streams.<type>`` with a primary key, a cursor (``updated_at``)
field and ``fields``, a mapping of TypedRecord attributes onto source fields::

    {"primary_key": "id", "updated_at": "updated_at", "deleted": "is_deleted",
     "fields": {"name": "company_name", "website": "site", "account_ref": "company.id"}}

Source field names may be dotted paths into nested objects (REST payloads). Everything not
mapped stays in ``TypedRecord.fields``. A linked record (not an account or contact) whose
config maps no ``requester_email`` takes it from the first unmapped field of
:data:`REQUESTER_FIELDS` that holds an email address: tables and exports of tickets name
their requester's email column in these few ways.
"""

from __future__ import annotations

import base64
import math
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from akita_pipelines.core.clock import parse_datetime
from akita_pipelines.core.errors import ConfigError
from akita_pipelines.core.types import MATCHED_TYPES, TypedRecord
from akita_pipelines.providers.base import Stream
from akita_pipelines.providers.payload import first_email

#: TypedRecord attributes a stream config may map; ``external_id``, ``updated_at`` and ``deleted``
#: come from ``primary_key``, ``updated_at`` and ``deleted``.
MAPPABLE: tuple[str, ...] = ("name", "email", "website", "phone", "first_name", "last_name",
                             "account_ref", "contact_ref", "requester_email")

#: Where a linked record's requester email is looked for when the config maps none, in order.
REQUESTER_FIELDS: tuple[str, ...] = ("requester_email", "RequesterEmail", "SuppliedEmail",
                                     "from_email", "email")

_FALSE_WORDS = frozenset({"", "0", "false", "f", "no", "n", "null", "none"})


def lookup(payload: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` (``company.id``), or None when any step is missing.

    A key that itself contains dots (a SQL alias, a CSV header) wins over the nested reading.
    """
    if path in payload:
        return payload[path]
    value: Any = payload
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def as_text(value: Any, what: str) -> str | None:
    """A scalar as text: None and "" become None; objects and lists are refused (TypeError)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        # Spreadsheets and JSON turn integer ids into 123.0; the id is "123".
        return str(int(value)) if value.is_integer() else repr(value)
    raise TypeError(f"{what} must be a scalar, got {type(value).__name__}")


def as_datetime(value: Any, what: str, *, zone: tzinfo = UTC) -> datetime | None:
    """A cursor value as an aware UTC datetime.

    Accepts datetimes, ISO-8601 strings and unix seconds (or milliseconds, told apart by size).
    Naive values are read in ``zone``. Raises ValueError / TypeError on anything else.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=zone)
        return aware.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=zone).astimezone(UTC)
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a timestamp, got a boolean")
    if isinstance(value, int | float | Decimal):
        seconds = float(value)
        if not math.isfinite(seconds):
            raise ValueError(f"{what} is not a finite number")
        if seconds > 1e11:  # milliseconds since the epoch (1e11 s is the year 5138)
            seconds /= 1000.0
        return datetime.fromtimestamp(seconds, UTC)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").replace(".", "", 1).isdigit():
            return as_datetime(float(text), what, zone=zone)
        parsed = parse_datetime(text)  # ValueError on garbage
        if _is_naive_text(text):
            return parsed.replace(tzinfo=zone).astimezone(UTC)
        return parsed
    raise TypeError(f"{what} must be a timestamp, got {type(value).__name__}")


def _is_naive_text(text: str) -> bool:
    if text.endswith(("Z", "z")):
        return False
    tail = text[10:]  # past the date: an offset sign after it means an explicit zone
    return "+" not in tail and "-" not in tail


def is_deleted(value: Any) -> bool:
    """Soft-delete flags: booleans, 0/1, yes/no words, or a non-empty ``deleted_at``."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE_WORDS
    return True


def iso(value: datetime) -> str:
    """An aware datetime as ISO-8601 UTC with a ``Z`` (what staging and ``to_typed`` parse)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def json_safe(value: Any) -> Any:
    """A database or spreadsheet value as JSON: staged payloads are JSON documents.

    Decimals become strings (a float would silently round money); aware datetimes become UTC
    ISO strings, naive ones keep their wall-clock reading.
    """
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime):
        return iso(value) if value.tzinfo is not None else value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    return str(value)


@dataclass(frozen=True)
class FieldMapping:
    """One stream's mapping of source fields onto TypedRecord."""

    interaction_type: str
    primary_key: str
    cursor_field: str | None
    fields: Mapping[str, str]
    deleted: str | None = None

    def source_fields(self) -> tuple[str, ...]:
        """The source fields the mapping reads, primary key first."""
        named = [self.primary_key, self.cursor_field, self.deleted, *self.fields.values()]
        return tuple(dict.fromkeys(n for n in named if n))

    def to_typed(self, payload: Mapping[str, Any]) -> TypedRecord:
        """Map one payload; KeyError / ValueError / TypeError on a record that lacks its id or
        carries an unreadable timestamp (the processor quarantines it)."""
        if not isinstance(payload, Mapping):
            raise TypeError(f"record must be an object, got {type(payload).__name__}")
        record_id = as_text(lookup(payload, self.primary_key), self.primary_key)
        if record_id is None:
            raise KeyError(f"record has no {self.primary_key!r}")
        updated_at = None
        if self.cursor_field:
            updated_at = as_datetime(lookup(payload, self.cursor_field), self.cursor_field)
        typed = {attr: as_text(lookup(payload, source), source)
                 for attr, source in self.fields.items()}
        if typed.get("name") is None and (typed.get("first_name") or typed.get("last_name")):
            typed["name"] = " ".join(p for p in (typed.get("first_name"),
                                                 typed.get("last_name")) if p)
        deleted = is_deleted(lookup(payload, self.deleted)) if self.deleted else False
        consumed = {p.split(".")[0] for p in self.source_fields()}
        rest = {k: v for k, v in payload.items() if k not in consumed}
        if "requester_email" not in self.fields and self.interaction_type not in MATCHED_TYPES:
            typed["requester_email"] = first_email(rest, REQUESTER_FIELDS)
        return TypedRecord(
            interaction_type=self.interaction_type,
            external_id=record_id,
            updated_at=updated_at,
            deleted=deleted,
            fields=rest,
            **typed,
        )


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where} must be a non-empty field name")
    return value


def parse_mapping(interaction_type: str, config: Mapping[str, Any], *, where: str,
                  cursor_key: str = "updated_at", cursor_required: bool = True,
                  allowed: Iterable[str] = ()) -> FieldMapping:
    """Read a stream config's ``primary_key``, cursor, ``deleted`` and ``fields`` keys.

    Args:
        interaction_type: the stream's Akita name.
        config: ``config["streams"][interaction_type]``.
        where: how to name the config in error messages (``streams.accounts``).
        cursor_key: the key naming the cursor field.
        cursor_required: whether the cursor field must be named.
        allowed: the provider's other keys; anything else is a ConfigError (a typo such as
            ``primay_key`` must not pass silently).

    Raises:
        ConfigError: naming what to fix.
    """
    known = {"primary_key", "updated_at", "deleted", "fields", cursor_key, *allowed}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; known keys are {sorted(known)}")
    primary_key = _name(config.get("primary_key"), f"{where}.primary_key")
    cursor = config.get(cursor_key)
    if cursor is None and cursor_required:
        raise ConfigError(f"{where}.{cursor_key} must name the field that moves when a "
                          "record changes")
    cursor_field = _name(cursor, f"{where}.{cursor_key}") if cursor is not None else None
    deleted = config.get("deleted")
    fields = config.get("fields") or {}
    if not isinstance(fields, Mapping):
        raise ConfigError(f"{where}.fields must map TypedRecord attributes to source fields")
    bad = sorted(set(fields) - set(MAPPABLE))
    if bad:
        raise ConfigError(f"{where}.fields: cannot map {bad}; mappable attributes are "
                          f"{list(MAPPABLE)}")
    return FieldMapping(
        interaction_type=interaction_type, primary_key=primary_key, cursor_field=cursor_field,
        fields={k: _name(v, f"{where}.fields.{k}") for k, v in fields.items()},
        deleted=_name(deleted, f"{where}.deleted") if deleted is not None else None)


def make_stream(mapping: FieldMapping, source_object: str, *,
                cursor_field: str | None = None) -> Stream:
    """A :class:`Stream` whose ``to_typed`` applies ``mapping``."""
    to_typed: Callable[[Mapping[str, Any]], TypedRecord] = mapping.to_typed
    return Stream(interaction_type=mapping.interaction_type, source_object=source_object,
                  primary_key=mapping.primary_key,
                  cursor_field=cursor_field or mapping.cursor_field or "",
                  fields=mapping.source_fields(), to_typed=to_typed)


def stream_config(config: Mapping[str, Any], interaction_type: str) -> Mapping[str, Any]:
    """``config["streams"][interaction_type]``, or a ConfigError."""
    streams = config.get("streams") or {}
    found = streams.get(interaction_type) if isinstance(streams, Mapping) else None
    if not isinstance(found, Mapping):
        raise ConfigError(f"config has no streams.{interaction_type}")
    return found


def dedupe_last(records: list[dict[str, Any]], primary_key: str) -> list[dict[str, Any]]:
    """Keep the last record of each primary key, in order.

    A page carrying one id twice (a join in a query, a CSV with a repeated row, an API that
    shifts while paging) would make one ``INSERT … ON CONFLICT`` touch a row twice, which
    PostgreSQL refuses; the later record is the newer one.
    """
    last: dict[Any, int] = {}
    for index, record in enumerate(records):
        key = lookup(record, primary_key) if isinstance(record, Mapping) else None
        hashable = isinstance(key, str | int | float) and not isinstance(key, bool)
        last[str(key) if hashable else ("__row", index)] = index
    if len(last) == len(records):
        return records
    keep = set(last.values())
    return [r for i, r in enumerate(records) if i in keep]
