"""The write door: repositories write many rows through :func:`upsert`, :func:`insert_new`
and :func:`update_by_key` (new ids from :func:`draw_ids`), which pick the path themselves.

PostgreSQL, many rows: COPY into a temp table, then one INSERT … SELECT … ON CONFLICT.
SQLAlchemy would run an ``ON CONFLICT DO UPDATE`` executemany row by row on psycopg2; COPY and
one set-based statement do the same work once. A few rows (below :data:`MIN_ROWS`): one
INSERT … SELECT FROM unnest(arrays), each column one array literal, because a temp table's
catalog work would cost more than the rows.

Values are converted column by column: a column whose values share one type goes through one
C-level ``map`` (or is used as it is), and one scan of the joined column decides whether any
value needs escaping, instead of a Python call per value.

SQLite: one ``executemany`` of a prepared statement on the driver's cursor, values converted by
the columns' own bind processors (so they are stored as SQLAlchemy stores them), without
SQLAlchemy's per-row parameter compilation, which costs more than SQLite's own work. An
upsert that reports what it wrote (RETURNING) sends multi-row statements instead.

One row goes through the same door (a customer saved, a webhook counted): which database
decides the SQL here only.

Identifiers come from our own ``Table`` objects, never from input; values travel as COPY text
or array literals (escaped here), or as driver parameters.
"""

from __future__ import annotations

import io
import itertools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import cache, partial
from itertools import repeat
from operator import attrgetter, is_, itemgetter
from typing import Any

from sqlalchemy import JSON, Column, Connection, Table, bindparam, func, select, text
from sqlalchemy import update as sa_update
from sqlalchemy.dialects import postgresql

from akita_pipelines.util import jsonfast

_names = itertools.count()

#: Below this many rows the PostgreSQL paths send arrays instead of COPY into a temp table.
MIN_ROWS = 1000

#: One column's values, a row's value at the row's index.
Columns = Mapping[str, Sequence[Any]]

# One encoder for every JSON value: ``json.dumps`` with options builds a new encoder per call.
_stdlib_json_text = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_tzinfo = attrgetter("tzinfo")
_POSTGRESQL = postgresql.dialect()  # type: ignore[no-untyped-call]
_NoneType = type(None)

def _json_text(value: Any) -> str:
    """A JSON value's text for PostgreSQL: the stdlib encoder's, written by orjson if it can."""
    return jsonfast.dumps(value, _stdlib_json_text)


def _text(value: Any, is_json: bool) -> str | None:
    """One value's text form for PostgreSQL; None for NULL."""
    if value is None:
        return None
    if is_json:
        return _json_text(value)
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime in a bulk write")
        return value.isoformat()
    return str(value)


def _texts(values: Sequence[Any], is_json: bool) -> list[str | None]:
    """A column's text forms (None for NULL): one ``map`` when its values share a type."""
    if is_json:
        return [None if v is None else _json_text(v) for v in values]
    kinds = set(map(type, values))
    nulls = _NoneType in kinds
    kinds.discard(_NoneType)
    kind = kinds.pop() if len(kinds) == 1 else None
    if kind is str:
        return list(values)
    convert: Callable[[Any], str | None]
    if kind is datetime:
        if None in map(_tzinfo, (v for v in values if v is not None) if nulls else values):
            raise ValueError("naive datetime in a bulk write")
        convert = datetime.isoformat
    elif kind is int:
        convert = int.__str__
    else:  # bool, float, dates, a mix: value by value
        return [_text(v, False) for v in values]
    if nulls:
        return [None if v is None else convert(v) for v in values]
    return list(map(convert, values))


def _constant(values: Sequence[Any]) -> bool:
    """Whether every row holds the same object (a batch's customer, timestamp, None …)."""
    return all(map(is_, values, repeat(values[0])))


