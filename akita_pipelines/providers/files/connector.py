"""Customer-provided files: CSV / Excel dropped into a per-customer inbox (local or fsspec).

Design (no state besides the cursor, which the retriever stages with every page):

* **Cursor = arrival time.** Files are read in ``(arrival, name)`` order and every page of a
  file carries that file's arrival time as its checkpoint, so the committed cursor is the
  arrival of the last file staged and the next sync lists only files that arrived at or after
  ``cursor − lookback``. Arrival is ``max(mtime, ctime)`` on a local disk — a file copied in
  with a preserved old mtime (``cp -p``, ``rsync -t``, unzip) still gets the time it landed,
  which the mtime alone would have hidden below the cursor forever — and the object's
  Last-Modified time on object storage.
* **Each file once, by checksum.** A file is snapshotted (spooled to a temporary file) while
  its sha256 is computed; a second file with the same checksum in one read is skipped. A file
  re-read by the lookback window yields byte-identical payloads, which staging recognises by
  their content hash and does not process again; the same content dropped again later under a
  new arrival time is upserted by primary key (no duplicates). Rows carry their lineage:
  ``_file``, ``_line``, ``_file_sha256``, ``_file_arrived_at``.
* **Whole file or nothing.** The snapshot is parsed and every row validated before the first
  page of it is yielded. A file with bad rows (or bad bytes) yields nothing but a report record
  naming the lines; the processor quarantines it with that reason (``on_bad_file: quarantine``,
  the default: the other files still import and the customer fixes the file and drops it
  again), or the sync fails with a DataError (``on_bad_file: fail``).
* **Half-written files.** Files younger than ``settle_seconds`` (30 s) are left for the next
  sync, and a file whose size or time changed while it was copied ends this read before it.
* **No escape from the inbox.** Patterns are file-name globs (no ``/``, no ``..``, not
  absolute) matched against the inbox's own entries; a local symlink resolving outside the
  inbox is refused with a ConfigError; only regular files are opened (a FIFO would block).
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import posixpath
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from akita_pipelines.core.clock import parse_datetime, utcnow
from akita_pipelines.core.errors import ConfigError, DataError, TransientError
from akita_pipelines.providers.base import ConnectionContext, Page, Stream
from akita_pipelines.providers.files.reader import Rules, Table, read_csv, read_xlsx
from akita_pipelines.providers.mapping import (
    FieldMapping,
    dedupe_last,
    iso,
    parse_mapping,
    stream_config,
)

log = logging.getLogger(__name__)

#: Payload keys the connector adds to every row.
FILE, LINE, SHA256, ARRIVED, REJECTED = (
    "_file", "_line", "_file_sha256", "_file_arrived_at", "_rejected")
SPOOL_BYTES = 16 * 1024 * 1024  # bigger files spill to a temporary file, not to memory
STREAM_KEYS = ("pattern", "format", "encoding", "delimiter", "sheet", "on_bad_file")


def check_pattern(value: Any, where: str) -> str:
    """A file-name glob that cannot leave the inbox."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where} must be a file-name pattern such as 'accounts*.csv'")
    if "/" in value or "\\" in value or value.startswith("~") or ".." in value \
            or os.path.isabs(value):
        raise ConfigError(f"{where} {value!r} must name files inside the inbox: no '/', '..', "
                          "'~' or absolute paths")
    return value


