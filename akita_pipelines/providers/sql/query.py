"""Building the incremental SELECT for a configured table or query, and refusing anything else.

Values are always bound parameters; identifiers (schema, table, columns) are checked against a
strict pattern and quoted by SQLAlchemy. A configured query is parsed with sqlglot and must be
one plain SELECT (or a UNION of them): no second statement, no data-modifying CTE
(``WITH d AS (DELETE … RETURNING *)``), no ``SELECT … INTO`` (creates a table on PostgreSQL),
no ``FOR UPDATE`` (takes locks on the customer's rows).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnClause,
    FromClause,
    Select,
    bindparam,
    column,
    literal_column,
    select,
    table,
    text,
)

from akita_pipelines.core.errors import ConfigError

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")

#: Node types that write, lock, or run something other than a query.
_FORBIDDEN = ("Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "TruncateTable",
              "Command", "Into", "Lock", "Copy", "Set", "Transaction", "Commit", "Rollback",
              "Grant", "Use", "Pragma", "Analyze")
_SELECTS = ("Select", "Union", "Intersect", "Except")

#: SQLAlchemy dialect names → sqlglot dialect names.
_SQLGLOT_DIALECTS = {"postgresql": "postgres", "sqlite": "sqlite", "mysql": "mysql",
                     "mssql": "tsql", "oracle": "oracle", "snowflake": "snowflake",
                     "bigquery": "bigquery", "redshift": "redshift", "duckdb": "duckdb"}


def identifier(value: Any, where: str) -> str:
    """A column or table name, or a ConfigError."""
    if not isinstance(value, str) or not IDENTIFIER.match(value):
        raise ConfigError(f"{where} must be a plain identifier (letters, digits, _ and $, "
                          f"starting with a letter or _), got {value!r}")
    return value


def table_name(value: Any, where: str) -> tuple[str | None, str]:
    """``schema.table`` or ``table``, each part a plain identifier."""
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a table name such as crm.companies")
    parts = value.split(".")
    if len(parts) > 2:
        raise ConfigError(f"{where} must be 'table' or 'schema.table', got {value!r}")
    names = [identifier(p, where) for p in parts]
    return (names[0], names[1]) if len(names) == 2 else (None, names[0])


def check_select(sql: Any, where: str, dialect: str | None = None) -> str:
    """Return ``sql`` without a trailing semicolon if it is one read-only SELECT.

    Raises:
        ConfigError: saying what is not allowed.
    """
    if not isinstance(sql, str) or not sql.strip():
        raise ConfigError(f"{where} must be a SELECT statement")
    # Imported here: parsing happens when an integration is registered or read, and the
    # code location should not pay sqlglot's import on every run.
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError

    forbidden = tuple(getattr(exp, n) for n in _FORBIDDEN if hasattr(exp, n))
    selects = tuple(getattr(exp, n) for n in _SELECTS)
    cleaned = sql.strip().rstrip(";").strip()
    try:
        statements = [s for s in sqlglot.parse(cleaned, read=_SQLGLOT_DIALECTS.get(dialect or ""))
                      if s is not None]
    except ParseError as exc:
        first = str(exc).splitlines()[0][:200]
        raise ConfigError(f"{where} is not valid SQL: {first}") from None
    if len(statements) != 1:
        raise ConfigError(f"{where} must be exactly one statement, found {len(statements)}")
    statement = statements[0]
    if not isinstance(statement, selects):
        raise ConfigError(f"{where} must be a SELECT; found {statement.key.upper()}: Akita only "
                          "reads the customer's database")
    for node in statement.walk():
        if isinstance(node, forbidden):
            raise ConfigError(f"{where} must only read: it contains {node.key.upper()}, which "
                              "writes, locks or runs a command")
    return cleaned


@dataclass(frozen=True)
class SqlSource:
    """Where one stream's rows come from, validated."""

    table: tuple[str | None, str] | None
    query: str | None
    primary_key: str
    cursor: str
    cursor_is_unix: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any], where: str) -> SqlSource:
        has_table, has_query = config.get("table") is not None, config.get("query") is not None
        if has_table == has_query:
            raise ConfigError(f"{where} needs exactly one of 'table' or 'query'")
        fmt = config.get("updated_at_format", "timestamp")
        if fmt not in ("timestamp", "unix"):
            raise ConfigError(f"{where}.updated_at_format must be 'timestamp' or 'unix'")
        return cls(
            table=table_name(config["table"], f"{where}.table") if has_table else None,
            query=check_select(config["query"], f"{where}.query") if has_query else None,
            primary_key=identifier(config.get("primary_key"), f"{where}.primary_key"),
            cursor=identifier(config.get("updated_at"), f"{where}.updated_at"),
            cursor_is_unix=fmt == "unix",
        )

    def source(self, dialect: str) -> FromClause:
        """The table, or the configured query wrapped as a subquery."""
        cols: list[ColumnClause[Any]] = [column(self.cursor), column(self.primary_key)]
        if self.table is not None:
            schema, name = self.table
            return table(name, *cols, schema=schema)
        assert self.query is not None
        check_select(self.query, "query", dialect)
        # Escape colons: text() would read ':name' inside the customer's SQL as a bind
        # parameter (a '::date' cast is safe either way).
        return text(self.query.replace(":", r"\:")).columns(*cols).subquery("akita_src")

    def statement(self, *, incremental: bool, dialect: str) -> Select[Any]:
        """``SELECT * FROM <source> [WHERE cursor >= :since] ORDER BY cursor, pk``."""
        source = self.source(dialect)
        cursor_col, key_col = source.c[self.cursor], source.c[self.primary_key]
        stmt: Select[Any] = select(literal_column("*")).select_from(source)
        if incremental:
            stmt = stmt.where(cursor_col >= bindparam("since"))
        return stmt.order_by(cursor_col, key_col)

    def cursor_sample(self, dialect: str) -> Select[Any]:
        """One non-null cursor value: tells how SQLite stores the timestamps (see connector)."""
        source = self.source(dialect)
        cursor_col = source.c[self.cursor]
        return select(cursor_col).where(cursor_col.is_not(None)).limit(1)