def _escape(value: str) -> str:
    return (value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r"))


def _copy_cells(values: Sequence[Any], is_json: bool) -> list[str]:
    """One column's COPY text cells: ``\\N`` for NULL, backslash, tab, newline and CR escaped."""
    if _constant(values):
        value = _text(values[0], is_json)
        return [r"\N" if value is None else _escape(value)] * len(values)
    texts = _texts(values, is_json)
    nulls = None in texts
    joined = "".join(filter(None, texts)) if nulls else "".join(texts)  # type: ignore[arg-type]
    if "\\" in joined or "\t" in joined or "\n" in joined or "\r" in joined:
        return [r"\N" if t is None else _escape(t) for t in texts]
    if nulls:
        return [r"\N" if t is None else t for t in texts]
    return texts  # type: ignore[return-value]


def _element(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _array_literal(values: Sequence[Any], is_json: bool) -> str:
    """One column as a PostgreSQL array literal: ``{"a","b \\"c\\"",NULL}``."""
    if _constant(values):
        value = _text(values[0], is_json)
        element = "NULL" if value is None else '"' + _element(value) + '"'
        return "{" + ",".join(repeat(element, len(values))) + "}"
    texts = _texts(values, is_json)
    if None in texts:
        return "{" + ",".join("NULL" if t is None else '"' + _element(t) + '"'
                              for t in texts) + "}"
    joined = "".join(texts)  # type: ignore[arg-type]
    if '"' in joined or "\\" in joined:
        texts = list(map(_element, texts))  # type: ignore[arg-type]
    return '{"' + '","'.join(texts) + '"}'  # type: ignore[arg-type]


@cache
def _pg_type(column: Column[Any]) -> str:
    """The column's type without its length: an explicit cast to ``varchar(n)[]`` would cut
    longer values silently, where the INSERT's own assignment raises "value too long"."""
    return re.sub(r"\(.*?\)", "", str(column.type.compile(dialect=_POSTGRESQL)))


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def by_column(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Rows (dicts with the first row's keys) as columns."""
    names = list(rows[0])
    if len(names) == 1:
        return {names[0]: [row[names[0]] for row in rows]}
    return dict(zip(names, map(list, zip(*map(itemgetter(*names), rows), strict=True)),
                    strict=True))


def _pg_upsert(conn: Connection, table: Table, columns: Columns, *,
                   keys: Sequence[str], set_sql: Mapping[str, str], where_sql: str | None = None,
                   returning: Sequence[str] = ()) -> list[tuple[Any, ...]]:
    """Upsert rows given column by column into ``table`` on PostgreSQL, in one statement
    after a COPY (:data:`MIN_ROWS` rows or more) or in one statement with array literals.

    One statement may not touch a row twice: the caller keeps conflict keys unique.

    Args:
        conn: a connection inside a transaction (the temp table drops at commit).
        table: the target table.
        columns: column name → its values, one per row (all the same length).
        keys: the conflict target (a unique constraint's columns).
        set_sql: column → SQL expression for ``DO UPDATE SET`` (may use ``excluded.col`` and
            the table's own columns); empty means ``DO NOTHING``.
        where_sql: update a conflicting row only where this holds (``DO UPDATE … WHERE``).
        returning: columns to return for every inserted or updated row (tuples in this
            order).
    """
    n_rows = len(next(iter(columns.values()), ()))
    if not n_rows:
        return []
    if any(len(values) != n_rows for values in columns.values()):
        raise ValueError("bulk write columns of different lengths")  # unnest would pad
    names = list(columns)
    col_list = ", ".join(_quote(c) for c in names)
    tail = _on_conflict(keys, set_sql, where_sql)
    if returning:
        tail += " RETURNING " + ", ".join(_quote(c) for c in returning)
    cursor = _driver_cursor(conn)
    try:
        if n_rows < MIN_ROWS:
            _insert_arrays(cursor, table, columns, tail)
        else:
            stage = _copy_to_temp(cursor, table, columns)
            cursor.execute(f"INSERT INTO {_quote(table.name)} ({col_list}) "
                           f"SELECT {col_list} FROM {stage}{tail}")
        # The driver's cursor: returned rows stay plain tuples.
        return list(cursor.fetchall()) if returning else []
    finally:
        cursor.close()


def _on_conflict(keys: Sequence[str], set_sql: Mapping[str, str] | None,
                 where_sql: str | None) -> str:
    """The ``ON CONFLICT`` clause of :func:`upsert`, the same on both databases."""
    conflict = ", ".join(_quote(k) for k in keys)
    if not set_sql:
        return f" ON CONFLICT ({conflict}) DO NOTHING"
    action = "DO UPDATE SET " + ", ".join(f"{_quote(c)} = {e}" for c, e in set_sql.items())
    return f" ON CONFLICT ({conflict}) {action}" + (f" WHERE {where_sql}" if where_sql else "")


def _driver_cursor(conn: Connection) -> Any:
    """The driver's cursor, in the connection's transaction: begun here if need be, as
    ``conn.execute`` would have, so that the caller's commit covers these writes."""
    if not conn.in_transaction():
        conn.begin()
    return conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]


def _insert_arrays(cursor: Any, table: Table, columns: Columns, tail: str = "") -> None:
    """``INSERT … SELECT FROM unnest(arrays)``: a few rows in one statement, one array literal
    a column; ``tail`` an ``ON CONFLICT`` / ``RETURNING`` clause."""
    casts, params = _arrays(table, columns)
    col_list = ", ".join(_quote(c) for c in columns)
    cursor.execute(f"INSERT INTO {_quote(table.name)} ({col_list}) "
                   f"SELECT * FROM unnest({casts}){tail}", params)


def _arrays(table: Table, columns: Columns) -> tuple[str, list[str]]:
    """Each column as one array literal parameter, and the typed placeholders for them."""
    casts = ", ".join(f"%s::{_pg_type(table.c[c])}[]" for c in columns)
    params = [_array_literal(values, isinstance(table.c[c].type, JSON))
              for c, values in columns.items()]
    return casts, params


def _copy_text(table: Table, columns: Columns) -> io.StringIO:
    cells = [_copy_cells(values, isinstance(table.c[c].type, JSON))
             for c, values in columns.items()]
    # Column by column above; the rows are joined once, with C-level joins.
    return io.StringIO("\n".join(map("\t".join, zip(*cells, strict=True))) + "\n")


def _copy_to_temp(cursor: Any, table: Table, columns: Columns) -> str:
    """COPY the rows into a new temp table with the target's column types; its name."""
    stage = f"_akita_stage_{next(_names)}"
    col_list = ", ".join(_quote(c) for c in columns)
    buffer = _copy_text(table, columns)
    cursor.execute(f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS "
                   f"SELECT {col_list} FROM {_quote(table.name)} WITH NO DATA")
    cursor.copy_expert(f"COPY {stage} ({col_list}) FROM STDIN", buffer, size=1 << 20)
    return stage


def _copy_insert(conn: Connection, table: Table, columns: Columns) -> None:
    """PostgreSQL: rows that cannot conflict, COPY'd straight into the table (from
    :data:`MIN_ROWS` rows) or in one INSERT … SELECT FROM unnest."""
    n_rows = len(next(iter(columns.values()), ()))
    if not n_rows:
        return
    col_list = ", ".join(_quote(c) for c in columns)
    cursor = _driver_cursor(conn)
    try:
        if n_rows < MIN_ROWS:
            _insert_arrays(cursor, table, columns)
        else:
            cursor.copy_expert(f"COPY {_quote(table.name)} ({col_list}) FROM STDIN",
                               _copy_text(table, columns), size=1 << 20)
    finally:
        cursor.close()


def _sqlite_statement(table: Table, names: Sequence[str], keys: Sequence[str],
                      set_sql: Mapping[str, str] | None, rows: int = 1,
                      where_sql: str | None = None) -> str:
    """``INSERT`` of ``rows`` rows (``?`` placeholders) with the ``ON CONFLICT`` clause of
    :func:`upsert` when ``keys`` are given."""
    row = f"({', '.join('?' for _ in names)})"
    sql = (f"INSERT INTO {_quote(table.name)} ({', '.join(_quote(c) for c in names)}) "
           f"VALUES {', '.join(repeat(row, rows))}")
    if keys:
        sql += _on_conflict(keys, set_sql, where_sql)
    return sql


def _sqlite_rows(conn: Connection, table: Table, columns: Columns) -> list[tuple[Any, ...]]:
    """The rows as driver parameters, converted column by column by the columns' own bind
    processors (one map() per column instead of a Python call per value)."""
    converted = []
    for c, values in columns.items():
        column_type = table.c[c].type
        processor = column_type.bind_processor(conn.dialect)
        if (processor is not None and isinstance(column_type, JSON)
                and getattr(conn.dialect, "_json_serializer", None) is None):
            # SQLAlchemy's JSON processor is ``json.dumps``: orjson's compact text of the
            # same value instead (it reads back equal), the processor for what orjson would
            # write differently (NaN, big integers …) or refuse (a datetime still raises).
            processor = partial(jsonfast.dumps, stdlib=processor)
        converted.append(values if processor is None else _convert(processor, values))
    return list(zip(*converted, strict=True))


def _sqlite_write(conn: Connection, table: Table, columns: Columns, *,
                  keys: Sequence[str] = (), set_sql: Mapping[str, str] | None = None,
                  where_sql: str | None = None) -> None:
    """Insert or upsert rows given column by column on SQLite with one driver-level
    ``executemany``; ``keys`` empty for a plain INSERT, ``set_sql`` as for :func:`upsert`."""
    if not len(next(iter(columns.values()), ())):
        return
    conn.exec_driver_sql(_sqlite_statement(table, list(columns), keys, set_sql,
                                           where_sql=where_sql),
                         _sqlite_rows(conn, table, columns))


#: Bound parameters in one SQLite statement: the smallest limit SQLite builds have used.
_SQLITE_PARAMETERS = 999


def _sqlite_returning(conn: Connection, table: Table, columns: Columns, *,
                      keys: Sequence[str], set_sql: Mapping[str, str] | None,
                      returning: Sequence[str]) -> list[tuple[Any, ...]]:
    """SQLite upsert that reports the rows it wrote: an ``executemany`` returns nothing, so
    multi-row ``INSERT … VALUES … RETURNING`` statements, as many rows each as the parameter
    limit allows (for the few rows that need it: a notification's event ids)."""
    rows = _sqlite_rows(conn, table, columns)
    names = list(columns)
    per_statement = max(1, _SQLITE_PARAMETERS // len(names))
    tail = " RETURNING " + ", ".join(_quote(c) for c in returning)
    found: list[tuple[Any, ...]] = []
    for start in range(0, len(rows), per_statement):
        chunk = rows[start:start + per_statement]
        sql = _sqlite_statement(table, names, keys, set_sql, len(chunk)) + tail
        found += map(tuple, conn.exec_driver_sql(sql, tuple(itertools.chain(*chunk))).all())
    return found


def _convert(processor: Callable[[Any], Any], values: Sequence[Any]) -> list[Any]:
    """``processor`` over a column, once when every row holds the same object (a batch's
    timestamp and customer objects; a datetime's conversion is the costly part)."""
    if _constant(values):
        value = processor(values[0])
        if isinstance(value, datetime):
            # The text sqlite3's own adapter would write for every row (it is deprecated and
            # formats each row again): formatted once for the whole column.
            value = value.isoformat(" ")
        return [value] * len(values)
    return list(map(processor, values))


def _pg_update(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], *,
                key: str = "id") -> None:
    """``UPDATE table SET … WHERE key = …`` for many rows with the same columns, on PostgreSQL,
    in one ``UPDATE … FROM`` array literals or, from :data:`MIN_ROWS` rows, a temp table
    filled by COPY (an executemany sends a statement per row)."""
    if not rows:
        return
    columns = by_column(rows)
    assignments = ", ".join(f"{_quote(c)} = s.{_quote(c)}" for c in columns if c != key)
    names = ", ".join(_quote(c) for c in columns)
    cursor = _driver_cursor(conn)
    try:
        if len(rows) < MIN_ROWS:
            casts, params = _arrays(table, columns)
            source = f"unnest({casts}) AS s ({names})"
        else:
            source = f"{_copy_to_temp(cursor, table, columns)} AS s"
            params = []
        cursor.execute(f"UPDATE {_quote(table.name)} AS t SET {assignments} FROM {source} "
                       f"WHERE t.{_quote(key)} = s.{_quote(key)}", params or None)
    finally:
        cursor.close()


# The write door: every bulk write of the repositories goes through these, which pick the path.


def _postgresql(conn: Connection) -> bool:
    name = conn.dialect.name
    if name not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"unsupported database dialect {name!r}")
    return name == "postgresql"


def _as_columns(rows: Sequence[Mapping[str, Any]] | Columns) -> list[Columns]:
    """Rows or columns as column groups: rows with different keys go as separate groups."""
    if isinstance(rows, Mapping):
        return [rows]
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    return [by_column(group) for group in groups.values()]


def upsert(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]] | Columns, *,
           keys: Sequence[str], set_sql: Mapping[str, str] | None = None,
           where_sql: str | None = None,
           returning: Sequence[str] = ()) -> list[tuple[Any, ...]]:
    """Insert or upsert ``rows`` into ``table`` by the fastest path the database has:
    PostgreSQL COPY or arrays (:func:`_pg_upsert`), SQLite one driver ``executemany``
    (:func:`_sqlite_write`).

    Args:
        conn: a connection inside a transaction.
        table: the target table.
        rows: dicts (rows with different keys go as separate statements), or columns
            (column name → one value per row).
        keys: the conflict target (a unique constraint's columns).
        set_sql: column → SQL expression for ``DO UPDATE SET`` (may use ``excluded.col`` and
            the table's own columns, qualified by the table's name; :func:`excluded` for the
            new row's values); empty or None means ``DO NOTHING``.
        where_sql: update a conflicting row only where this SQL condition holds (it may use
            ``excluded.col`` and the table's own columns); other conflicting rows are left as
            they are, unwritten (not with ``returning`` on SQLite).
        returning: columns to return for every inserted or updated row (not for the rows
            ``DO NOTHING`` skipped). On SQLite this costs a statement per few hundred rows
            instead of one ``executemany``: for many rows, read them back instead.
    """
    postgresql = _postgresql(conn)
    result: list[tuple[Any, ...]] = []
    for columns in _as_columns(rows):
        if postgresql:
            result += _pg_upsert(conn, table, columns, keys=keys, set_sql=set_sql or {},
                                 where_sql=where_sql, returning=returning)
        elif returning:
            if where_sql:
                raise ValueError("where_sql with returning is not supported on SQLite")
            result += _sqlite_returning(conn, table, columns, keys=keys, set_sql=set_sql,
                                        returning=returning)
        else:
            _sqlite_write(conn, table, columns, keys=keys, set_sql=set_sql,
                          where_sql=where_sql)
    return result


