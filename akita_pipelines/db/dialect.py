"""Dialect-specific statements: INSERT … ON CONFLICT and set membership on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    String,
    Table,
    Text,
    any_,
    bindparam,
    cast,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert


def insert_for(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT construct (it has ``on_conflict_do_update``)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"unsupported database dialect {conn.dialect.name!r}")


def upsert(conn: Connection, table: Table, keys: Sequence[str], values: Mapping[str, Any] | None,
           *, update: Sequence[str]) -> Insert:
    """INSERT … ON CONFLICT (keys) DO UPDATE SET the ``update`` columns from the new row."""
    stmt = insert_for(conn, table)
    if values is not None:
        stmt = stmt.values(**values)
    if not update:
        return stmt.on_conflict_do_nothing(index_elements=list(keys))  # type: ignore[no-any-return]
    return stmt.on_conflict_do_update(  # type: ignore[no-any-return]
        index_elements=list(keys), set_={c: stmt.excluded[c] for c in update}
    )


def text_array(values: Iterable[Any]) -> str:
    """Values as one PostgreSQL array literal (``{"a","b \\"c\\""}``), to bind as a single text
    parameter and cast to an array in SQL."""
    texts = [v if type(v) is str else str(v) for v in values]
    joined = "".join(texts)  # one scan decides whether any value needs escaping
    if '"' in joined or "\\" in joined:
        texts = [t.replace("\\", "\\\\").replace('"', '\\"') for t in texts]
    return '{"' + '","'.join(texts) + '"}' if texts else "{}"


def among(conn: Connection, column: ColumnElement[Any], values: Iterable[Any]
          ) -> ColumnElement[bool]:
    """``column IN values`` as one bound parameter, whatever the number of values.

    ``IN (…)`` with thousands of values costs more to render and bind than the query costs to
    run; PostgreSQL takes an array (``= ANY(:values)``), SQLite a JSON array it unnests
    (``IN (SELECT value FROM json_each(:values))``).
    """
    listed = list(values)
    if conn.dialect.name == "postgresql":
        # One text parameter holding an array literal. A bound Python list is adapted value by
        # value and, built into the statement, lives on in SQLAlchemy's statement cache where
        # the collector rescans it; a cast to varchar(n)[] would cut longer values.
        literal = text_array(listed)
        impl = getattr(column.type, "impl", column.type)
        element = String() if isinstance(impl, String) else column.type
        return column == any_(cast(bindparam(None, literal, type_=Text),
                                   postgresql.ARRAY(element)))
    return column.in_(select(literal_column("value")).select_from(
        func.json_each(bindparam(None, json.dumps(listed)))))
