"""Customer databases for the sql provider's conformance tests, one per engine.

Each is a fresh database holding the same CRM: ``companies`` (20 rows, soft-delete flag) and
``usage`` (20 rows pointing at them), with naive ``updated_at`` columns read as New York time,
a read-only login where the engine has logins, and an owner connection that plays the
customer's application (inserts, updates, deletes between syncs).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

#: Every engine the sql provider is proven on; PostgreSQL and MariaDB are real servers.
ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "mariadb", "duckdb"]
#: Engines with a server whose connections can be killed and logins refused.
SERVERS = [pytest.param("postgres", marks=pytest.mark.postgres), "mariadb"]

ZONE = "America/New_York"
#: Wall-clock time in New York of the first row (17:00 UTC: EST, UTC-5, on 1 March).
WALL0 = datetime.fromisoformat("2024-03-01T12:00:00")  # naive on purpose
PASSWORD = "s3cr3t-pw"

_names = itertools.count()

_TIMESTAMP = {"sqlite": "TEXT", "postgres": "timestamp", "mariadb": "DATETIME",
              "duckdb": "TIMESTAMP"}
_BOOLEAN = {"sqlite": "INTEGER", "postgres": "boolean", "mariadb": "BOOLEAN",
            "duckdb": "BOOLEAN"}


@dataclass
class CustomerDb:
    """One customer's database on one engine."""

    kind: str
    url: str  # as the customer configures it: no password
    owner_url: str
    schema: str | None
    credentials: dict[str, str] = field(default_factory=dict)

    def table(self, name: str) -> str:
        """The name a stream's ``table`` config uses."""
        return f"{self.schema}.{name}" if self.schema else name

    def quoted(self, name: str) -> str:
        """The table's name in hand-written SQL, quoted: ``usage`` is a reserved word in
        MySQL (the privilege), which the connector's generated SELECT must quote too."""
        mark = "`" if self.kind == "mariadb" else '"'
        return ".".join(f"{mark}{part}{mark}" for part in self.table(name).split("."))

    def config(self, **streams: Any) -> dict[str, Any]:
        return {"url": self.url, "timezone": ZONE, "streams": streams}

    def stamp(self, wall: datetime) -> Any:
        """A naive wall-clock time as the customer's application stores it."""
        if self.kind == "sqlite":
            text_stamp = wall.strftime("%Y-%m-%d %H:%M:%S")
            return text_stamp + (f".{wall.microsecond:06d}" if wall.microsecond else "")
        return wall

    def execute(self, sql: str, rows: list[dict[str, Any]] | dict[str, Any] | None = None) -> None:
        """Run one statement as the owner, committed, with no connection left open (DuckDB
        refuses a read-only open of a file another connection of this process holds)."""
        engine = create_engine(self.owner_url, poolclass=NullPool)
        try:
            with engine.begin() as conn:
                conn.execute(text(sql), rows or {})
        finally:
            engine.dispose()

    def rows(self, sql: str) -> list[Any]:
        engine = create_engine(self.owner_url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                return list(conn.execute(text(sql)))
        finally:
            engine.dispose()

    def scalar(self, sql: str) -> Any:
        return self.rows(sql)[0][0]

    def create_crm(self) -> None:
        ts, flag = _TIMESTAMP[self.kind], _BOOLEAN[self.kind]
        self.execute(f"CREATE TABLE {self.table('companies')} (id INTEGER PRIMARY KEY, "
                     f"company_name VARCHAR(100), site VARCHAR(100), updated_at {ts}, "
                     f"is_deleted {flag} NOT NULL)")
        self.execute(f"INSERT INTO {self.table('companies')} VALUES "
                     "(:id, :name, :site, :at, :deleted)", [
                         {"id": i, "name": f"Company {i}", "site": f"c{i}.example",
                          "at": self.stamp(WALL0 + timedelta(seconds=i)), "deleted": i == 7}
                         for i in range(1, 21)])
        self.execute(f"CREATE TABLE {self.quoted('usage')} (id VARCHAR(16) PRIMARY KEY, "
                     f"company_id INTEGER, active_users INTEGER, updated_at {ts})")
        self.execute(f"INSERT INTO {self.quoted('usage')} VALUES (:id, :company, :users, :at)", [
            {"id": f"u{i}", "company": i, "users": i * 10,
             "at": self.stamp(WALL0 + timedelta(minutes=i))} for i in range(1, 21)])


def new_customer_db(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> CustomerDb:
    """A fresh, empty customer database on ``kind`` (servers start once per test session)."""
    name = f"cust_{next(_names)}"
    if kind == "sqlite":
        path = tmp_path / f"{name}.db"
        return CustomerDb(kind, f"sqlite:///{path}", f"sqlite:///{path}", None)
    if kind == "duckdb":
        # Not named after its schema: DuckDB calls the database after the file, and a schema
        # "crm" in a file "crm.duckdb" is an ambiguous reference.
        path = tmp_path / f"{name}.duckdb"
        db = CustomerDb(kind, f"duckdb:///{path}", f"duckdb:///{path}", "crm")
        db.execute("CREATE SCHEMA crm")
        return db
    if kind == "postgres":
        admin_url = str(request.getfixturevalue("pg_admin_url"))
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            conn.execute(text("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname "
                              f"= 'reader') THEN CREATE ROLE reader LOGIN PASSWORD '{PASSWORD}'; "
                              "END IF; END $$"))
        admin.dispose()
        owner_url = admin_url.rsplit("/", 1)[0] + f"/{name}"
        host = owner_url.split("@", 1)[1]
        db = CustomerDb(kind, f"postgresql+psycopg2://reader@{host}", owner_url, "crm",
                        {"password": PASSWORD})
        # The customer's server runs in New York time; its timestamp columns are naive.
        db.execute(f"ALTER DATABASE \"{name}\" SET timezone = '{ZONE}'")
        db.execute("CREATE SCHEMA crm")
        db.execute("GRANT USAGE ON SCHEMA crm TO reader")
        db.execute("ALTER DEFAULT PRIVILEGES IN SCHEMA crm GRANT SELECT ON TABLES TO reader")
        return db
    assert kind == "mariadb"
    admin_url = str(request.getfixturevalue("mariadb_admin_url"))
    admin = create_engine(admin_url, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
        conn.execute(text("CREATE USER IF NOT EXISTS 'reader'@'127.0.0.1' "
                          "IDENTIFIED BY :pw"), {"pw": PASSWORD})
        conn.execute(text(f"GRANT SELECT, EXECUTE ON {name}.* TO 'reader'@'127.0.0.1'"))
        # A server far from UTC and from the customer's zone: a TIMESTAMP column read in the
        # server's zone instead of UTC is then off by hours, not by nothing.
        conn.execute(text("SET GLOBAL time_zone = '+09:00'"))
    admin.dispose()
    host = admin_url.split("@", 1)[1].rstrip("/")
    return CustomerDb(kind, f"mysql+pymysql://reader@{host}/{name}",
                      f"{admin_url.rstrip('/')}/{name}", None, {"password": PASSWORD})
