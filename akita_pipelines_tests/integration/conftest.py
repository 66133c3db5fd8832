from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select

from akita_pipelines.cli import main
from akita_pipelines.core.types import Customer, Integration
from akita_pipelines.db import state
from akita_pipelines.db.schema import staged_records
from akita_pipelines.onboarding import add_customer, add_integration
from akita_pipelines.sandbox.server import Sandbox, start_sandbox


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with start_sandbox(base_port=0, seed=11) as running:
        yield running


def register_sandbox(engine: Engine, sandbox: Sandbox, provider: str, customer: str = "acme",
                     settings: dict[str, Any] | None = None) -> str:
    """A customer and its integration with the ``provider`` emulator; the integration's id."""
    info = dict(sandbox.urls[provider])
    add_customer(engine, Customer(id=customer, name=customer.title()))
    integration_id = f"{provider}.{customer}"
    add_integration(engine, Integration(
        id=integration_id, customer_id=customer, provider=provider,
        config={"base_url": info.pop("base_url")}, settings=settings or {}), info)
    return integration_id


def register_salesforce(engine: Engine, sandbox: Sandbox, customer: str = "acme",
                        settings: dict[str, Any] | None = None) -> str:
    return register_sandbox(engine, sandbox, "salesforce", customer, settings)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The ``akita`` command on a fresh SQLite database."""
    monkeypatch.setenv("AKITA_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    return runner


def killed_sync(engine: Engine, integration: str, code: str,
                *args: str) -> tuple[state.ObjectRow, int]:
    """Run ``code`` (a sync that SIGKILLs itself) in a child process with the database URL, the
    integration and ``args``; the contacts object as the dead sync left it, and how many rows
    it had staged."""
    url = engine.url.render_as_string(hide_password=False)
    child = subprocess.run([sys.executable, "-c", code, url, integration, *args],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == -9, child.stderr[-2000:]
    with engine.connect() as conn:
        obj = state.get_object(conn, integration, "contacts")
        staged = int(conn.execute(select(func.count()).select_from(staged_records)).scalar_one())
    assert obj is not None
    return obj, staged
