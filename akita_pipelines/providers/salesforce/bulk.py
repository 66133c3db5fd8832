"""Salesforce Bulk API 2.0 query jobs: a history read in a few large CSV result sets.

A job (``POST /jobs/query``, operation ``queryAll`` so deleted rows come with ``IsDeleted``) is
polled until ``JobComplete``, then its results are read set by set, following
``Sforce-Locator`` until ``null``. Bulk API 2.0 refuses ``ORDER BY``, so rows come in no
particular modstamp order: a set's last modstamp is no safe resume point. Each set is staged
with a resume state instead (job id, the next locator, the highest modstamp staged so far); a
killed read continues from the next locator of the same job, and only the last set moves the
checkpoint, to the highest modstamp the job returned but never past the job's creation (a
record changed while the job ran may have been read in its old version).

CSV values are text. Each column is typed from the object's describe so that a record reads
exactly as the REST query resource renders it: empty → null (Salesforce stores no empty
strings), booleans, numbers as JSON would read the same digits, datetimes in REST's
``+0000`` form rather than the CSV's ``Z``, and ``Account.Name`` columns as a nested
``Account`` object (null when every column of the relationship is empty).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from akita_pipelines.core.clock import parse_datetime
from akita_pipelines.core.errors import ProviderError, TransientError

#: Job states after which polling stops.
FINISHED = ("JobComplete", "Failed", "Aborted")
#: Describe types whose CSV text is a JSON number.
NUMBERS = frozenset({"int", "double", "currency", "percent", "long"})
_INTEGER = re.compile(r"-?\d+\Z")

Converter = Callable[[str], Any]


class BulkJobGone(ProviderError):
    """The job or its locator no longer exists (deleted, or older than 7 days)."""


class BulkJobFailed(ProviderError):
    """The job ended ``Failed`` or ``Aborted``."""


class BulkUnavailable(ProviderError):
    """No query job can be created now (the org's daily job allowance is spent)."""


@dataclass(frozen=True)
class ResultSet:
    """One set of a job's results, typed, with the locator of the next set (None: the last)."""

    records: list[dict[str, Any]]
    next_locator: str | None


def _number(text: str) -> int | float:
    return int(text) if _INTEGER.match(text) else float(text)


def _datetime(text: str) -> str:
    """REST's rendering of a datetime: ``2024-01-01T00:00:00.000+0000`` (UTC, milliseconds)."""
    if len(text) == 24 and text[23] == "Z" and text[19] == ".":
        return text[:23] + "+0000"  # the CSV's usual form: only the zone is written apart
    at = parse_datetime(text).astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000"


def converter(kind: str) -> Converter:
    """How one describe type's CSV text becomes the value REST's JSON carries."""
    if kind == "boolean":
        return lambda text: text == "true"
    if kind in NUMBERS:
        return _number
    if kind == "datetime":
        return _datetime
    return str


def parse_csv(text: str, *, sobject: str, api_version: str, kinds: Mapping[str, str],
              delimiter: str = ",") -> list[dict[str, Any]]:
    """Turn one result set into records shaped as the REST query resource returns them.

    Args:
        text: The CSV, header row first.
        sobject: The queried object (for each record's ``attributes``).
        api_version: ``v59.0``: the version in the ``attributes`` URL.
        kinds: Column name (``Name``, ``Account.Name``) → describe type.
        delimiter: The job's column delimiter.

    Returns:
        One dict per row: the columns, relationships nested, and ``attributes`` as REST
        renders them (so that a record staged from either API has the same payload).
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        return []
    plain: list[tuple[int, str]] = []
    typed: list[tuple[str, Converter]] = []
    nested: dict[str, list[tuple[int, str, Converter]]] = {}
    for i, column in enumerate(header):
        convert = converter(kinds.get(column, "string"))
        relation, _, field = column.partition(".")
        if field:
            nested.setdefault(relation, []).append((i, field, convert))
            continue
        plain.append((i, column))
        if convert is not str:
            typed.append((column, convert))
    names = [name for _, name in plain]
    pick = itemgetter(*(i for i, _ in plain)) if len(plain) > 1 else None
    url = f"/services/data/{api_version}/sobjects/{sobject}/"
    id_at = header.index("Id") if "Id" in header else None
    records = []
    for row in reader:
        if not row:
            continue
        # Text columns as they come (empty → null), then the few typed ones converted.
        values = pick(row) if pick is not None else tuple(row[i] for i, _ in plain)
        record: dict[str, Any] = {n: v or None for n, v in zip(names, values, strict=True)}
        for name, convert in typed:
            text = record[name]
            if text is not None:
                record[name] = convert(text)
        for relation, columns in nested.items():
            parent = {name: (convert(row[i]) if row[i] else None) for i, name, convert in columns}
            # CSV cannot tell an empty lookup from a parent whose selected fields are all null.
            record[relation] = parent if any(v is not None for v in parent.values()) else None
        record["attributes"] = {"type": sobject,
                                "url": url + row[id_at] if id_at is not None else None}
        records.append(record)
    return records


def job_checkpoint(max_stamp: str | None, created: str | None) -> datetime | None:
    """Where a completed job lets the cursor move: its highest modstamp, but not past the
    job's creation (records changed while it ran may have been read in their old version)."""
    if max_stamp is None:
        return None
    stamp = parse_datetime(max_stamp)
    if created:
        stamp = min(stamp, parse_datetime(created))
    return stamp


class PollTimeout(TransientError):
    """The job did not finish within the connector's patience."""
