"""Block look-ups stay bounded however many entities a common name's block gathers."""

from __future__ import annotations

from sqlalchemy import Engine

from akita_pipelines.core.types import Customer
from akita_pipelines.db import bulk, entities
from akita_pipelines.db.schema import match_keys
from akita_pipelines.onboarding import add_customer


def test_capped_lookup_reads_each_key_up_to_the_cap(engine: Engine) -> None:
    add_customer(engine, Customer(id="c", name="C"))
    add_customer(engine, Customer(id="other", name="Other"))
    rows = ([("c", "b:l:smith|j", e) for e in range(500, 0, -1)]  # a common name
            + [("c", 'b:l:o"neil\\x|p', e) for e in (7, 3)]  # quoting survives the array
            + [("c", "b:l:jones|m", e) for e in range(1, 6)]
            + [("other", "b:l:jones|m", e) for e in range(100, 300)])  # another customer's
    with engine.begin() as conn:
        bulk.insert_new(conn, match_keys, {
            "customer_id": [c for c, _, _ in rows], "kind": ["contacts"] * len(rows),
            "key": [k for _, k, _ in rows], "entity_id": [e for _, _, e in rows]})
    wanted = ["b:l:smith|j", 'b:l:o"neil\\x|p', "b:l:jones|m", "b:l:nobody|x"]
    with engine.connect() as conn:
        capped = entities.lookup_keys(conn, "c", "contacts", wanted, cap=101)
        whole = entities.lookup_keys(conn, "c", "contacts", wanted)
    assert capped["b:l:smith|j"] == list(range(1, 102))  # the lowest ids, in order
    assert len(whole["b:l:smith|j"]) == 500
    assert capped['b:l:o"neil\\x|p'] == whole['b:l:o"neil\\x|p'] == [3, 7]
    assert capped["b:l:jones|m"] == whole["b:l:jones|m"] == [1, 2, 3, 4, 5]
    assert "b:l:nobody|x" not in capped
    with engine.connect() as conn:
        assert entities.lookup_keys(conn, "c", "contacts", [], cap=101) == {}
