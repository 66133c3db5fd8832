"""Run the Alembic migrations programmatically (``akita db upgrade``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
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
    are off while the migrations run (the pragma only takes effect outside a transaction),
    every reference is checked before the commit, and they are on again afterwards.
    """
    config = alembic_config(engine)
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()  # ends the autobegun transaction the pragma ran in
        try:
            with connection.begin():
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"migrating to {revision} left {len(broken)} rows "
                                           f"referencing missing rows (first: {broken[0]})")
        finally:
            if sqlite:
                connection.rollback()  # a failed upgrade's transaction, if any is left
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()
