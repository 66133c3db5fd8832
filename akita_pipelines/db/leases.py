"""Per-object leases: an Integration Object is synced by one run at a time, batch or not.

A sync holds its object from ``begin_sync`` (the ``sync_runs`` row in status ``running``) to its
commit or recorded failure. Claiming locks the object's row first (an UPDATE: a row lock on
PostgreSQL, the write lock on SQLite), so two runs claiming at once are serialised and the
second sees the first's ``running`` row.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, select, update

from akita_pipelines.db.schema import integration_objects, sync_runs

#: A ``running`` row older than this holds nothing, whatever its run says (a process killed
#: outside Dagster leaves one; its run's failure is recorded by the run failure sensor).
LEASE_TTL = timedelta(hours=6)


def holders(conn: Connection, object_id: int, run_id: str, now: datetime) -> list[str]:
    """Lock the object's row, then the other runs with a sync of it in progress (newest
    first). Call inside the transaction that begins the sync."""
    conn.execute(update(integration_objects).where(integration_objects.c.id == object_id)
                 .values(last_attempt_at=now))
    rows = conn.execute(
        select(sync_runs.c.run_id)
        .where(sync_runs.c.integration_object_id == object_id,
               sync_runs.c.status == "running",
               sync_runs.c.run_id.is_not(None),
               sync_runs.c.run_id != run_id,
               sync_runs.c.started_at > now - LEASE_TTL)
        .order_by(sync_runs.c.started_at.desc())).scalars()
    return list(dict.fromkeys(str(r) for r in rows))


def running_sync(conn: Connection, object_id: int, run_id: str) -> int | None:
    """This run's sync of the object still marked running (to record an unexpected error)."""
    found = conn.execute(select(sync_runs.c.id).where(
        sync_runs.c.integration_object_id == object_id, sync_runs.c.run_id == run_id,
        sync_runs.c.status == "running").order_by(sync_runs.c.id.desc()).limit(1)).scalar()
    return int(found) if found is not None else None
