"""The SQL provider against real databases: SQLite files and a throwaway PostgreSQL."""

from __future__ import annotations

import itertools
import sqlite3
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.exc import OperationalError

from akita_pipelines.core.errors import AuthError, ConfigError
from akita_pipelines.core.types import Customer, Integration
from akita_pipelines.db import state
from akita_pipelines.db.schema import account_links, interactions
from akita_pipelines.onboarding import add_customer, add_integration
from akita_pipelines.providers.auth import MemoryCredentialStore
from akita_pipelines.providers.base import ConnectionContext, Page
from akita_pipelines.providers.http import HttpClient
from akita_pipelines.providers.registry import PROVIDERS
from akita_pipelines.providers.sql import PROVIDER
from akita_pipelines.providers.sql.connector import classify_db_error
from akita_pipelines.sync.service import sync_object

_dbs = itertools.count()
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)

ACCOUNTS = {"table": "companies", "primary_key": "id", "updated_at": "updated_at",
            "deleted": "deleted_at",
            "fields": {"name": "company_name", "website": "site", "phone": "phone"}}


def _read(config: dict[str, Any], kind: str, since: datetime | None = None, *,
          creds: dict[str, Any] | None = None, page_size: int = 1000) -> list[Page]:
    ctx = ConnectionContext("sql.acme", config, MemoryCredentialStore(creds or {}),
                            HttpClient(), page_size=page_size)
    stream = PROVIDER.streams_for(config)[kind]
    return list(PROVIDER.connect(ctx).read_changes(stream, since))


def _ids(pages: list[Page]) -> list[Any]:
    return [r["id"] for p in pages for r in p.records]


@pytest.fixture
def crm_sqlite(tmp_path: Path) -> Path:
    """A customer CRM in SQLite: timestamps stored as text the way most apps write them."""
    path = tmp_path / "crm.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE companies (id INTEGER PRIMARY KEY, company_name TEXT, "
                   "site TEXT, phone TEXT, updated_at TEXT, deleted_at TEXT)")
        db.executemany("INSERT INTO companies VALUES (?, ?, ?, ?, ?, ?)", [
            (i, f"Company {i}", f"company{i}.example", None,
             (T0 + timedelta(hours=i)).strftime("%Y-%m-%d %H:%M:%S"),
             "2024-04-01 00:00:00" if i == 7 else None) for i in range(1, 21)])
        db.execute("CREATE TABLE usage (id TEXT PRIMARY KEY, company_id INTEGER, "
                   "active_users INTEGER, updated_at TEXT)")
        db.executemany("INSERT INTO usage VALUES (?, ?, ?, ?)", [
            (f"u{i}", i, i * 10, (T0 + timedelta(minutes=i)).isoformat()) for i in range(1, 21)])
    return path


def test_sqlite_incremental_read_has_a_closed_lower_bound(crm_sqlite: Path) -> None:
    config = {"url": f"sqlite:///{crm_sqlite}", "streams": {"accounts": ACCOUNTS}}
    everything = _read(config, "accounts", page_size=6)
    assert _ids(everything) == list(range(1, 21))
    assert [len(p.records) for p in everything] == [6, 6, 6, 2]
    assert everything[0].checkpoint == T0 + timedelta(hours=6)
    # Stored as '2024-03-01 22:00:00': a bound at exactly that second must include the row.
    since = T0 + timedelta(hours=10)
    assert _ids(_read(config, "accounts", since)) == list(range(10, 21))
    stream = PROVIDER.streams_for(config)["accounts"]
    typed = {r["id"]: stream.to_typed(r) for p in everything for r in p.records}
    assert typed[7].deleted
    assert not typed[8].deleted
    assert typed[3].name == "Company 3"
    assert typed[3].website == "company3.example"
    assert typed[3].updated_at == T0 + timedelta(hours=3)


def test_configured_query_is_wrapped_and_colons_and_percents_survive(crm_sqlite: Path) -> None:
    query = ("SELECT id, company_name || ':x' AS label, updated_at FROM companies "
             "WHERE site LIKE 'company1%';")
    config = {"url": f"sqlite:///{crm_sqlite}", "streams": {"product_usage": {
        "query": query, "primary_key": "id", "updated_at": "updated_at"}}}
    pages = _read(config, "product_usage", T0 + timedelta(hours=10))
    assert _ids(pages) == list(range(10, 20))
    assert pages[0].records[0]["label"] == "Company 10:x"


