"""Migration 0010 drops the stored surname-and-initial block keys; matching still meets them.

The processor indexed a contact under ``b:l:<surname>|<initial>`` and
``b:lai:<surname's letters>|<initial>``; the second holds everyone the first does, so only it
is written now. Contacts stored before 2 December had only the first: upgrading rewrites each
``b:l:`` row as its ``b:lai:`` row and leaves every other key, so a contact synced after the
upgrade still meets a stored one with the same surname and initial. On SQLite the upgrade is
one transaction with foreign keys off: a failure leaves the file as it was.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete, insert, select

from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.types import Customer, Integration, TypedRecord
from akita_pipelines.db import migrate
from akita_pipelines.db.engine import make_engine
from akita_pipelines.db.entities import lookup_keys
from akita_pipelines.db.integrations import save_customer, save_integration
from akita_pipelines.db.migrate import upgrade
from akita_pipelines.db.schema import contact_links, match_keys
from akita_pipelines.sync.process import ProcessResult, process_batch

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _process(engine: Engine, integration: str, records: list[TypedRecord]) -> ProcessResult:
    result = ProcessResult(integration, "contacts")
    with engine.begin() as conn:
        process_batch(conn, customer_id="acme", integration_id=integration, records=records,
                      now=utcnow(), result=result)
    return result


def test_upgrade_drops_surname_blocks_and_matching_still_meets_them(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine, "0009")
    now = utcnow()
    with engine.begin() as conn:
        save_customer(conn, Customer(id="acme", name="Acme"), now)
        for provider in ("crm", "desk"):
            save_integration(conn, Integration(id=f"{provider}.acme", customer_id="acme",
                                               provider="rest", config={"base_url": "http://x"}),
                             {}, now)
    _process(engine, "crm.acme", [TypedRecord(
        "contacts", "c1", T0, first_name="Jane", last_name="Doe", email="jane.doe@acme.com",
        phone="+1 415 555 0101")])
    with engine.begin() as conn:
        (entity,) = conn.execute(select(contact_links.c.contact_id)).scalars().all()
        # As the code before 2 December stored her: a surname block, an anagram block without
        # a year, no letters-and-initial block. And an account's key that only looks alike.
        conn.execute(delete(match_keys).where(match_keys.c.key == "b:lai:deo|j"))
        conn.execute(insert(match_keys), [
            {"customer_id": "acme", "kind": "contacts", "key": "b:l:doe|j", "entity_id": entity},
            {"customer_id": "acme", "kind": "contacts", "key": "b:la:deo|", "entity_id": entity},
            {"customer_id": "acme", "kind": "accounts", "key": "b:l:doe|j", "entity_id": 7}])
        before = {tuple(row) for row in conn.execute(select(match_keys))}

    upgrade(engine)

    with engine.connect() as conn:
        after = {tuple(row) for row in conn.execute(select(match_keys))}
        # The surname block became the letters-and-initial block she lacked; nothing else moved.
        assert before - after == {("acme", "contacts", "b:l:doe|j", entity)}
        assert after - before == {("acme", "contacts", "b:lai:deo|j", entity)}
        assert lookup_keys(conn, "acme", "contacts", ["b:lai:deo|j"]) == {"b:lai:deo|j": [entity]}
    # Another source's record under her name with a personal mailbox and no phone: only the
    # letters-and-initial block brings the two together, and the pair goes to review (the
    # name alone is not enough to join them).
    result = _process(engine, "desk.acme", [TypedRecord(
        "contacts", "d1", T0, first_name="Jane", last_name="Doe", email="jane77@gmail.com")])
    assert result.reviews == 1
    engine.dispose()


def test_a_failed_sqlite_upgrade_leaves_the_file_as_it_was(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'akita.db'}")
    upgrade(engine, "0010")
    real = migrate.command.upgrade

    def fails_after(config: Any, revision: str) -> None:
        real(config, revision)  # 0011 rebuilds three tables, then something fails
        raise RuntimeError("disk full")

    monkeypatch.setattr(migrate.command, "upgrade", fails_after)
    with pytest.raises(RuntimeError, match="disk full"):
        upgrade(engine)
    monkeypatch.undo()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0010"
        assert not conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE name LIKE '_alembic_tmp%'").all()
        assert "fk_interactions_customer_id_customers" in conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE name = 'interactions'").scalar()
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    upgrade(engine)  # and the next upgrade goes through
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0011"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()
