"""A sync killed with SIGKILL mid-way resumes from the last committed page: nothing lost,
nothing processed twice."""

from __future__ import annotations

import json
import textwrap

import pytest
from sqlalchemy import Engine, func, select

from akita_pipelines.db import state
from akita_pipelines.db.schema import contact_links, interactions
from akita_pipelines.sandbox.server import Sandbox
from akita_pipelines.sync.service import sync_object
from akita_pipelines_tests.integration.conftest import killed_sync, register_salesforce

CHILD = textwrap.dedent("""
    import os, signal, sys
    import requests
    from akita_pipelines.db.engine import make_engine
    from akita_pipelines.db import state
    from akita_pipelines.providers.http import HttpClient
    from akita_pipelines.sync.service import sync_object

    url, integration, where, after = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    engine = make_engine(url)
    seen = {"n": 0}

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    if where == "page":
        session = requests.Session()
        def hook(response, *args, **kwargs):
            if "/query" in response.url:
                seen["n"] += 1
                if seen["n"] > after:
                    die()  # this page came back but is never staged
        session.hooks["response"].append(hook)
        http = HttpClient(session=session)
    else:
        http = HttpClient()
        original = state.mark_processed
        def mark(conn, object_id, through):
            seen["n"] += 1
            if seen["n"] > after:
                die()  # inside the batch's transaction: it rolls back
            original(conn, object_id, through)
        state.mark_processed = mark
    sync_object(engine, integration, "contacts", http=http)
""")


@pytest.mark.parametrize(("where", "after"), [("page", 2), ("batch", 1)])
def test_killed_sync_resumes_without_loss_or_duplicates(engine: Engine, sandbox: Sandbox,
                                                        where: str, after: int) -> None:
    integration = register_salesforce(engine, sandbox,
                                      settings={"types": {"contacts": {"page_size": 200}}})
    sandbox.emulators["salesforce"].create("Contact", 400)  # several pages
    env_code = f"import akita_pipelines.sync.process as p; p.BATCH_SIZE = 100\n{CHILD}"
    obj, staged = killed_sync(engine, integration, env_code, where, str(after))
    assert obj.cursor is None  # nothing was committed by the dead sync
    if where == "page":
        assert staged == 200 * after  # the pages before the kill are kept
        assert obj.checkpoint is not None
    resumed = sync_object(engine, integration, "contacts")
    if where == "page":
        # Resumed from the checkpoint: it did not re-read the staged pages from the start.
        assert resumed.retrieved.since is not None
    expected = {r["Id"] for r in sandbox.emulators["salesforce"].records("Contact",
                                                                         include_deleted=True)}
    with engine.connect() as conn:
        stored = [r for (r,) in conn.execute(select(interactions.c.external_id))]
        links = conn.execute(select(func.count()).select_from(contact_links)).scalar_one()
        pending = state.count_pending(conn, obj.id)
    assert sorted(stored) == sorted(expected)  # nothing lost, nothing twice
    live = [r for r in sandbox.emulators["salesforce"].records("Contact")]
    assert links == len(live)
    assert pending == 0
    assert json.dumps(sorted(stored)) == json.dumps(sorted(set(stored)))