@dataclass(frozen=True)
class FileStream:
    """One stream's file settings, validated."""

    pattern: str
    rules: Rules
    format: str | None
    on_bad_file: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any], where: str,
                    required: tuple[str, ...]) -> FileStream:
        fmt = config.get("format")
        if fmt not in (None, "csv", "xlsx"):
            raise ConfigError(f"{where}.format must be 'csv' or 'xlsx'")
        on_bad = config.get("on_bad_file", "quarantine")
        if on_bad not in ("quarantine", "fail"):
            raise ConfigError(f"{where}.on_bad_file must be 'quarantine' or 'fail'")
        encoding = str(config.get("encoding", "utf-8-sig"))
        try:
            "".encode(encoding)
        except LookupError:
            raise ConfigError(f"{where}.encoding {encoding!r} is not a known encoding") from None
        delimiter = str(config.get("delimiter", ","))
        if len(delimiter) != 1:
            raise ConfigError(f"{where}.delimiter must be one character")
        pk = str(config["primary_key"])
        timestamp = config.get("updated_at")
        return cls(
            pattern=check_pattern(config.get("pattern"), f"{where}.pattern"),
            rules=Rules(primary_key=pk, required=required,
                        timestamp=str(timestamp) if timestamp else None, encoding=encoding,
                        delimiter=delimiter,
                        sheet=str(config["sheet"]) if config.get("sheet") else None),
            format=fmt, on_bad_file=str(on_bad))


def file_mapping(name: str, config: Mapping[str, Any]) -> FieldMapping:
    """The field mapping of ``config["streams"][name]`` (its cursor column is optional)."""
    return parse_mapping(name, config, where=f"streams.{name}", cursor_required=False,
                         allowed=STREAM_KEYS)


def file_stream_settings(name: str, config: Mapping[str, Any]) -> FileStream:
    """The validated file settings of ``config["streams"][name]``."""
    return FileStream.from_config(config, f"streams.{name}",
                                  file_mapping(name, config).source_fields())


def open_inbox(config: Mapping[str, Any]) -> tuple[Any, str, bool]:
    """``(filesystem, root path, is_local)`` for the configured inbox."""
    inbox = config.get("inbox")
    if not isinstance(inbox, str) or not inbox:
        raise ConfigError("config 'inbox' must be a folder path, file:// URL or fsspec URL")
    if "://" not in inbox and not os.path.isabs(inbox):
        raise ConfigError(f"config 'inbox' {inbox!r} must be an absolute path")
    import fsspec  # type: ignore[import-untyped]  # only when an inbox is opened

    try:
        fs, root = fsspec.core.url_to_fs(inbox)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"cannot open inbox {inbox!r}: {type(exc).__name__}: "
                          f"{str(exc)[:200]}") from None
    local = "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))
    return fs, str(root).rstrip("/") or "/", local


def _as_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, str):
        try:
            return parse_datetime(value)
        except ValueError:
            return None
    return None


def arrival_time(info: Mapping[str, Any], local: bool) -> datetime | None:
    """When a file landed in the inbox (see the module docstring)."""
    if local:
        stamps = [_as_time(info.get(k)) for k in ("mtime", "created")]
        found = [s for s in stamps if s is not None]
        return max(found) if found else None
    for key in ("LastModified", "last_modified", "updated", "mtime", "timeCreated", "created"):
        stamp = _as_time(info.get(key))
        if stamp is not None:
            return stamp
    return None


@dataclass(frozen=True)
class InboxFile:
    path: str
    name: str
    size: int | None
    arrived: datetime