@pytest.mark.parametrize("query", [
    "DELETE FROM companies",
    "SELECT 1; DROP TABLE companies",
    "UPDATE companies SET site = NULL",
    "WITH d AS (DELETE FROM companies RETURNING *) SELECT * FROM d",
    "SELECT * INTO copy FROM companies",
    "SELECT * FROM companies FOR UPDATE",
    "ATTACH DATABASE 'x.db' AS x",
    "not sql at all (",
])
def test_write_queries_are_refused(query: str) -> None:
    with pytest.raises(ConfigError):
        PROVIDER.streams_for({"streams": {"accounts": {
            "query": query, "primary_key": "id", "updated_at": "updated_at"}}})


@pytest.mark.parametrize(("key", "value"), [
    ("table", "companies; DROP TABLE x"), ("table", "a.b.c"), ("primary_key", 'id" --'),
    ("updated_at", "updated at"),
])
def test_identifiers_are_checked(key: str, value: str) -> None:
    with pytest.raises(ConfigError):
        PROVIDER.streams_for({"streams": {"accounts": {**ACCOUNTS, key: value}}})


def test_a_mistyped_sqlite_path_fails_instead_of_creating_a_database(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    config = {"url": f"sqlite:///{missing}", "streams": {"accounts": ACCOUNTS}}
    with pytest.raises(ConfigError, match="unable to open"):
        _read(config, "accounts")
    assert not missing.exists()


def test_password_belongs_in_credentials() -> None:
    with pytest.raises(ConfigError, match="credentials"):
        PROVIDER.connect(ConnectionContext(
            "sql.acme", {"url": "postgresql://u:secret@db/x", "streams": {}},
            MemoryCredentialStore({}), HttpClient()))


# -- PostgreSQL ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def crm_pg(pg_admin_url: str) -> Iterator[tuple[str, Engine]]:
    """A customer database with a read-only login, a crm schema and a 200k-row table."""
    name = f"crm_{next(_dbs)}"
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
        conn.execute(text("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
                          "'reader') THEN CREATE ROLE reader LOGIN PASSWORD 's3cr3t-pw'; "
                          "END IF; END $$"))
    admin.dispose()
    url = pg_admin_url.rsplit("/", 1)[0] + f"/{name}"
    owner = create_engine(url)
    with owner.begin() as conn:
        # The customer's server runs in New York time; the column is naive local time.
        conn.execute(text(f"ALTER DATABASE \"{name}\" SET timezone = 'America/New_York'"))
        conn.execute(text("CREATE SCHEMA crm"))
        conn.execute(text(
            "CREATE TABLE crm.companies (id int PRIMARY KEY, company_name text, site text, "
            "updated_at timestamp NOT NULL, is_deleted boolean NOT NULL DEFAULT false)"))
        conn.execute(text(
            "INSERT INTO crm.companies SELECT g, 'Company ' || g, 'c' || g || '.example', "
            "timestamp '2024-03-01 12:00:00' + g * interval '1 second', g % 97 = 0 "
            "FROM generate_series(1, 20) g"))
        conn.execute(text(
            "CREATE TABLE crm.events (id bigint PRIMARY KEY, payload text, "
            "updated_at timestamptz NOT NULL)"))
        conn.execute(text(
            "INSERT INTO crm.events SELECT g, repeat(md5(g::text), 16), "
            "timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' "
            "FROM generate_series(1, 200000) g"))
        conn.execute(text("CREATE INDEX ON crm.events (updated_at, id)"))
        conn.execute(text("CREATE SEQUENCE crm.ids"))
        conn.execute(text("GRANT USAGE ON SCHEMA crm TO reader"))
        conn.execute(text("GRANT SELECT ON ALL TABLES IN SCHEMA crm TO reader"))
        conn.execute(text("GRANT USAGE, UPDATE ON SEQUENCE crm.ids TO reader"))
    reader_url = url.split("//", 1)[0] + "//reader@" + url.split("@", 1)[1]
    yield reader_url, owner
    owner.dispose()


def _pg_config(url: str, **streams: Any) -> dict[str, Any]:
    return {"url": url, "timezone": "America/New_York", "streams": streams}


PG_ACCOUNTS = {"table": "crm.companies", "primary_key": "id", "updated_at": "updated_at",
               "deleted": "is_deleted", "fields": {"name": "company_name", "website": "site"}}
CREDS = {"password": "s3cr3t-pw"}


def test_postgres_naive_local_timestamps_and_closed_bound(crm_pg: tuple[str, Engine]) -> None:
    url, _ = crm_pg
    config = _pg_config(url, accounts=PG_ACCOUNTS)
    pages = _read(config, "accounts", creds=CREDS)
    assert _ids(pages) == list(range(1, 21))
    # 12:00:05 in New York is 17:00:05 UTC (EST, UTC-5, on 1 March).
    row5 = next(r for p in pages for r in p.records if r["id"] == 5)
    assert row5["updated_at"] == "2024-03-01T17:00:05Z"
    since = datetime(2024, 3, 1, 17, 0, 5, tzinfo=UTC)
    assert _ids(_read(config, "accounts", since, creds=CREDS)) == list(range(5, 21))


def test_postgres_query_runs_in_a_read_only_transaction(crm_pg: tuple[str, Engine]) -> None:
    url, _ = crm_pg
    # Passes the SELECT check, but nextval() writes: the read-only transaction refuses it.
    config = _pg_config(url, accounts={
        "query": "SELECT id, updated_at, nextval('crm.ids') AS n FROM crm.companies",
        "primary_key": "id", "updated_at": "updated_at"})
    with pytest.raises(ConfigError, match="read-only"):
        _read(config, "accounts", creds=CREDS)


def test_postgres_query_with_casts_and_duplicate_keys(crm_pg: tuple[str, Engine]) -> None:
    url, _ = crm_pg
    config = _pg_config(url, accounts={
        "query": "SELECT c.id, c.updated_at, c.updated_at::date AS day, s.tag FROM "
                 "crm.companies c CROSS JOIN (VALUES ('a'), ('b')) AS s(tag) "
                 "WHERE c.site LIKE 'c1%'",
        "primary_key": "id", "updated_at": "updated_at"})
    pages = _read(config, "accounts", creds=CREDS)
    ids = _ids(pages)
    # Each id appears twice in the result; a page keeps one (PostgreSQL's ON CONFLICT
    # refuses to touch a row twice in one statement).
    assert sorted(ids) == sorted(set(ids))
    assert pages[0].records[0]["day"] == "2024-03-01"


def test_refused_login_is_an_auth_error_without_the_password() -> None:
    # The throwaway server trusts local logins, so the driver's refusal is replayed here.
    refused = OperationalError("connect", None, Exception(
        'FATAL:  password authentication failed for user "reader" (tried s3cr3t-pw)'))
    error = classify_db_error(refused, "postgresql://reader@db/crm", "s3cr3t-pw")
    assert isinstance(error, AuthError)
    assert "s3cr3t-pw" not in str(error)


def test_postgres_unknown_table_is_a_config_error(crm_pg: tuple[str, Engine]) -> None:
    url, _ = crm_pg
    config = _pg_config(url, accounts={**PG_ACCOUNTS, "table": "crm.nope"})
    with pytest.raises(ConfigError, match="does not exist"):
        _read(config, "accounts", creds=CREDS)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        import os

        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_postgres_200k_rows_stream_with_flat_memory(crm_pg: tuple[str, Engine]) -> None:
    url, _ = crm_pg
    config = _pg_config(url, product_usage={"table": "crm.events", "primary_key": "id",
                                            "updated_at": "updated_at"})
    ctx = ConnectionContext("sql.acme", config, MemoryCredentialStore(CREDS), HttpClient(),
                            page_size=2000)
    stream = PROVIDER.streams_for(config)["product_usage"]
    baseline = _rss_bytes()
    rss_peak, count, pages, last = 0, 0, 0, None
    tracemalloc.start()
    try:
        for page in PROVIDER.connect(ctx).read_changes(stream, None):
            count += len(page.records)
            pages += 1
            last = page.checkpoint
            rss_peak = max(rss_peak, _rss_bytes() - baseline)
        _, traced_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 200_000
    assert pages == 100
    assert last == datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=200_000)
    # The table holds ~110 MB of rows (512-byte payloads); one page is ~1.2 MB of Python
    # objects. A client-side cursor would hold every row (in libpq's C memory, which
    # tracemalloc cannot see: hence the RSS check too).
    assert traced_peak < 20 * 1024 * 1024
    assert rss_peak < 60 * 1024 * 1024


