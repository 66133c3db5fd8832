"""Shared fixtures: databases (SQLite and a throwaway PostgreSQL), the sandbox, a clock."""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from akita_pipelines.db.engine import make_engine
from akita_pipelines.db.migrate import upgrade
from akita_pipelines_tests.mariadb import mariadb_server
from akita_pipelines_tests.pg import postgres_server

_db_counter = itertools.count()


def pytest_configure(config: pytest.Config) -> None:
    # Tests never touch the developer's .akita/ (database, secret key, sandbox URLs).
    os.environ["AKITA_HOME"] = tempfile.mkdtemp(prefix="akita-test-home-")
    os.environ.pop("AKITA_DATABASE_URL", None)
    os.environ.pop("AKITA_SECRET_KEYS", None)


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def mariadb_admin_url() -> Iterator[str]:
    """A throwaway MariaDB server (the sql provider's MySQL / MariaDB customers)."""
    with mariadb_server() as url:
        yield url


def _fresh_pg_database(admin_url: str) -> str:
    name = f"akita_test_{next(_db_counter)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs twice: on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'akita.db'}"
    return _fresh_pg_database(request.getfixturevalue("pg_admin_url"))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'akita.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()
