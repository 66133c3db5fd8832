"""No credential appears in logs, run metadata, exceptions, alerts or stored errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, instance_for_test
from sqlalchemy import Engine, select, text

from akita_pipelines.core.errors import AkitaError, AuthError, ConfigError
from akita_pipelines.core.types import Customer, Integration
from akita_pipelines.db.schema import alerts, integration_objects, integrations, sync_runs
from akita_pipelines.defs.definitions import build_definitions
from akita_pipelines.defs.resources import AkitaDatabase
from akita_pipelines.onboarding import add_customer, add_integration
from akita_pipelines.sandbox.server import Sandbox, start_sandbox
from akita_pipelines.sync.service import sync_object
from akita_pipelines_tests.integration.conftest import register_salesforce
from akita_pipelines_tests.integration.sql_customers import PASSWORD, new_customer_db


def _what_runs_record(instance: DagsterInstance) -> list[str]:
    """Every run's tags, config and event log entries."""
    found = []
    for run in instance.get_runs():
        found.append(str(run.tags) + str(run.run_config))
        found.extend(str(entry) for entry in instance.all_logs(run.run_id))
    return found


def _what_is_logged_and_stored(caplog: pytest.LogCaptureFixture, engine: Engine) -> list[str]:
    """The log records, the alerts and stored errors, and the integrations' rows as stored."""
    found = [r.getMessage() for r in caplog.records]
    found.append(caplog.text)
    with engine.connect() as conn:
        found.extend(str(v) for (v,) in conn.execute(select(alerts.c.message)))
        found.extend(str(v) for (v,) in conn.execute(select(sync_runs.c.error)))
        found.extend(str(v) for (v,) in conn.execute(select(integration_objects.c.last_error)))
        found.append(" ".join(str(r) for r in conn.execute(text("SELECT * FROM integrations"))))
    return found


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with start_sandbox(base_port=0, seed=3) as running:
        yield running


def test_no_secret_leaks_in_successful_and_failing_syncs(
        sqlite_engine: Engine, sandbox: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    integration = register_salesforce(sqlite_engine, sandbox)
    emulator = sandbox.emulators["salesforce"]
    captured: list[str] = []
    with instance_for_test() as instance:
        db = AkitaDatabase(url=sqlite_engine.url.render_as_string(hide_password=False))
        defs = build_definitions(database=db)
        instance.add_dynamic_partitions("salesforce_integrations", [integration])
        job = defs.resolve_job_def("salesforce_sync")
        assert job.execute_in_process(instance=instance, partition_key=integration,
                                      asset_selection=[AssetKey(["salesforce", "accounts"])]
                                      ).success
        emulator.expire_tokens()  # a refresh mid-run: new tokens must not leak either
        emulator.touch("Account", count=2)
        assert job.execute_in_process(instance=instance, partition_key=integration,
                                      asset_selection=[AssetKey(["salesforce", "accounts"])]
                                      ).success
        # A failing sync: the refresh token is revoked and the access token expired.
        emulator.refresh_tokens.clear()
        emulator.expire_tokens()
        with pytest.raises(AkitaError) as failure:
            sync_object(sqlite_engine, integration, "contacts")
        captured.append(str(failure.value))
        captured.append(repr(failure.value))
        failed = job.execute_in_process(instance=instance, partition_key=integration,
                                        asset_selection=[AssetKey(["salesforce", "deals"])],
                                        raise_on_error=False)
        assert not failed.success
        captured += _what_runs_record(instance)
    captured += _what_is_logged_and_stored(caplog, sqlite_engine)
    with sqlite_engine.connect() as conn:
        stored = conn.execute(select(integrations.c.credentials)).scalar_one()
        assert "fernet" in stored
    secrets = {emulator.client_secret, *emulator.revoked, "sf-demo-refresh-token",
               *emulator.tokens}
    assert len(secrets) >= 4  # client secret, refresh token, at least two access tokens
    haystack = "\n".join(captured)
    leaked = [s for s in secrets if s in haystack]
    assert leaked == []
    assert "needs re-authorising" in "\n".join(captured)



def test_no_database_password_leaks_from_a_sql_source(
        sqlite_engine: Engine, instance: DagsterInstance, request: pytest.FixtureRequest,
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A MariaDB source (mysql+pymysql URL): a good sync, a refused login (wrong password)
    and a URL that carries its password, through Dagster runs and the sync service."""
    caplog.set_level(logging.DEBUG)
    db = new_customer_db("mariadb", request, tmp_path)
    db.create_crm()
    wrong, in_url = "wr0ng-Secret-pw", "url-Pa55word"
    captured: list[str] = []
    add_customer(sqlite_engine, Customer(id="acme", name="Acme"))
    streams = {"accounts": {"table": "companies", "primary_key": "id",
                            "updated_at": "updated_at", "deleted": "is_deleted",
                            "fields": {"name": "company_name", "website": "site"}}}

    def register(url: str, credentials: dict[str, str]) -> None:
        add_integration(sqlite_engine, Integration(
            id="sql.acme", customer_id="acme", provider="sql",
            config={"url": url, "timezone": "America/New_York", "streams": streams}),
            credentials)

    # A URL carrying its password is refused at registration, before anything is stored.
    with pytest.raises(ConfigError) as in_config:
        register(db.url.replace("reader@", f"reader:{in_url}@"), {})
    captured.extend((str(in_config.value), repr(in_config.value)))
    assert "credentials" in str(in_config.value)

    register(db.url, db.credentials)
    akita_db = AkitaDatabase(url=sqlite_engine.url.render_as_string(hide_password=False))
    defs = build_definitions(database=akita_db)
    instance.add_dynamic_partitions("sql_integrations", ["sql.acme"])
    job = defs.resolve_job_def("sql_sync")
    selection = [AssetKey(["sql", "accounts"])]
    assert job.execute_in_process(instance=instance, partition_key="sql.acme",
                                  asset_selection=selection).success
    register(db.url, {"password": wrong})  # the customer rotated it; we hold the old one
    with pytest.raises(AuthError) as refused:
        sync_object(sqlite_engine, "sql.acme", "accounts", full=True)
    captured.extend((str(refused.value), repr(refused.value)))
    failed = job.execute_in_process(instance=instance, partition_key="sql.acme",
                                    asset_selection=selection, raise_on_error=False)
    assert not failed.success
    captured += _what_runs_record(instance) + _what_is_logged_and_stored(caplog, sqlite_engine)
    haystack = "\n".join(captured)
    assert "check the username and password" in haystack  # the refusal was recorded
    assert "reader@127.0.0.1" in haystack or "'reader'@'127.0.0.1'" in haystack
    assert [s for s in (PASSWORD, wrong, in_url) if s in haystack] == []