# -- a custom interaction type, end to end -----------------------------------------------

def test_custom_type_from_a_sql_table_syncs_end_to_end(sqlite_engine: Engine,
                                                      crm_sqlite: Path) -> None:
    assert "sql" in PROVIDERS
    add_customer(sqlite_engine, Customer(id="acme", name="Acme"))
    config = {"url": f"sqlite:///{crm_sqlite}", "streams": {
        "accounts": ACCOUNTS,
        "product_usage": {"table": "usage", "primary_key": "id", "updated_at": "updated_at",
                          "fields": {"account_ref": "company_id"}}}}
    add_integration(sqlite_engine, Integration(id="sql.acme", customer_id="acme",
                                               provider="sql", config=config), {})
    accounts = sync_object(sqlite_engine, "sql.acme", "accounts")
    assert accounts.retrieved.records_fetched == 20
    usage = sync_object(sqlite_engine, "sql.acme", "product_usage")
    assert usage.retrieved.records_fetched == 20
    assert usage.processed.processed == 20
    # Every usage row points at a live company; company 7 is soft-deleted.
    assert usage.processed.linked == 19
    with sqlite_engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(interactions).where(
            interactions.c.interaction_type == "product_usage")).scalar_one()
        linked_accounts = conn.execute(select(func.count()).select_from(account_links))
        obj = state.get_object(conn, "sql.acme", "product_usage")
    assert stored == 20
    # 19 live companies linked to their Accounts, and 19 usage rows linked to those.
    assert linked_accounts.scalar_one() == 19 + 19
    assert obj is not None
    assert obj.cursor == T0 + timedelta(minutes=20)
    # A second sync re-reads only the boundary (lookback) and processes nothing again.
    again = sync_object(sqlite_engine, "sql.acme", "product_usage")
    assert again.processed.processed == 0


