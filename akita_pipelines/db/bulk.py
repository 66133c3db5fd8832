"""Bulk upserts below SQLAlchemy's per-row statement machinery.

PostgreSQL: COPY into a temp table, then one INSERT … SELECT … ON CONFLICT. SQLAlchemy runs an
``ON CONFLICT DO UPDATE`` executemany row by row on psycopg2 (about 5k rows/s on a 2-core
machine); COPY and one set-based upsert is an order of magnitude faster.

SQLite: one ``executemany`` of a prepared upsert on the driver's cursor, values converted by
the columns' own bind processors (so they are stored exactly as SQLAlchemy stores them). The
statement is the same; what goes is SQLAlchemy's per-row parameter compilation, which cost
more than SQLite's own work.

Identifiers come from our own ``Table`` objects, never from input; values travel as COPY text
(escaped here) or as driver parameters.
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Connection, Table, text

_names = itertools.count()

#: Below this many rows :func:`copy_upsert` sends arrays instead of COPY into a temp table.
MIN_ROWS = 1000


def _escape(value: str) -> str:
    return (value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r"))


def _cell(value: Any, is_json: bool) -> str:
    if value is None:
        return "\\N"
    if is_json:
        return _escape(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime in a bulk write")
        return value.isoformat()
    return _escape(str(value))


def _column_text(values: list[Any], is_json: bool) -> list[str]:
    """One column's COPY text, each distinct object converted once (a batch's rows share their
    timestamp and customer objects; a datetime's ``isoformat`` is the costly part)."""
    convert = _converter(is_json)
    distinct = {id(v): v for v in values}
    if len(distinct) * 2 > len(values):
        return list(map(convert, values))
    done = {key: convert(v) for key, v in distinct.items()}
    return [done[id(v)] for v in values]


def _converter(is_json: bool) -> Callable[[Any], str]:
    """A COPY-text converter for one column: strings (the common case) take a short path."""
    def convert(value: Any) -> str:
        if value is None:
            return "\\N"
        if type(value) is str and not is_json:
            if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
                return _escape(value)
            return value
        return _cell(value, is_json)
    return convert


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def copy_upsert(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], *,
                keys: Sequence[str], set_sql: Mapping[str, str],
                returning: Sequence[str] = ()) -> list[tuple[Any, ...]]:
    """Upsert ``rows`` into ``table`` on PostgreSQL via COPY.

    Args:
        conn: a connection inside a transaction (the temp table drops at commit).
        table: the target table.
        rows: dicts with the same keys.
        keys: the conflict target (a unique constraint's columns).
        set_sql: column → SQL expression for ``DO UPDATE SET`` (may use ``excluded.col`` and
            the table's own columns); empty means ``DO NOTHING``.
        returning: columns to return for every inserted or updated row (tuples in this
            order).
    """
    if not rows:
        return []
    if len(rows) < MIN_ROWS:
        return _array_upsert(conn, table, rows, keys=keys, set_sql=set_sql, returning=returning)
    columns = list(rows[0])
    json_cols = {c for c in columns if isinstance(table.c[c].type, JSON)}
    stage = f"_akita_stage_{next(_names)}"
    target = _quote(table.name)
    col_list = ", ".join(_quote(c) for c in columns)
    conn.execute(text(f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS "
                      f"SELECT {col_list} FROM {target} WITH NO DATA"))
    # Column by column: one converter mapped over each column, then rows joined once.
    cells = [_column_text([row[c] for row in rows], c in json_cols) for c in columns]
    buffer = io.StringIO("".join("\t".join(line) + "\n" for line in zip(*cells, strict=True)))
    conflict = ", ".join(_quote(k) for k in keys)
    if set_sql:
        action = "DO UPDATE SET " + ", ".join(f"{_quote(c)} = {e}" for c, e in set_sql.items())
    else:
        action = "DO NOTHING"
    sql = (f"INSERT INTO {target} ({col_list}) SELECT {col_list} FROM {stage} "
           f"ON CONFLICT ({conflict}) {action}")
    if returning:
        sql += " RETURNING " + ", ".join(_quote(c) for c in returning)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.copy_expert(f"COPY {stage} ({col_list}) FROM STDIN", buffer)
        cursor.execute(sql)  # the driver's cursor: returned rows stay plain tuples
        return list(cursor.fetchall()) if returning else []
    finally:
        cursor.close()


def _array_upsert(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], *,
                  keys: Sequence[str], set_sql: Mapping[str, str],
                  returning: Sequence[str]) -> list[tuple[Any, ...]]:
    """:func:`copy_upsert` for a few rows: one ``INSERT … SELECT FROM unnest(arrays)`` with a
    column per array parameter. A temp table costs ~4 ms of catalog work and an executemany a
    round trip per row; an incremental sync writes a hundred rows to several tables."""
    columns = list(rows[0])
    casts, params = _arrays(conn, table, columns, rows)
    col_list = ", ".join(_quote(c) for c in columns)
    conflict = ", ".join(_quote(k) for k in keys)
    action = ("DO UPDATE SET " + ", ".join(f"{_quote(c)} = {e}" for c, e in set_sql.items())
              if set_sql else "DO NOTHING")
    sql = (f"INSERT INTO {_quote(table.name)} ({col_list}) "
           f"SELECT * FROM unnest({', '.join(casts)}) ON CONFLICT ({conflict}) {action}")
    if returning:
        sql += " RETURNING " + ", ".join(_quote(c) for c in returning)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, params)
        return list(cursor.fetchall()) if returning else []
    finally:
        cursor.close()


