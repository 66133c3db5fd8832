"""Engines for the Akita database: SQLite (embedded default) or PostgreSQL (production)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event


def akita_home() -> Path:
    """The folder for local state (SQLite file, sandbox URLs): ``$AKITA_HOME`` or ``./.akita``."""
    return Path(os.environ.get("AKITA_HOME", ".akita")).resolve()


def default_database_url() -> str:
    """``$AKITA_DATABASE_URL``, else a SQLite file under :func:`akita_home`."""
    url = os.environ.get("AKITA_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{akita_home() / 'akita.db'}"


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory SQLite)."""
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[1] if ":///" in url else ""
    path = path.split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


def database_exists(url: str) -> bool:
    """Whether connecting would find a database rather than create one (SQLite creates its
    file on connect: code that only reads, like loading definitions, asks first)."""
    path = sqlite_path(url)
    return path is None or path.exists()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Several Dagster run processes and the sensor share one file: WAL lets readers run beside
    # the writer, and busy_timeout makes writers wait for each other instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # The default page cache (2 MB) is smaller than the match-key and interaction indexes a
    # batch touches: its upserts re-read index pages from the OS row after row. Each
    # connection has its own cache, and a sync holds two (its retrieval stages pages while the
    # processor writes batches), so 8 MB each: a larger one adds to a backfill's peak RSS
    # twice over.
    cursor.execute("PRAGMA cache_size=-8192")
    # Fold the WAL back every ~40 MB, not every 4 MB: a batch rewrites the same index pages,
    # and each checkpoint copies them into the database file again. The processor checkpoints
    # after a large sync (sync/process.py); journal_size_limit truncates the WAL afterwards.
    cursor.execute("PRAGMA wal_autocheckpoint=10000")
    cursor.execute("PRAGMA journal_size_limit=67108864")
    cursor.close()


def make_engine(url: str | None = None) -> Engine:
    """Create an engine for ``url`` (default: :func:`default_database_url`)."""
    url = url or default_database_url()
    if url.startswith("postgresql://"):
        # SQLAlchemy 2.1 maps bare postgresql:// to psycopg 3; we ship psycopg2.
        url = "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # A batch run syncs several integrations at once, each with a retrieval staging pages beside
    # its processor: two connections a thread at most (opened only when used).
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=15)


@lru_cache(maxsize=8)
def cached_engine(url: str) -> Engine:
    """One engine per URL per process (runs and the sensor reuse their pool)."""
    return make_engine(url)
