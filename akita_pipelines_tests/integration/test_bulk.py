"""Bulk writes agree with the plain path, whatever the values hold."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select, text

from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.types import Customer, Integration, TypedRecord
from akita_pipelines.db import entities
from akita_pipelines.db.integrations import save_customer, save_integration
from akita_pipelines.db.schema import interactions, match_keys

NASTY = ["tab\there", "new\nline", "back\\slash", "quote'\"", "ünïcødé ✓", "\\N", "", "x" * 500]


@pytest.mark.parametrize("n", [3, 1200])  # below and above the COPY threshold (MIN_ROWS)
def test_interaction_upsert_round_trips_values(engine: Engine, n: int) -> None:
    now = utcnow()
    with engine.begin() as conn:
        save_customer(conn, Customer(id="c", name="C"), now)
        save_integration(conn, Integration(id="salesforce.c", customer_id="c",
                                           provider="salesforce", config={}), {}, now)
    records = [TypedRecord(interaction_type="contacts", external_id=f"id{i}",
                           updated_at=datetime(2025, 1, 1, 12, 0, i % 60, tzinfo=UTC),
                           name=NASTY[i % len(NASTY)], email=None if i % 3 else f"a{i}@b.com",
                           fields={"note": NASTY[(i + 1) % len(NASTY)], "n": i,
                                   "nested": [1, None]})
               for i in range(n)]
    for _ in range(2):  # the second pass updates every row
        with engine.begin() as conn:
            ids = entities.upsert_interactions(conn, customer_id="c", integration_id="salesforce.c",
                                               records=[(r, "d.com") for r in records], now=now)
    assert len(ids) == n
    with engine.connect() as conn:
        rows = {r.external_id: r for r in conn.execute(select(interactions))}
    assert len(rows) == n
    for r in records:
        row = rows[r.external_id]
        assert row.id == ids[r.external_id]
        assert (row.name, row.email, row.fields, row.source_updated_at) == (
            r.name, r.email, dict(r.fields), r.updated_at)


@pytest.mark.parametrize("n", [5, 1200])  # arrays below MIN_ROWS, COPY above
def test_processor_bulk_path_creates_links_and_updates_golden_records(engine: Engine,
                                                                      n: int) -> None:
    """Above the COPY threshold: new entities take sequence ids (PostgreSQL) or pre-assigned
    ids (SQLite), links point at them, and an outranking source's values reach every golden
    record through the bulk update."""
    from akita_pipelines.db.schema import contact_links, contacts, match_keys
    from akita_pipelines.sync.process import ProcessResult, process_batch

    now = utcnow()
    with engine.begin() as conn:
        save_customer(conn, Customer(id="c", name="C", settings={"source_priority": ["hubspot"]}),
                      now)
        for provider in ("salesforce", "hubspot"):
            save_integration(conn, Integration(id=f"{provider}.c", customer_id="c",
                                               provider="rest", config={}), {}, now)

    def people(prefix: str, phone: str | None) -> list[TypedRecord]:
        return [TypedRecord("contacts", f"{prefix}{i}", datetime(2025, 1, 1, tzinfo=UTC),
                            first_name=f"Ann{chr(97 + i % 26)}", last_name=f"Person{i}",
                            email=f"p{i}@firm{i % 7}.com", phone=phone and f"{phone}{i:04d}")
                for i in range(n)]

    for integration, records in (("salesforce.c", people("s", None)),
                                 ("hubspot.c", people("h", "+1 212 555 "))):
        result = ProcessResult(integration, "contacts")
        with engine.begin() as conn:
            process_batch(conn, customer_id="c", integration_id=integration, records=records,
                          now=now, result=result)
    assert result.rules["email"] == n  # the second source matched every person by email
    with engine.connect() as conn:
        golden = conn.execute(select(contacts.c.id, contacts.c.phone, contacts.c.source)).all()
        links = conn.execute(select(contact_links.c.contact_id)).scalars().all()
        keyed = conn.execute(select(match_keys.c.entity_id)).scalars().all()
    assert len(golden) == n
    assert len({g.id for g in golden}) == n
    assert {g.source for g in golden} == {"hubspot"}  # outranked: the bulk update reached all
    assert sorted(g.phone for g in golden) == sorted(f"+1212555{i:04d}" for i in range(n))
    assert sorted(links) == sorted([g.id for g in golden] * 2)
    assert set(keyed) == {g.id for g in golden}


def test_stale_planner_statistics_are_refreshed_after_bulk_writes(engine: Engine) -> None:
    """PostgreSQL: a bulk write of match keys leaves statistics that say "empty"; the processor
    analyses the table so that key look-ups seek instead of filtering every key."""
    from sqlalchemy import insert

    from akita_pipelines.db.schema import match_keys
    from akita_pipelines.db.stats import analyze_stale

    with engine.begin() as conn:
        save_customer(conn, Customer(id="c", name="C"), utcnow())
        conn.execute(insert(match_keys), [{"customer_id": "c", "kind": "contacts",
                                           "key": f"k:p{i}@x.com", "entity_id": i}
                                          for i in range(5000)])
    if engine.dialect.name != "postgresql":
        assert analyze_stale(engine) == []  # SQLite plans by its indexes
        return
    with engine.connect() as conn:  # the statistics collector reports asynchronously
        conn.execute(text("SELECT pg_stat_force_next_flush()"))
    assert "match_keys" in analyze_stale(engine)
    assert analyze_stale(engine) == []  # fresh now: nothing to do
    with engine.connect() as conn:
        plan = "\n".join(conn.execute(text(
            "EXPLAIN SELECT entity_id FROM match_keys WHERE customer_id = 'c' "
            "AND kind = 'contacts' AND key = ANY(ARRAY['k:p1@x.com'])")).scalars())
    assert "Rows Removed by Filter" not in plan
    assert "key = ANY" in plan.split("Filter")[0]


def test_key_look_ups_find_keys_whatever_they_hold(engine: Engine) -> None:
    """Keys travel to PostgreSQL as one array literal: quotes and backslashes must survive."""
    keys = [k for k in NASTY if k and len(k) <= 400] + ["plain", "b:l:o'neil|j", 'k:"quoted"@x.com']
    with engine.begin() as conn:
        conn.execute(match_keys.insert(), [{"customer_id": "c", "kind": "contacts", "key": k,
                                            "entity_id": i} for i, k in enumerate(keys)])
    with engine.connect() as conn:
        found = entities.lookup_keys(conn, "c", "contacts", [*keys, "absent", 'ab"sent\\'])
    assert found == {k: [i] for i, k in enumerate(keys)}