def _arrays(conn: Connection, table: Table, columns: Sequence[str],
            rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], dict[str, Any]]:
    """Each column's values as one array parameter, and the typed placeholders for them."""
    casts = []
    params: dict[str, Any] = {}
    for i, c in enumerate(columns):
        column_type = table.c[c].type
        values = [row[c] for row in rows]
        if isinstance(column_type, JSON):
            values = [None if v is None else json.dumps(v, separators=(",", ":"),
                                                        ensure_ascii=False) for v in values]
        elif any(isinstance(v, datetime) and v.tzinfo is None for v in values):
            raise ValueError("naive datetime in a bulk write")
        params[f"a{i}"] = values
        casts.append(f"%(a{i})s::{column_type.compile(dialect=conn.dialect)}[]")
    return casts, params


def use_copy(conn: Connection, n_rows: int) -> bool:
    """Whether :func:`copy_upsert` applies (PostgreSQL, any batch size: it takes arrays below
    :data:`MIN_ROWS` rows)."""
    return conn.dialect.name == "postgresql" and n_rows > 0


def use_driver(conn: Connection) -> bool:
    """Whether :func:`sqlite_upsert` applies (SQLite, any batch size)."""
    return conn.dialect.name == "sqlite"


def sqlite_upsert(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], *,
                  keys: Sequence[str] = (), set_sql: Mapping[str, str] | None = None) -> None:
    """Insert or upsert ``rows`` on SQLite with one driver-level ``executemany``.

    Args:
        conn: a connection inside a transaction.
        table: the target table.
        rows: dicts with the same keys.
        keys: the conflict target; empty for a plain INSERT.
        set_sql: as for :func:`copy_upsert`; empty or None means ``DO NOTHING``.
    """
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for row in rows:  # rows with different columns go as separate statements
        groups.setdefault(tuple(row), []).append(row)
    for columns, group in groups.items():
        _sqlite_executemany(conn, table, list(columns), group, keys, set_sql)


def _sqlite_executemany(conn: Connection, table: Table, columns: list[str],
                        rows: Sequence[Mapping[str, Any]], keys: Sequence[str],
                        set_sql: Mapping[str, str] | None) -> None:
    processors = [table.c[c].type.bind_processor(conn.dialect) for c in columns]
    target = _quote(table.name)
    sql = (f"INSERT INTO {target} ({', '.join(_quote(c) for c in columns)}) "
           f"VALUES ({', '.join('?' for _ in columns)})")
    if keys:
        sql += f" ON CONFLICT ({', '.join(_quote(k) for k in keys)}) "
        sql += ("DO UPDATE SET " + ", ".join(f"{_quote(c)} = {e}" for c, e in set_sql.items())
                if set_sql else "DO NOTHING")
    # Column by column: one map() per column instead of a Python call per value.
    values = [[row[c] for row in rows] for c in columns]
    converted = [vals if p is None else _convert(p, vals)
                 for p, vals in zip(processors, values, strict=True)]
    params = list(zip(*converted, strict=True))
    conn.exec_driver_sql(sql, params)


def _convert(processor: Callable[[Any], Any], values: list[Any]) -> list[Any]:
    """``processor`` over a column, once per distinct object: a batch's rows share their
    timestamp and customer objects, and a datetime's conversion is the costly part."""
    distinct = {id(v): v for v in values}
    if len(distinct) * 2 > len(values):
        return list(map(processor, values))
    done = {key: processor(v) for key, v in distinct.items()}
    return [done[id(v)] for v in values]


def copy_update(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], *,
                key: str = "id") -> None:
    """``UPDATE table SET … WHERE key = …`` for many rows with the same columns, on PostgreSQL:
    COPY into a temp table, then one ``UPDATE … FROM`` (an executemany sends a statement per
    row)."""
    if not rows:
        return
    columns = list(rows[0])
    assignments = ", ".join(f"{_quote(c)} = s.{_quote(c)}" for c in columns if c != key)
    if len(rows) < MIN_ROWS:  # a few rows: arrays, no temp table
        casts, params = _arrays(conn, table, columns, rows)
        names = ", ".join(_quote(c) for c in columns)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(f"UPDATE {_quote(table.name)} AS t SET {assignments} "
                           f"FROM unnest({', '.join(casts)}) AS s ({names}) "
                           f"WHERE t.{_quote(key)} = s.{_quote(key)}", params)
        finally:
            cursor.close()
        return
    json_cols = {c for c in columns if isinstance(table.c[c].type, JSON)}
    stage = f"_akita_stage_{next(_names)}"
    col_list = ", ".join(_quote(c) for c in columns)
    conn.execute(text(f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS "
                      f"SELECT {col_list} FROM {_quote(table.name)} WITH NO DATA"))
    cells = [_column_text([row[c] for row in rows], c in json_cols) for c in columns]
    buffer = io.StringIO("".join("\t".join(line) + "\n" for line in zip(*cells, strict=True)))
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.copy_expert(f"COPY {stage} ({col_list}) FROM STDIN", buffer)
    finally:
        cursor.close()
    conn.execute(text(f"UPDATE {_quote(table.name)} AS t SET {assignments} FROM {stage} AS s "
                      f"WHERE t.{_quote(key)} = s.{_quote(key)}"))
