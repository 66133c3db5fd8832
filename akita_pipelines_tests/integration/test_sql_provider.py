"""The SQL provider against real databases: SQLite and DuckDB files, throwaway PostgreSQL and
MariaDB servers. The conformance part runs every engine through the same tests."""

from __future__ import annotations

import gc
import os
import sqlite3
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.exc import OperationalError

from akita_pipelines.core.errors import AuthError, ConfigError, TransientError
from akita_pipelines.core.types import Customer, Integration
from akita_pipelines.db import state
from akita_pipelines.db.schema import account_links, interactions, staged_records
from akita_pipelines.onboarding import add_customer, add_integration
from akita_pipelines.providers.auth import MemoryCredentialStore
from akita_pipelines.providers.base import ConnectionContext, Page
from akita_pipelines.providers.http import HttpClient
from akita_pipelines.providers.registry import PROVIDERS
from akita_pipelines.providers.sql import PROVIDER
from akita_pipelines.providers.sql.connector import classify_db_error
from akita_pipelines.sync.service import sync_object
from akita_pipelines_tests.integration.sql_customers import (
    ENGINES,
    PASSWORD,
    SERVERS,
    WALL0,
    ZONE,
    CustomerDb,
    new_customer_db,
)

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


# -- the same conformance on every engine --------------------------------------------------

@pytest.fixture(params=ENGINES)
def customer(request: pytest.FixtureRequest, tmp_path: Path) -> CustomerDb:
    """A fresh customer CRM on SQLite, PostgreSQL, MariaDB and DuckDB in turn."""
    db = new_customer_db(str(request.param), request, tmp_path)
    db.create_crm()
    return db


def _accounts(db: CustomerDb) -> dict[str, Any]:
    return {"table": db.table("companies"), "primary_key": "id", "updated_at": "updated_at",
            "deleted": "is_deleted", "fields": {"name": "company_name", "website": "site"}}


def _usage(db: CustomerDb) -> dict[str, Any]:
    return {"table": db.table("usage"), "primary_key": "id", "updated_at": "updated_at",
            "fields": {"account_ref": "company_id"}}


def _utc(wall: datetime) -> datetime:
    return wall.replace(tzinfo=ZoneInfo(ZONE)).astimezone(UTC)


def test_incremental_read_is_ordered_paged_and_has_a_closed_lower_bound(
        customer: CustomerDb) -> None:
    config = customer.config(accounts=_accounts(customer))
    pages = _read(config, "accounts", creds=customer.credentials, page_size=6)
    assert _ids(pages) == list(range(1, 21))
    assert [len(p.records) for p in pages] == [6, 6, 6, 2]
    # Naive New York wall-clock times, read in the configured zone: 12:00:06 is 17:00:06 UTC.
    assert pages[0].checkpoint == _utc(WALL0 + timedelta(seconds=6))
    row5 = next(r for p in pages for r in p.records if r["id"] == 5)
    assert row5["updated_at"] == "2024-03-01T17:00:05Z"
    # A bound at exactly a stored second includes that row.
    since = _utc(WALL0 + timedelta(seconds=10))
    assert _ids(_read(config, "accounts", since, creds=customer.credentials)) == \
        list(range(10, 21))
    stream = PROVIDER.streams_for(config)["accounts"]
    typed = {r["id"]: stream.to_typed(r) for p in pages for r in p.records}
    assert typed[7].deleted
    assert not typed[8].deleted
    assert typed[3].name == "Company 3"
    assert typed[3].website == "c3.example"
    assert typed[3].updated_at == _utc(WALL0 + timedelta(seconds=3))


def test_configured_query_keeps_colons_and_percents(customer: CustomerDb) -> None:
    query = (f"SELECT id, updated_at, 'a:b' AS tag, company_name FROM "
             f"{customer.table('companies')} WHERE site LIKE 'c1%';")
    config = customer.config(product_usage={"query": query, "primary_key": "id",
                                            "updated_at": "updated_at"})
    pages = _read(config, "product_usage", _utc(WALL0 + timedelta(seconds=10)),
                  creds=customer.credentials)
    assert _ids(pages) == list(range(10, 20))
    assert pages[0].records[0]["tag"] == "a:b"