class FilesConnector:
    """Imports the files an integration's streams match, oldest arrival first."""

    def __init__(self, ctx: ConnectionContext) -> None:
        self.ctx = ctx
        self.fs, self.root, self.local = open_inbox(ctx.config)
        self.settle = timedelta(seconds=float(ctx.config.get("settle_seconds", 30)))

    def _inside(self, path: str) -> bool:
        root = os.path.realpath(self.root)
        return os.path.realpath(path).startswith(root.rstrip(os.sep) + os.sep)

    def list_files(self, pattern: str) -> list[InboxFile]:
        """The inbox's regular files matching ``pattern``, in arrival order."""
        try:
            entries = self.fs.ls(self.root, detail=True)
        except FileNotFoundError:
            raise ConfigError(f"inbox {self.root!r} does not exist") from None
        except OSError as exc:
            raise TransientError(f"cannot list the inbox: {type(exc).__name__}") from None
        found: list[InboxFile] = []
        for info in entries:
            path = str(info.get("name", ""))
            name = posixpath.basename(path.rstrip("/"))
            if not fnmatch.fnmatchcase(name, pattern) or name.startswith("."):
                continue
            if self.local and not self._inside(path):
                raise ConfigError(f"inbox entry {name!r} is a link pointing outside the inbox; "
                                  "remove it")
            if info.get("type") != "file" or (self.local and not os.path.isfile(path)):
                continue  # folders, FIFOs, sockets: never opened
            arrived = arrival_time(info, self.local)
            if arrived is None:
                raise TransientError(f"inbox entry {name!r} has no modification time")
            size = info.get("size")
            found.append(InboxFile(path, name, int(size) if size is not None else None, arrived))
        return sorted(found, key=lambda f: (f.arrived, f.name))

    def _snapshot(self, item: InboxFile) -> tuple[IO[bytes], str]:
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
        digest = hashlib.sha256()
        with self.fs.open(item.path, "rb") as source:
            while chunk := source.read(1024 * 1024):
                digest.update(chunk)
                spool.write(chunk)
        spool.seek(0)
        return spool, digest.hexdigest()

    def _unchanged(self, item: InboxFile) -> bool:
        try:
            info = self.fs.info(item.path)
        except FileNotFoundError:
            return False
        size = info.get("size")
        return arrival_time(info, self.local) == item.arrived and (
            size is None or item.size is None or int(size) == item.size)

    def read_changes(self, stream: Stream, since: datetime | None) -> Iterator[Page]:
        """Yield each new file's rows (or its rejection report), oldest arrival first."""
        config = stream_config(self.ctx.config, stream.interaction_type)
        spec = file_stream_settings(stream.interaction_type, config)
        settled = utcnow() - self.settle
        seen: set[str] = set()
        for item in self.list_files(spec.pattern):
            if since is not None and item.arrived < since:
                continue
            if item.arrived > settled:
                log.info("leaving %s for the next sync: it may still be being written", item.name)
                break  # later files arrived later still
            try:
                data, sha = self._snapshot(item)
            except FileNotFoundError:
                continue  # removed since the listing
            except OSError as exc:
                raise TransientError(f"cannot read {item.name}: {type(exc).__name__}") from None
            with data:
                if not self._unchanged(item):
                    log.info("%s changed while being read; it is left for the next sync",
                             item.name)
                    return
                if sha in seen:
                    log.info("skipping %s: same content as a file already read", item.name)
                    yield Page(records=[], checkpoint=item.arrived)
                    continue
                seen.add(sha)
                xlsx = spec.format == "xlsx" or (spec.format is None
                                                 and item.name.lower().endswith(".xlsx"))
                table = read_xlsx(data, spec.rules) if xlsx else read_csv(data, spec.rules)
            yield from self._pages(stream, spec.on_bad_file, item, sha, table)

    def _pages(self, stream: Stream, on_bad_file: str, item: InboxFile, sha: str,
               table: Table) -> Iterator[Page]:
        lineage = {FILE: item.name, SHA256: sha, ARRIVED: iso(item.arrived)}
        if table.problem_count:
            message = (f"file {item.name} rejected, nothing imported from it: "
                       f"{table.problem_count} problem(s): {table.report()}")
            if on_bad_file == "fail":
                raise DataError(message)
            log.warning("%s", message)
            report = {stream.primary_key: f"rejected:{item.name}:{sha[:12]}", **lineage,
                      REJECTED: message}
            yield Page(records=[report], checkpoint=item.arrived)
            return
        size = max(1, self.ctx.page_size)
        rows = table.rows
        if not rows:
            yield Page(records=[], checkpoint=item.arrived)
        for start in range(0, len(rows), size):
            records: list[dict[str, Any]] = [{**row, **lineage, LINE: line}
                                             for line, row in rows[start:start + size]]
            yield Page(records=dedupe_last(records, stream.primary_key),
                       checkpoint=item.arrived)