def excluded(columns: Sequence[str]) -> dict[str, str]:
    """``set_sql`` for :func:`upsert` that takes the new row's value of each column."""
    return {c: f"excluded.{_quote(c)}" for c in columns}


def insert_new(conn: Connection, table: Table,
               rows: Sequence[Mapping[str, Any]] | Columns) -> None:
    """Insert rows that cannot conflict with any stored row (new entities under ids just drawn
    by :func:`draw_ids`, and their match keys).

    PostgreSQL: COPY straight into the table (from :data:`MIN_ROWS` rows), else one INSERT …
    SELECT FROM unnest; no temp table and no conflict check per row (the speculative insertion
    of ``ON CONFLICT`` would cost about as much as the write). SQLite: one plain
    ``executemany`` INSERT. A row that does conflict raises IntegrityError: nothing is lost
    silently.
    """
    postgresql = _postgresql(conn)
    for columns in _as_columns(rows):
        if postgresql:
            _copy_insert(conn, table, columns)
        else:
            _sqlite_write(conn, table, columns)


def draw_ids(conn: Connection, table: Table, n: int) -> list[int]:
    """``n`` new ids for ``table``'s ``id`` column, to insert rows under with :func:`insert_new`.

    PostgreSQL draws them from the table's sequence in one round trip. SQLite cannot batch
    ``INSERT … RETURNING`` in parameter order, so the ids follow ``max(id)``, under SQLite's
    write lock (taken here if the caller has not) so that ``max(id)`` cannot move before the
    insert.
    """
    if _postgresql(conn):
        return [int(i) for i in conn.execute(
            text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
            {"t": table.name, "n": n}).scalars()]
    # A write that matches nothing still takes the write lock.
    conn.execute(sa_update(table).where(table.c.id == -1).values(id=table.c.id))
    top = conn.execute(select(func.max(table.c.id))).scalar_one() or 0
    return list(range(top + 1, top + 1 + n))


def update_by_key(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], *,
                  key: str = "id") -> None:
    """``UPDATE table SET … WHERE key = …`` for many rows with the same columns: PostgreSQL
    one ``UPDATE … FROM`` arrays or a COPY-filled temp table (:func:`_pg_update`), SQLite
    one ``executemany``."""
    if not rows:
        return
    if _postgresql(conn):
        _pg_update(conn, table, rows, key=key)
        return
    names = [c for c in rows[0] if c != key]
    conn.execute(sa_update(table).where(table.c[key] == bindparam(f"_{key}"))
                 .values(**{c: bindparam(f"_{c}") for c in names}),
                 [{f"_{c}": v for c, v in row.items()} for row in rows])