def test_unknown_table_is_a_config_error_naming_it(customer: CustomerDb) -> None:
    config = customer.config(accounts={**_accounts(customer),
                                       "table": customer.table("nope")})
    with pytest.raises(ConfigError, match="nope"):
        _read(config, "accounts", creds=customer.credentials)


def _register(engine: Engine, db: CustomerDb, streams: dict[str, Any],
              settings: dict[str, Any] | None = None) -> None:
    add_customer(engine, Customer(id="acme", name="Acme"))
    add_integration(engine, Integration(id="sql.acme", customer_id="acme", provider="sql",
                                        config=db.config(**streams), settings=settings or {}),
                    db.credentials)


def _stored(engine: Engine, kind: str, *, deleted: bool = False) -> list[str]:
    query = select(interactions.c.external_id).where(
        interactions.c.interaction_type == kind)
    if deleted:
        query = query.where(interactions.c.deleted_at.is_not(None))
    with engine.connect() as conn:
        return sorted(conn.execute(query).scalars())


def test_custom_type_syncs_end_to_end(sqlite_engine: Engine, customer: CustomerDb) -> None:
    assert "sql" in PROVIDERS
    _register(sqlite_engine, customer, {"accounts": _accounts(customer),
                                        "product_usage": _usage(customer)})
    accounts = sync_object(sqlite_engine, "sql.acme", "accounts")
    assert accounts.retrieved.records_fetched == 20
    usage = sync_object(sqlite_engine, "sql.acme", "product_usage")
    assert usage.retrieved.records_fetched == 20
    assert usage.processed.processed == 20
    # Every usage row points at a live company; company 7 is soft-deleted.
    assert usage.processed.linked == 19
    with sqlite_engine.connect() as conn:
        linked_accounts = conn.execute(select(func.count()).select_from(account_links))
        obj = state.get_object(conn, "sql.acme", "product_usage")
    assert len(_stored(sqlite_engine, "product_usage")) == 20
    # 19 live companies linked to their Accounts, and 19 usage rows linked to those.
    assert linked_accounts.scalar_one() == 19 + 19
    assert obj is not None
    assert obj.cursor == _utc(WALL0 + timedelta(minutes=20))
    # A second sync re-reads only the boundary (lookback) and processes nothing again.
    again = sync_object(sqlite_engine, "sql.acme", "product_usage")
    assert again.processed.processed == 0


def test_rows_written_in_the_cursors_own_second_are_not_lost(sqlite_engine: Engine,
                                                            customer: CustomerDb) -> None:
    """Second-precision columns (MySQL's default DATETIME, text stamps) give many rows one
    value; a row written after a sync but stamped with the cursor's second must still come,
    even without a lookback window: the lower bound is closed."""
    _register(sqlite_engine, customer, {"accounts": _accounts(customer)},
              settings={"lookback_seconds": 0})
    sync_object(sqlite_engine, "sql.acme", "accounts")
    last = WALL0 + timedelta(seconds=20)
    customer.execute(f"INSERT INTO {customer.table('companies')} VALUES "
                     "(:id, :name, :site, :at, :deleted)", [
                         {"id": i, "name": f"Late {i}", "site": f"late{i}.example",
                          "at": customer.stamp(last), "deleted": False} for i in (21, 22)])
    again = sync_object(sqlite_engine, "sql.acme", "accounts")
    assert again.processed.processed == 2  # row 20 comes again, unchanged: not reprocessed
    assert _stored(sqlite_engine, "accounts") == sorted(str(i) for i in range(1, 23))


