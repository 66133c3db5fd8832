"""The Alembic migration and the SQLAlchemy schema describe the same database."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from akita_pipelines.db.schema import metadata


def test_migrations_match_the_schema(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    # Type-class differences (our UtcDateTime decorator vs DateTime) are not schema drift.
    assert [d for d in diff if d[0] != "modify_type"] == []
