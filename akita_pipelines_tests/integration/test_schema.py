"""The Alembic migration and the SQLAlchemy schema describe the same database."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Engine, MetaData, String, Table

from akita_pipelines.db.schema import metadata


def _drift(engine: Engine, target: MetaData) -> list[Any]:
    """Autogenerate's differences, flattened: column changes come as lists of tuples."""
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), target)
    flat: list[Any] = []
    for entry in diff:
        flat.extend(entry if isinstance(entry, list) else [entry])
    return flat


def test_migrations_match_the_schema(engine: Engine) -> None:
    assert _drift(engine, metadata) == []


def test_a_changed_column_type_is_drift(engine: Engine) -> None:
    changed = MetaData()
    for table in metadata.sorted_tables:
        table.to_metadata(changed)
    customers: Table = changed.tables["customers"]
    customers.c.name.type = String(123)
    customers.append_column(Column("added_later", String(10)))
    kinds = {entry[0] for entry in _drift(engine, changed)}
    assert {"modify_type", "add_column"} <= kinds
