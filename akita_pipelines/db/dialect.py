"""Set membership in one bound parameter on SQLite and PostgreSQL (writes choose their SQL in
:mod:`akita_pipelines.db.bulk`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    String,
    Text,
    any_,
    bindparam,
    cast,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql


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
