"""Syncs under injected faults lose nothing and duplicate nothing."""

from __future__ import annotations

from sqlalchemy import Engine, select

from akita_pipelines.db.schema import alerts
from akita_pipelines.sandbox.server import Sandbox
from akita_pipelines_tests.fault_suite import run_fault_suite
from akita_pipelines_tests.integration.conftest import register_salesforce


def test_fault_suite_small(engine: Engine, sandbox: Sandbox) -> None:
    integration = register_salesforce(engine, sandbox,
                                      settings={"types": {"contacts": {"page_size": 200}}})
    report = run_fault_suite(engine, sandbox, integration, rounds=25, seed=3)
    table = "\n".join(f"{k:24s} {v}" for k, v in report.rows())
    assert report.lost == 0, table
    assert report.stale == 0, table
    assert report.duplicates == 0, table
    assert report.succeeded >= 5, table
    assert report.attempted > report.succeeded, table  # faults did bite
    assert sum(report.faults.values()) == 25
    with engine.connect() as conn:
        kinds = {k for (k,) in conn.execute(select(alerts.c.kind))}
    assert "broken" in kinds, table
