"""Run the Alembic migrations programmatically (``akita db upgrade``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database at ``engine`` to ``revision`` (default: the newest).

    On SQLite a migration that changes a table's constraints rebuilds it (copy, drop,
    rename); with foreign keys enforced, dropping a table other rows reference fails. So they
    are off while the migrations run (the pragma only takes effect outside a transaction), no
    reference may be broken that was not broken before, and they are on again afterwards.
    The driver would begin a transaction only at the first row written, committing a
    rebuild's CREATE TABLE on its own: here one explicit transaction holds every statement,
    so a failed upgrade leaves the file as it was.
    """
    config = alembic_config(engine)
    target = ScriptDirectory.from_config(config).as_revision_number(revision)
    with engine.connect() as connection:
        if MigrationContext.configure(connection).get_current_revision() == target:
            return  # nothing to do: no pragma dance, no reference check over every row
    if engine.dialect.name != "sqlite":
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
        return
    with engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        implicit = raw.isolation_level
        raw.isolation_level = None  # the driver begins nothing by itself: BEGIN below does
        try:
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
            broken_before = set(map(tuple, connection.exec_driver_sql(
                "PRAGMA foreign_key_check").all()))
            connection.commit()
            with connection.begin():
                connection.exec_driver_sql("BEGIN")
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
                broken = [row for row in connection.exec_driver_sql(
                    "PRAGMA foreign_key_check").all() if tuple(row) not in broken_before]
                if broken:
                    raise RuntimeError(f"migrating to {revision} would leave {len(broken)} rows "
                                       f"referencing missing rows (first: {tuple(broken[0])}); "
                                       "nothing was changed")
        finally:
            connection.rollback()  # a failed upgrade's transaction, if one is left
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()
            raw.isolation_level = implicit