def test_deletions_soft_flag_and_full_read_reconciliation(sqlite_engine: Engine,
                                                         customer: CustomerDb) -> None:
    """A soft-deleted row (flag) is marked deleted by any sync; a row deleted outright is only
    noticed by a complete full read: what it does not see is marked deleted. Incremental syncs
    and partial reads never do."""
    _register(sqlite_engine, customer, {"accounts": _accounts(customer)})
    sync_object(sqlite_engine, "sql.acme", "accounts")
    assert _stored(sqlite_engine, "accounts", deleted=True) == ["7"]
    customer.execute(f"DELETE FROM {customer.table('companies')} WHERE id IN (3, 4)")
    incremental = sync_object(sqlite_engine, "sql.acme", "accounts")
    assert incremental.retrieved.reconciled_deleted == 0
    assert _stored(sqlite_engine, "accounts", deleted=True) == ["7"]
    windowed = sync_object(sqlite_engine, "sql.acme", "accounts", since="2024-03-01")
    assert windowed.retrieved.reconciled_deleted == 0  # a history window proves nothing
    full = sync_object(sqlite_engine, "sql.acme", "accounts", full=True)
    assert full.retrieved.reconciled_deleted == 2
    assert _stored(sqlite_engine, "accounts", deleted=True) == ["3", "4", "7"]
    again = sync_object(sqlite_engine, "sql.acme", "accounts", full=True)
    assert again.retrieved.reconciled_deleted == 0


#: A SELECT that passes the SELECT-only check but writes; the read-only transaction (or, on
#: DuckDB, the read-only open) must refuse it. SQLite has no SELECT that writes.
_WRITING_SELECT = {  # setup, the query, how to see whether it wrote
    "postgres": (["CREATE SEQUENCE crm.ids", "GRANT USAGE, UPDATE ON SEQUENCE crm.ids TO reader"],
                 "SELECT id, updated_at, nextval('crm.ids') AS n FROM crm.companies",
                 "SELECT nextval('crm.ids')"),
    "mariadb": (["CREATE TABLE audit (n INTEGER)",
                 "CREATE FUNCTION bump() RETURNS INTEGER MODIFIES SQL DATA "
                 "BEGIN INSERT INTO audit VALUES (1); RETURN 1; END"],
                "SELECT id, updated_at, bump() AS n FROM companies",
                "SELECT COUNT(*) + 1 FROM audit"),
    "duckdb": (["CREATE SEQUENCE crm.ids"],
               "SELECT id, updated_at, nextval('crm.ids') AS n FROM crm.companies",
               "SELECT nextval('crm.ids')"),
}


@pytest.mark.parametrize("kind", [pytest.param("postgres", marks=pytest.mark.postgres),
                                  "mariadb", "duckdb"])
