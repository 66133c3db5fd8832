"""Bulk writes agree with the plain path, whatever the values hold."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select

from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.types import Customer, Integration, TypedRecord
from akita_pipelines.db import entities
from akita_pipelines.db.registry import save_customer, save_integration
from akita_pipelines.db.schema import interactions

NASTY = ["tab\there", "new\nline", "back\\slash", "quote'\"", "ünïcødé ✓", "\\N", "", "x" * 500]


@pytest.mark.parametrize("n", [3, 450])  # below and above the COPY threshold
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
