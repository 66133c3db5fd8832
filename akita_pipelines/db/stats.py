"""Planner statistics after bulk writes (PostgreSQL).

A customer's first sync writes tens of thousands of match keys, interactions and links within
a minute, before autovacuum has analysed anything. With statistics that still say "empty", the
planner reads ``match_keys`` by its (customer, kind) prefix and filters every key of the
customer instead of seeking the keys it was given, and a look-up of one contact's keys becomes a
scan that grows with the customer. So after a batch that changed a table by a fifth or more,
the processor analyses it, outside the batch's transaction (ANALYZE samples ~30k rows whatever
the size, and its lock conflicts only with other ANALYZE / VACUUM runs of the same table).
The scheduler sensor does the same, each tick, for the tables its due query reads.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

log = logging.getLogger(__name__)

#: Tables the processor looks up by key while it writes them (and the staged rows it reads a
#: batch at a time: a first sync stages them all before the first batch is read).
PROCESSOR_TABLES = ("match_keys", "interactions", "accounts", "contacts", "account_links",
                    "contact_links", "staged_records")
#: Tables the scheduler's due query reads every tick. Onboarding many tenants at once inserts
#: their objects faster than autovacuum analyses them, and until it does the planner plans the
#: due query for the near-empty table its statistics describe.
SCHEDULER_TABLES = ("integration_objects", "integrations")
#: Analyse when rows changed since the last analyse exceed this share of the estimated rows …
STALE_SHARE = 0.2
#: … and this many rows (small tables are cheap to read whatever the plan).
MIN_CHANGED = 2000


def analyze_stale(engine: Engine, tables: Sequence[str] = PROCESSOR_TABLES) -> list[str]:
    """ANALYZE the ``tables`` whose statistics bulk writes have outdated; returns their names.
    A no-op on SQLite (its planner uses the indexes without statistics)."""
    if engine.dialect.name != "postgresql":
        return []
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT s.relname, s.n_mod_since_analyze, greatest(c.reltuples, 0) "
            "FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
            "WHERE s.schemaname = current_schema() AND s.relname = ANY(:tables)"),
            {"tables": list(tables)}).all()
    stale = sorted(name for name, changed, estimated in rows
                   if changed >= MIN_CHANGED and changed >= STALE_SHARE * estimated)
    if stale:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for name in stale:
                conn.execute(text(f'ANALYZE "{name}"'))  # names from PROCESSOR_TABLES
        log.debug("analysed %s after bulk writes", ", ".join(stale))
    return stale


def checkpoint_wal(engine: Engine) -> None:
    """Fold SQLite's write-ahead log back into the database file after a large sync.

    The engine lets the WAL grow to ~40 MB between automatic checkpoints (see
    :mod:`akita_pipelines.db.engine`); a sync that wrote tens of thousands of rows pays for
    its checkpoint itself instead of leaving it to the next writer. PASSIVE: it never waits
    for readers. A no-op on PostgreSQL.
    """
    if engine.dialect.name != "sqlite":
        return
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
    except OperationalError as exc:  # housekeeping: the sync it follows has committed
        log.warning("WAL checkpoint skipped: %s", exc)