def test_a_select_that_writes_is_refused_and_writes_nothing(
        kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    db = new_customer_db(kind, request, tmp_path)
    db.create_crm()
    setup, query, written = _WRITING_SELECT[kind]
    for statement in setup:
        db.execute(statement)
    config = db.config(accounts={"query": query, "primary_key": "id",
                                 "updated_at": "updated_at"})
    with pytest.raises(ConfigError, match="(?i)read.only"):
        _read(config, "accounts", creds=db.credentials)
    # Nothing moved: the sequence's first value is still to come, the audit table is empty.
    assert db.scalar(written) == 1


# -- servers: refused logins and connections killed mid-read -------------------------------

def test_refused_login_is_an_auth_error_without_the_password() -> None:
    # The throwaway PostgreSQL trusts local logins, so the driver's refusal is replayed here
    # (MariaDB refuses for real below).
    refused = OperationalError("connect", None, Exception(
        'FATAL:  password authentication failed for user "reader" (tried s3cr3t-pw)'))
    error = classify_db_error(refused, "postgresql://reader@db/crm", "s3cr3t-pw")
    assert isinstance(error, AuthError)
    assert "s3cr3t-pw" not in str(error)


def test_mariadb_wrong_password_says_what_to_fix_and_hides_it(
        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    db = new_customer_db("mariadb", request, tmp_path)
    db.create_crm()
    config = db.config(accounts=_accounts(db))
    with pytest.raises(AuthError) as refused:
        _read(config, "accounts", creds={"password": "wrong-Pa55word"})
    message = str(refused.value)
    assert "Access denied for user 'reader'" in message
    assert "password in the integration's credentials" in message
    assert "wrong-Pa55word" not in message
    assert PASSWORD not in message
    unknown = db.config(accounts=_accounts(db))
    unknown["url"] = db.url.rsplit("/", 1)[0] + "/no_such_db"
    with pytest.raises(ConfigError, match="no_such_db"):
        _read(unknown, "accounts", creds=db.credentials)


def _kill_readers(db: CustomerDb) -> int:
    """Kill, from the server's side, every connection of the read-only login."""
    if db.kind == "postgres":
        return int(db.scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                             "WHERE usename = 'reader'"))
    ids = [int(conn_id) for (conn_id,) in db.rows(
        "SELECT id FROM information_schema.processlist WHERE user = 'reader'")]
    for conn_id in ids:
        db.execute(f"KILL CONNECTION {conn_id}")
    return len(ids)


_SLEEPY = {"postgres": "SELECT id, updated_at, pg_sleep(1)::text AS s FROM crm.companies",
           "mariadb": "SELECT id, updated_at, SLEEP(1) AS s FROM companies"}


@pytest.mark.parametrize("kind", SERVERS)
def test_statement_timeout_ends_a_slow_read_as_transient(
        kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    db = new_customer_db(kind, request, tmp_path)
    db.create_crm()
    config = {**db.config(accounts={"query": _SLEEPY[kind], "primary_key": "id",
                                    "updated_at": "updated_at"}),
              "statement_timeout_seconds": 0.5}
    with pytest.raises(TransientError, match="(?i)timeout|max_statement_time"):
        _read(config, "accounts", creds=db.credentials)


#: Large enough that the rows still in flight after a kill (socket buffers) are a small part.
FEED_ROWS = 20_000
_FEED = {
    "postgres": "INSERT INTO crm.feed SELECT g, repeat(md5(g::text), 32), "
                "timestamp '2024-03-01 12:00:00' + g * interval '1 second' "
                "FROM generate_series(1, {n}) g",
    "mariadb": "INSERT INTO feed SELECT seq, REPEAT(MD5(seq), 32), "
               "TIMESTAMP '2024-03-01 12:00:00' + INTERVAL seq SECOND FROM seq_1_to_{n}",
}


@pytest.mark.parametrize("kind", SERVERS)
def test_connection_killed_mid_read_fails_cleanly_and_the_next_sync_resumes(
        kind: str, request: pytest.FixtureRequest, tmp_path: Path, sqlite_engine: Engine,
        monkeypatch: pytest.MonkeyPatch) -> None:
    db = new_customer_db(kind, request, tmp_path)
    db.execute(f"CREATE TABLE {db.table('feed')} (id INTEGER PRIMARY KEY, payload TEXT, "
               f"updated_at {'timestamp' if kind == 'postgres' else 'DATETIME'} NOT NULL)")
    db.execute(_FEED[kind].format(n=FEED_ROWS))
    _register(sqlite_engine, db, {"product_usage": {
        "table": db.table("feed"), "primary_key": "id", "updated_at": "updated_at"}},
        settings={"lookback_seconds": 0, "page_size": 200})
    stage_page = state.stage_page
    killed: list[int] = []

    def stage_then_kill(*args: Any, **kwargs: Any) -> Any:
        staged = stage_page(*args, **kwargs)
        if not killed:
            killed.append(_kill_readers(db))
        return staged

    monkeypatch.setattr(state, "stage_page", stage_then_kill)
    with pytest.raises(TransientError, match="connection lost|Lost connection|killed|terminat"):
        sync_object(sqlite_engine, "sql.acme", "product_usage")
    monkeypatch.undo()
    assert killed == [1]
    with sqlite_engine.connect() as conn:
        obj = state.get_object(conn, "sql.acme", "product_usage")
        staged = conn.execute(select(func.count()).select_from(staged_records)).scalar_one()
    assert obj is not None
    assert obj.cursor is None  # nothing committed: the failed sync processed nothing
    # The checkpoint is the last staged row's stamp (rows are 1 s apart, ids from 1).
    assert 200 <= staged < FEED_ROWS
    assert obj.checkpoint == _utc(WALL0 + timedelta(seconds=staged))
    resumed = sync_object(sqlite_engine, "sql.acme", "product_usage")
    # From the checkpoint on, closed bound: the checkpoint's own row comes again.
    assert resumed.retrieved.records_fetched == FEED_ROWS - staged + 1
    assert resumed.processed.processed == FEED_ROWS
    assert len(_stored(sqlite_engine, "product_usage")) == FEED_ROWS


# -- streaming a large table ---------------------------------------------------------------

BIG_ROWS = 200_000
_BIG = {
    "postgres": "INSERT INTO crm.events SELECT g, repeat(md5(g::text), 16), "
                "timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' "
                "FROM generate_series(1, {n}) g",
    # FROM_UNIXTIME answers in the session's zone, which the TIMESTAMP column converts back:
    # the stored instant is exact whatever the server's zone.
    "mariadb": "INSERT INTO events SELECT seq, REPEAT(MD5(seq), 16), "
               "FROM_UNIXTIME(1704067200 + seq) FROM seq_1_to_{n}",
    "duckdb": "INSERT INTO crm.events SELECT g, repeat(md5(g::VARCHAR), 16), "
              "TIMESTAMPTZ '2024-01-01 00:00:00+00' + g * INTERVAL 1 SECOND "
              "FROM range(1, {n} + 1) r(g)",
}
_BIG_STAMP = {"postgres": "timestamptz", "mariadb": "TIMESTAMP", "duckdb": "TIMESTAMPTZ"}


#: 2024-01-01T00:00:00Z, the first event's second.
EVENTS0 = datetime(2024, 1, 1, tzinfo=UTC)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class BigTables:
    """One 200k-row customer table per engine, made on first use and kept for the module."""

    def __init__(self, tmp: pytest.TempPathFactory) -> None:
        self.tmp = tmp
        self.made: dict[str, CustomerDb] = {}

    def get(self, kind: str, request: pytest.FixtureRequest) -> CustomerDb:
        if kind not in self.made:
            db = new_customer_db(kind, request, self.tmp.mktemp(kind))
            db.execute(f"CREATE TABLE {db.table('events')} (id BIGINT PRIMARY KEY, "
                       f"payload TEXT, updated_at {_BIG_STAMP[kind]} NOT NULL)")
            db.execute(_BIG[kind].format(n=BIG_ROWS))
            self.made[kind] = db
        return self.made[kind]


@pytest.fixture(scope="module")
def big_tables(tmp_path_factory: pytest.TempPathFactory) -> BigTables:
    return BigTables(tmp_path_factory)


def _events_config(db: CustomerDb) -> dict[str, Any]:
    return db.config(product_usage={"table": db.table("events"), "primary_key": "id",
                                    "updated_at": "updated_at"})


@pytest.mark.parametrize("kind", [pytest.param("postgres", marks=pytest.mark.postgres),
                                  "mariadb", "duckdb"])
def test_200k_rows_stream_a_page_at_a_time(kind: str, request: pytest.FixtureRequest,
                                          big_tables: BigTables) -> None:
    db = big_tables.get(kind, request)
    config = _events_config(db)
    ctx = ConnectionContext("sql.acme", config, MemoryCredentialStore(db.credentials),
                            HttpClient(), page_size=2000)
    stream = PROVIDER.streams_for(config)["product_usage"]
    cursors: list[Any] = []

    def note_cursor(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        if "events" in statement:
            cursors.append(cursor)

    event.listen(Engine, "before_cursor_execute", note_cursor)
    # tracemalloc sees the Python objects a buffered result would hold; it slows a pure-Python
    # driver eightfold, so it watches psycopg2 (whose buffer, in libpq, only RSS sees) alone.
    traced = kind == "postgres"
    baseline = _rss_bytes()
    rss_peak, count, pages, last = 0, 0, 0, None
    if traced:
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
        event.remove(Engine, "before_cursor_execute", note_cursor)
    assert count == BIG_ROWS
    assert pages == BIG_ROWS // 2000
    assert last == EVENTS0 + timedelta(seconds=BIG_ROWS)
    read = cursors[-1]
    if kind == "duckdb":
        # DuckDB's Python client has no streaming cursor (stream_results is ignored): the whole
        # result sits in DuckDB's own memory, about the table's size, while Python holds one
        # page. Paging, order and checkpoints are what this proves there.
        assert type(read).__module__.startswith("duckdb_engine")
        return
    if kind == "postgres":
        assert read.name  # a named (server-side) cursor
        # One page is ~1.2 MB of Python objects; the table ~110 MB.
        assert traced_peak < 20 * 1024 * 1024
    else:
        import pymysql.cursors

        assert isinstance(read, pymysql.cursors.SSCursor)  # unbuffered: rows read as asked
    # A client-side cursor would hold every row in the driver (for psycopg2 in libpq's C
    # memory, which tracemalloc cannot see: hence RSS).
    assert rss_peak < 60 * 1024 * 1024


def test_mariadb_a_read_stopped_early_does_not_drain_the_table(
        request: pytest.FixtureRequest, big_tables: BigTables,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The MySQL protocol cannot cancel a result: PyMySQL closes a streaming cursor by reading
    every remaining row. A sync that stops on its first page (a bad row, a crash in staging)
    must not read the other 198,000 rows of the table first."""
    import pymysql.connections

    db = big_tables.get("mariadb", request)
    config = _events_config(db)
    packets = 0
    read_packet = pymysql.connections.Connection._read_packet

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal packets
        packets += 1
        return read_packet(self, *args, **kwargs)

    monkeypatch.setattr(pymysql.connections.Connection, "_read_packet", counted)
    ctx = ConnectionContext("sql.acme", config, MemoryCredentialStore(db.credentials),
                            HttpClient(), page_size=2000)
    pages = PROVIDER.connect(ctx).read_changes(PROVIDER.streams_for(config)["product_usage"],
                                               None)
    first = next(pages)
    pages.close()
    gc.collect()  # the driver's cursor is finalised here, not in some later test
    assert len(first.records) == 2000
    # One packet a row, plus the handshake, the session set-up and the column definitions.
    assert packets < 2000 + 100


# -- engine-specific traps -----------------------------------------------------------------

@pytest.mark.postgres
def test_postgres_query_with_casts_and_duplicate_keys(request: pytest.FixtureRequest,
                                                      tmp_path: Path) -> None:
    db = new_customer_db("postgres", request, tmp_path)
    db.create_crm()
    config = db.config(accounts={
        "query": "SELECT c.id, c.updated_at, c.updated_at::date AS day, s.tag FROM "
                 "crm.companies c CROSS JOIN (VALUES ('a'), ('b')) AS s(tag) "
                 "WHERE c.site LIKE 'c1%'",
        "primary_key": "id", "updated_at": "updated_at"})
    pages = _read(config, "accounts", creds=db.credentials)
    ids = _ids(pages)
    # Each id appears twice in the result; a page keeps one (PostgreSQL's ON CONFLICT
    # refuses to touch a row twice in one statement).
    assert sorted(ids) == sorted(set(ids))
    assert pages[0].records[0]["day"] == "2024-03-01"


def test_mariadb_timestamp_datetime_precision_and_zero_dates(
        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """One moment (17:00:05.123456 UTC) stored three ways. The server runs at +09:00 and the
    customer's DATETIMEs are New York wall-clock time:

    - ``dt0 DATETIME``: MariaDB drops the fraction (MySQL would round it);
    - ``dt6 DATETIME(6)``: microseconds kept, so the bound must keep them too;
    - ``ts TIMESTAMP(6)``: stored in UTC, shown in the session zone (the connector's: UTC).
    """
    db = new_customer_db("mariadb", request, tmp_path)
    db.execute("CREATE TABLE moments (id INTEGER PRIMARY KEY, dt0 DATETIME NULL, "
               "dt6 DATETIME(6), ts TIMESTAMP(6) NULL)")
    # The application writes from a session at +09:00: 02:00:05 the next day there.
    db.execute("SET time_zone = '+09:00'")
    db.execute("INSERT INTO moments VALUES (1, '2024-03-01 12:00:05.123456', "
               "'2024-03-01 12:00:05.123456', '2024-03-02 02:00:05.123456'), "
               "(2, '0000-00-00 00:00:00', '2024-03-01 12:00:06', NULL)")
    moment = datetime(2024, 3, 1, 17, 0, 5, 123456, tzinfo=UTC)

    def read(cursor: str, since: datetime | None = None) -> list[Page]:
        config = db.config(accounts={"table": "moments", "primary_key": "id",
                                     "updated_at": cursor})
        return _read(config, "accounts", since, creds=db.credentials)

    def stamp(pages: list[Page], row: int) -> Any:
        return next(r for p in pages for r in p.records if r["id"] == row)

    assert stamp(read("ts"), 1)["ts"] == "2024-03-01T17:00:05.123456Z"
    assert stamp(read("dt6"), 1)["dt6"] == "2024-03-01T17:00:05.123456Z"
    assert stamp(read("dt0"), 1)["dt0"] == "2024-03-01T17:00:05Z"
    for cursor in ("ts", "dt6"):
        assert 1 in _ids(read(cursor, moment)), cursor  # closed, to the microsecond
        assert 1 not in _ids(read(cursor, moment + timedelta(microseconds=1))), cursor
    assert 1 in _ids(read("dt0", moment.replace(microsecond=0)))
    # A zero date is MySQL's "no date": read as NULL, so by full reads only, never an error.
    full = read("dt0")
    assert stamp(full, 2)["dt0"] is None
    assert 2 not in _ids(read("dt0", moment - timedelta(days=365)))


def test_duckdb_missing_file_fails_instead_of_creating_one(tmp_path: Path) -> None:
    missing = tmp_path / "nope.duckdb"
    config = {"url": f"duckdb:///{missing}", "streams": {"accounts": ACCOUNTS}}
    with pytest.raises(ConfigError, match="does not exist"):
        _read(config, "accounts")
    assert not missing.exists()


def test_duckdb_timestamptz_cursor_is_an_instant_whatever_the_zone(
        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The session TimeZone is the integration's (New York): a TIMESTAMPTZ column still reads
    and compares as the instant it holds."""
    db = new_customer_db("duckdb", request, tmp_path)
    db.execute("CREATE TABLE crm.stamps (id INTEGER PRIMARY KEY, updated_at TIMESTAMPTZ)")
    db.execute("INSERT INTO crm.stamps SELECT g, TIMESTAMPTZ '2024-03-01 17:00:00+00' "
               "+ g * INTERVAL 1 SECOND FROM range(1, 11) r(g)")
    config = db.config(accounts={"table": "crm.stamps", "primary_key": "id",
                                 "updated_at": "updated_at"})
    since = datetime(2024, 3, 1, 17, 0, 7, tzinfo=UTC)
    pages = _read(config, "accounts", since)
    assert _ids(pages) == [7, 8, 9, 10]
    assert pages[0].records[0]["updated_at"] == "2024-03-01T17:00:07Z"


def test_missing_mariadb_binaries_fail_the_fixture_saying_what_to_run() -> None:
    from akita_pipelines_tests.mariadb import _bin

    with pytest.raises(RuntimeError, match="make system-deps"):
        _bin("mariadbd-that-is-not-installed")
