"""Read a customer's SQL database: incremental by an ``updated_at`` column, streamed, read-only.

Each read opens its own engine (no pool kept between syncs) and one read-only transaction:

- PostgreSQL gets ``SET TRANSACTION READ ONLY`` and a session time zone (so naive ``timestamp``
  columns compare with the bound ``since`` in the zone the customer stores them in).
- MySQL / MariaDB get ``START TRANSACTION READ ONLY`` and the session time zone ``+00:00``:
  servers rarely have the named-zone tables loaded (``SET time_zone = 'Europe/Berlin'`` then
  fails), and in UTC a ``TIMESTAMP`` column reads back exactly, without the hour a named zone
  repeats each autumn. Which kind the cursor column is (``TIMESTAMP``: UTC; ``DATETIME``: naive,
  in the configured zone) is asked of the server before the read. Zero dates
  (``0000-00-00 00:00:00``) count as NULL.
- DuckDB is opened ``read_only`` (a mistyped path fails instead of creating a database) with
  the session ``TimeZone`` set, as on PostgreSQL.
- SQLite is opened with ``mode=ro`` (a wrong path fails instead of silently creating an empty
  database) and ``PRAGMA query_only``.

Other dialects rely on the SELECT-only check and a read-only database user, which we ask every
customer for anyway.

Rows are streamed with a server-side cursor (``stream_results`` + ``yield_per``: a named cursor
on psycopg2, ``SSCursor`` on PyMySQL) and yielded a page at a time, ordered by
``(updated_at, primary key)``, so a page's last cursor value is a safe resume point and a
10-million-row table never sits in memory. DuckDB's Python client has no streaming cursor: the
whole result is held in DuckDB's own memory (Python still holds one page at a time).

Rows whose ``updated_at`` is NULL are read by a full sync only: ``updated_at >= :since`` never
matches NULL. Rows committed late by a long transaction with an ``updated_at`` older than the
cursor are caught by the lookback window (``lookback_seconds``, 600 by default).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from akita_pipelines.core.errors import (
    AkitaError,
    AuthError,
    ConfigError,
    DataError,
    TransientError,
)
from akita_pipelines.providers.base import ConnectionContext, Page, Stream
from akita_pipelines.providers.mapping import (
    as_datetime,
    dedupe_last,
    iso,
    json_safe,
    stream_config,
)
from akita_pipelines.providers.sql.query import SqlSource

log = logging.getLogger(__name__)

#: The MySQL wire protocol's type codes of TIMESTAMP and TIMESTAMP2 columns.
_MYSQL_TIMESTAMP_TYPES = (7, 17)


def connection_url(config: Mapping[str, Any], credentials: Mapping[str, Any]) -> URL:
    """The configured SQLAlchemy URL with the secret parts merged in from the credentials.

    Raises:
        ConfigError: when the URL is unreadable or carries a password itself (config is not
            a secret store: it is shown in the UI and in logs).
    """
    raw = config.get("url")
    if not isinstance(raw, str) or not raw:
        raise ConfigError("config 'url' must be a SQLAlchemy URL such as "
                          "postgresql+psycopg2://reader@db.example.com/crm")
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigError("config 'url' is not a valid SQLAlchemy URL") from None
    if url.password:
        raise ConfigError("config 'url' carries a password: put it in the integration's "
                          "credentials as 'password' instead")
    if credentials.get("username"):
        url = url.set(username=str(credentials["username"]))
    if credentials.get("password"):
        url = url.set(password=str(credentials["password"]))
    if url.get_backend_name() == "duckdb" and url.database and url.database != ":memory:":
        # Read-only: a mistyped path fails instead of creating an empty database, and we can
        # never write to the customer's file.
        url = url.update_query_dict({"access_mode": "READ_ONLY"})
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:" \
            and not url.database.startswith("file:"):
        # A read-only URI: a mistyped path fails instead of creating an empty database.
        url = url.set(database=f"file:{url.database}",
                      query={**url.query, "mode": "ro", "uri": "true"})
    return url


def _zone(config: Mapping[str, Any]) -> tzinfo:
    name = config.get("timezone", "UTC")
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"config 'timezone' {name!r} is not an IANA time zone name") from None


def _safe_message(exc: BaseException, secret: str | None) -> str:
    orig = getattr(exc, "orig", None) or exc
    first = (str(orig).strip().splitlines() or [type(orig).__name__])[0][:300]
    return first.replace(secret, "***") if secret else first


#: MySQL / MariaDB error numbers (PyMySQL reports nearly all of them as OperationalError,
#: whose class alone says nothing): what the customer must change, not a reason to retry.
_MYSQL_CONFIG_ERRORS = {
    1044: "the user may not use this database",
    1049: "unknown database",
    1054: "unknown column",
    1064: "SQL syntax error",
    1142: "the user may not read this table (or it does not exist)",
    1143: "the user may not read this column",
    1146: "unknown table",
    1298: "unknown time zone",
    1370: "the user may not run this routine",
    1792: "the query tries to write: the transaction is read-only",
}
_MYSQL_AUTH_ERRORS = {1045, 1698}
_FIX_LOGIN = "check the username and password in the integration's credentials"


def _mysql_errno(exc: SQLAlchemyError) -> int | None:
    args = getattr(getattr(exc, "orig", None), "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def classify_db_error(exc: SQLAlchemyError, what: str, secret: str | None) -> AkitaError:
    """Map a database error to the taxonomy: refused login → AuthError; unknown table, column
    or permission, or a query that tries to write → ConfigError; lost connection → transient."""
    message = _safe_message(exc, secret)
    lowered = message.lower()
    errno = _mysql_errno(exc)
    refused = errno in _MYSQL_AUTH_ERRORS or (errno is None and any(s in lowered for s in (
        "password authentication failed", "access denied", "authentication failed",
        "no password supplied")))
    if refused:
        return AuthError(f"{what}: the database refused the login ({message}): {_FIX_LOGIN}")
    if errno in _MYSQL_CONFIG_ERRORS:
        return ConfigError(f"{what}: {_MYSQL_CONFIG_ERRORS[errno]} ({message})")
    if any(s in lowered for s in ("read-only", "readonly", "read only", "query_only",
                                  "permission denied", "does not exist", "no such table",
                                  "no such column", "unable to open database", "syntax error",
                                  "ambiguous", "not found in from clause")):
        return ConfigError(f"{what}: {message}")
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return TransientError(f"{what}: connection lost ({message})")
    if isinstance(exc, DBAPIError) and type(exc).__name__ in ("ProgrammingError",
                                                             "DataError", "IntegrityError"):
        return ConfigError(f"{what}: {message}")
    return TransientError(f"{what}: {message}")


def _abandon_mysql_stream(conn: Connection, cursor: Any) -> None:
    """Stop a half-read MySQL / MariaDB stream without reading the rest of it.

    The protocol cannot cancel a result: closing a streaming cursor early reads and discards
    every remaining row, so a bad row on the first page of a large table would read the whole
    table before the error surfaced. Closing the connection ends it at once (the server stops
    at its next write). PyMySQL then still counts the result as unfinished, and its cursor's
    ``__del__`` would read from the closed socket; it is marked finished.
    """
    driver_conn = getattr(cursor, "connection", None)
    conn.invalidate()
    pending = getattr(driver_conn, "_result", None)
    if pending is not None and getattr(pending, "unbuffered_active", False):
        pending.unbuffered_active = False


class SqlConnector:
    """Reads the streams an integration declares from its database."""

    def __init__(self, ctx: ConnectionContext) -> None:
        self.ctx = ctx
        self.zone = _zone(ctx.config)
        self.credentials = ctx.credentials.load()
        self.url = connection_url(ctx.config, self.credentials)
        # The URL as logs may show it.
        self.where = self.url.render_as_string(hide_password=True)

    def _engine(self) -> Engine:
        try:
            engine = create_engine(self.url, poolclass=NullPool)
        except (ArgumentError, NoSuchModuleError) as exc:
            raise ConfigError(f"cannot use {self.where}: {type(exc).__name__}") from None
        if engine.dialect.name == "sqlite":
            @event.listens_for(engine, "connect")
            def _query_only(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.execute("PRAGMA query_only = ON")
        return engine

    def _begin_read_only(self, conn: Connection) -> None:
        timeout = self.ctx.config.get("statement_timeout_seconds")
        if conn.dialect.name in ("mysql", "mariadb"):
            conn.exec_driver_sql("SET SESSION time_zone = '+00:00'")
            if timeout is not None:
                # MariaDB counts seconds in max_statement_time, MySQL milliseconds in
                # max_execution_time (SELECTs only); neither knows the other's name.
                if getattr(conn.dialect, "is_mariadb", False):
                    conn.execute(text("SET SESSION max_statement_time = :s"),
                                 {"s": float(timeout)})
                else:
                    conn.execute(text("SET SESSION max_execution_time = :ms"),
                                 {"ms": int(float(timeout) * 1000)})
            # Explicit, not SET TRANSACTION: the dialect's own first-connect queries may
            # already have opened a transaction, which START TRANSACTION ends.
            conn.exec_driver_sql("START TRANSACTION READ ONLY")
        elif conn.dialect.name == "duckdb":
            conn.execute(text("SET TimeZone = :zone"), {"zone": str(self.zone)})
        elif conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            # Bound parameter, not an f-string: the zone name comes from config.
            conn.execute(text("SELECT set_config('TimeZone', :zone, true)"),
                         {"zone": str(self.zone)})
            if timeout is not None:
                conn.execute(text("SELECT set_config('statement_timeout', :ms, true)"),
                             {"ms": str(int(float(timeout) * 1000))})

    def _cursor_zone(self, conn: Connection, source: SqlSource) -> tzinfo:
        """The zone in which the cursor column's naive values are to be read."""
        if conn.dialect.name not in ("mysql", "mariadb") or source.cursor_is_unix:
            return self.zone
        # A TIMESTAMP column reads back in the session zone (UTC, set above); a DATETIME
        # column is the customer's wall clock. The result's column type says which; LIMIT 0
        # sends no rows (a plain table is not even read).
        probe = conn.execute(source.cursor_sample(conn.dialect.name).limit(0))
        type_code = probe.cursor.description[0][1]
        probe.close()
        return UTC if type_code in _MYSQL_TIMESTAMP_TYPES else self.zone

    def _bind_since(self, conn: Connection, source: SqlSource, since: datetime,
                    zone: tzinfo) -> Any:
        if source.cursor_is_unix:
            return math.floor(since.timestamp())
        dialect = conn.dialect.name
        if dialect == "postgresql":
            return since  # timestamptz; naive columns compare in the session zone set above
        local = since.astimezone(zone)
        if dialect != "sqlite":
            return local.replace(tzinfo=None)
        # SQLite has no timestamp type: values are text (or numbers) compared as such. Match
        # the stored format, and truncate to the second, so that the comparison is a closed
        # bound: '2024-01-01 10:00:00' must be >= the bound, which '…00.000000+00:00' is not.
        sample = conn.execute(source.cursor_sample(dialect)).scalar()
        if isinstance(sample, int | float):
            seconds = since.timestamp()
            return math.floor(seconds * 1000 if sample > 1e11 else seconds)
        sep = "T" if isinstance(sample, str) and len(sample) > 10 and sample[10] == "T" else " "
        return local.strftime(f"%Y-%m-%d{sep}%H:%M:%S")

    def read_changes(self, stream: Stream, since: datetime | None) -> Iterator[Page]:
        """Yield pages of rows with ``updated_at >= since`` in ``(updated_at, pk)`` order."""
        where = f"streams.{stream.interaction_type}"
        source = SqlSource.from_config(stream_config(self.ctx.config, stream.interaction_type),
                                       where)
        secret = self.credentials.get("password")
        engine = self._engine()
        what = f"{self.where} {where}"
        try:
            with engine.connect() as conn:
                self._begin_read_only(conn)
                zone = self._cursor_zone(conn, source)
                stmt = source.statement(incremental=since is not None,
                                        dialect=conn.dialect.name)
                params = {"since": self._bind_since(conn, source, since, zone)} if since else {}
                result = conn.execution_options(
                    stream_results=True, yield_per=self.ctx.page_size).execute(stmt, params)
                driver_cursor = result.cursor
                try:
                    keys = list(result.keys())
                    twice = sorted({k for k in keys if keys.count(k) > 1})
                    if twice:
                        raise ConfigError(f"{what}: the query returns {twice} more than once; "
                                          "give each column its own alias")
                    for rows in result.partitions():
                        yield self._page(rows, keys, source, zone)
                except BaseException:  # also GeneratorExit: the caller stopped reading
                    if conn.dialect.name in ("mysql", "mariadb"):
                        _abandon_mysql_stream(conn, driver_cursor)
                    raise
                conn.rollback()  # nothing was written; end the read-only transaction cleanly
        except SQLAlchemyError as exc:
            raise classify_db_error(exc, what, str(secret) if secret else None) from None
        finally:
            engine.dispose()

    def _page(self, rows: Any, keys: list[str], source: SqlSource, zone: tzinfo) -> Page:
        records: list[dict[str, Any]] = []
        checkpoint: datetime | None = None
        # The driver's own value, not its JSON text: a datetime needs no parsing back.
        at = keys.index(source.cursor) if source.cursor in keys else None
        for row in rows:
            record = {k: json_safe(v) for k, v in zip(keys, row, strict=True)}
            raw = row[at] if at is not None else None
            if isinstance(raw, str) and raw.startswith("0000-00-00"):
                # MySQL's zero date ("no date"; drivers hand it over as text): like NULL.
                raw = record[source.cursor] = None
            try:
                stamp = as_datetime(raw, source.cursor, zone=zone)
            except (TypeError, ValueError):
                raise DataError(f"column {source.cursor!r} holds {raw!r}, which is not a "
                                "timestamp: it cannot serve as the cursor") from None
            if stamp is not None:
                # Staged payloads carry the cursor as ISO-8601 UTC, whatever the column type.
                record[source.cursor] = iso(stamp)
                checkpoint = stamp if checkpoint is None else max(checkpoint, stamp)
            records.append(record)
        return Page(records=dedupe_last(records, source.primary_key), checkpoint=checkpoint)
