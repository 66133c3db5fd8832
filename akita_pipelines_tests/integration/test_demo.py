"""The demo registry covers every provider, and one pass syncs and matches all of it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, func, select

from akita_pipelines.db import state
from akita_pipelines.db.schema import accounts, interactions
from akita_pipelines.demo import DEMO_CUSTOMERS, register_demo
from akita_pipelines.providers.http import HttpClient
from akita_pipelines.providers.registry import PROVIDERS
from akita_pipelines.sandbox.server import start_sandbox
from akita_pipelines.sync.service import sync_object


def test_demo_registers_every_provider_and_everything_syncs(sqlite_engine: Engine,
                                                            tmp_path: Path) -> None:
    with start_sandbox(base_port=0, seed=7) as sandbox:
        ids = register_demo(sqlite_engine, sandbox.urls, tmp_path)
        assert {i.split(".", 1)[0] for i in ids} == set(PROVIDERS)
        assert len(ids) == len(PROVIDERS) * len(DEMO_CUSTOMERS)
        with sqlite_engine.connect() as conn:
            objects = state.list_objects(conn)
        for obj in objects:
            sync_object(sqlite_engine, obj.integration_id, obj.interaction_type,
                        http=HttpClient(sleep=lambda s: None))
    with sqlite_engine.connect() as conn:
        stored = dict(conn.execute(
            select(interactions.c.integration_id, func.count())
            .group_by(interactions.c.integration_id)).all())
        account_rows = conn.execute(select(func.count()).select_from(interactions).where(
            interactions.c.interaction_type == "accounts",
            interactions.c.customer_id == "acme-corp")).scalar_one()
        matched = conn.execute(select(func.count()).select_from(accounts).where(
            accounts.c.customer_id == "acme-corp", accounts.c.merged_into.is_(None))
            ).scalar_one()
    assert set(stored) == set(ids), "every demo integration stored records"
    # The same companies appear in every provider: they match to far fewer Accounts.
    assert matched * 4 < account_rows