def test_full_read_reconciles_hard_deleted_rows(sqlite_engine: Engine, crm_sqlite: Path) -> None:
    """A row deleted outright (no soft-delete flag) is only noticed by a complete full read:
    what it does not see is marked deleted. Incremental syncs and partial reads never do."""
    add_customer(sqlite_engine, Customer(id="acme", name="Acme"))
    config = {"url": f"sqlite:///{crm_sqlite}", "streams": {"accounts": ACCOUNTS}}
    add_integration(sqlite_engine, Integration(id="sql.acme", customer_id="acme",
                                               provider="sql", config=config), {})
    sync_object(sqlite_engine, "sql.acme", "accounts")
    with sqlite3.connect(crm_sqlite) as db:
        db.execute("DELETE FROM companies WHERE id IN (3, 4)")

    def deleted() -> set[str]:
        with sqlite_engine.connect() as conn:
            return set(conn.execute(select(interactions.c.external_id).where(
                interactions.c.interaction_type == "accounts",
                interactions.c.deleted_at.is_not(None))).scalars())

    incremental = sync_object(sqlite_engine, "sql.acme", "accounts")
    assert incremental.retrieved.reconciled_deleted == 0
    assert deleted() == {"7"}  # only the soft-deleted one
    windowed = sync_object(sqlite_engine, "sql.acme", "accounts", since="2024-03-01")
    assert windowed.retrieved.reconciled_deleted == 0  # a history window proves nothing
    full = sync_object(sqlite_engine, "sql.acme", "accounts", full=True)
    assert full.retrieved.reconciled_deleted == 2
    assert deleted() == {"3", "4", "7"}
    again = sync_object(sqlite_engine, "sql.acme", "accounts", full=True)
    assert again.retrieved.reconciled_deleted == 0
