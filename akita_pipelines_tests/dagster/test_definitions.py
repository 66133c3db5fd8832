from __future__ import annotations

import json
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, Definitions, build_sensor_context, instance_for_test
from sqlalchemy import Engine

from akita_pipelines.core.types import Customer, Integration
from akita_pipelines.defs.definitions import build_definitions
from akita_pipelines.defs.resources import AkitaDatabase
from akita_pipelines.onboarding import add_customer, add_integration

CREDS = {"client_id": "c", "client_secret": "s", "refresh_token": "r"}


def test_definitions_load() -> None:
    defs = build_definitions()
    Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"salesforce/accounts", "salesforce/contacts", "salesforce/tasks", "accounts",
            "contacts"} <= keys
    # Contacts wait for accounts within a run; the matched tables sit downstream.
    assert AssetKey(["salesforce", "accounts"]) in graph.get(
        AssetKey(["salesforce", "contacts"])).parent_keys
    assert AssetKey(["salesforce", "accounts"]) in graph.get(AssetKey("accounts")).parent_keys


def test_code_location_module_exposes_defs() -> None:
    from akita_pipelines import definitions

    assert isinstance(definitions.defs, Definitions)


@pytest.fixture
def registered(sqlite_engine: Engine) -> Engine:
    add_customer(sqlite_engine, Customer(id="acme", name="Acme"))
    add_customer(sqlite_engine, Customer(id="globex", name="Globex"))
    for customer in ("acme", "globex"):
        add_integration(sqlite_engine, Integration(
            id=f"salesforce.{customer}", customer_id=customer, provider="salesforce",
            config={"base_url": "http://127.0.0.1:9"},
            settings={"types": {"tasks": {"enabled": False}}} if customer == "globex" else {}),
            CREDS)
    return sqlite_engine


def _tick(defs: Definitions, instance: DagsterInstance, db: AkitaDatabase,
          cursor: str | None = None) -> object:
    sensor = defs.resolve_sensor_def("akita_scheduler_sensor")
    context = build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                                   resources={"akita_db": db})
    return sensor(context)


def test_sensor_registers_partitions_and_requests_one_run_per_due_integration(
        registered: Engine) -> None:
    db = AkitaDatabase(url=registered.url.render_as_string(hide_password=False))
    defs = build_definitions(database=db)
    with instance_for_test() as instance:
        result = _tick(defs, instance, db)
        adds = [(r.partitions_def_name, list(r.partition_keys))
                for r in result.dynamic_partitions_requests]  # type: ignore[attr-defined]
        assert adds == [("salesforce_integrations", ["salesforce.acme", "salesforce.globex"])]
        runs = {r.partition_key: r for r in result.run_requests}  # type: ignore[attr-defined]
        assert set(runs) == {"salesforce.acme", "salesforce.globex"}
        acme = runs["salesforce.acme"]
        assert acme.job_name == "salesforce_sync"
        assert [k.to_user_string() for k in acme.asset_selection] == [
            "salesforce/accounts", "salesforce/contacts", "salesforce/deals",
            "salesforce/tickets", "salesforce/tasks"]
        assert acme.tags["akita/customer"] == "acme"
        assert acme.tags["akita/provider"] == "salesforce"
        assert acme.tags["akita/trigger"] == "sensor"
        # A disabled type is not requested.
        assert "salesforce/tasks" not in [
            k.to_user_string() for k in runs["salesforce.globex"].asset_selection]
        cursor = json.loads(result.cursor)  # type: ignore[attr-defined]
        assert cursor["runs_requested"] == 2
        assert cursor["due_objects"] == 9

        # The daemon applies partition requests; here we do. Then a run of acme is in flight.
        instance.add_dynamic_partitions("salesforce_integrations",
                                        ["salesforce.acme", "salesforce.globex"])
        job = defs.resolve_job_def("salesforce_sync")
        instance.create_run_for_job(job, tags={"dagster/partition": "salesforce.acme"},
                                    status=_started())
        second = _tick(defs, instance, db, cursor=result.cursor)  # type: ignore[attr-defined]
        assert not second.dynamic_partitions_requests  # type: ignore[attr-defined]
        assert [r.partition_key for r in second.run_requests] == [  # type: ignore[attr-defined]
            "salesforce.globex"]


def _started() -> object:
    from dagster import DagsterRunStatus

    return DagsterRunStatus.STARTED


def test_sensor_onboards_a_burst_of_integrations_over_several_ticks(
        registered: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from akita_pipelines.defs import sensors

    monkeypatch.setattr(sensors, "MAX_NEW_PARTITIONS_PER_TICK", 1)
    db = AkitaDatabase(url=registered.url.render_as_string(hide_password=False))
    defs = build_definitions(database=db)
    with instance_for_test() as instance:
        first = _tick(defs, instance, db)
        adds = [list(r.partition_keys)
                for r in first.dynamic_partitions_requests]  # type: ignore[attr-defined]
        assert adds == [["salesforce.acme"]]
        # Only the integration whose partition exists (or is added now) gets a run.
        assert [r.partition_key
                for r in first.run_requests] == ["salesforce.acme"]  # type: ignore[attr-defined]
        instance.add_dynamic_partitions("salesforce_integrations", ["salesforce.acme"])
        second = _tick(defs, instance, db)
        assert [list(r.partition_keys) for r in  # type: ignore[attr-defined]
                second.dynamic_partitions_requests] == [["salesforce.globex"]]


def test_sensor_skips_when_nothing_is_due(tmp_path: Path, sqlite_engine: Engine) -> None:
    db = AkitaDatabase(url=sqlite_engine.url.render_as_string(hide_password=False))
    defs = build_definitions(database=db)
    with instance_for_test() as instance:
        result = _tick(defs, instance, db)
        assert not result.run_requests  # type: ignore[attr-defined]
        assert "nothing due" in (result.skip_reason.skip_message or "")  # type: ignore[attr-defined]


def test_sensor_registers_many_new_partitions_itself_in_one_tick(
        registered: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above REQUESTED_PARTITIONS_MAX new keys the sensor adds them to the instance itself
    (the daemon would check them one by one); their runs are requested in the same tick."""
    from akita_pipelines.defs import sensors

    monkeypatch.setattr(sensors, "REQUESTED_PARTITIONS_MAX", 1)
    db = AkitaDatabase(url=registered.url.render_as_string(hide_password=False))
    defs = build_definitions(database=db)
    with instance_for_test() as instance:
        first = _tick(defs, instance, db)
        assert not first.dynamic_partitions_requests  # type: ignore[attr-defined]
        assert instance.get_dynamic_partitions("salesforce_integrations") == [
            "salesforce.acme", "salesforce.globex"]
        assert json.loads(first.cursor)["partitions_registered"] == 2  # type: ignore[attr-defined]
        assert sorted(r.partition_key for r in first.run_requests  # type: ignore[attr-defined]
                      ) == ["salesforce.acme", "salesforce.globex"]
        second = _tick(defs, instance, db)
        assert not second.dynamic_partitions_requests  # type: ignore[attr-defined]
        assert json.loads(second.cursor)["partitions_registered"] == 0  # type: ignore[attr-defined]


def test_sensor_analyses_the_due_tables_after_a_bulk_onboarding(engine: Engine) -> None:
    """Tenants onboarded in bulk: the first tick analyses the objects table (PostgreSQL), so the
    due query is not planned for the empty table the statistics still describe, registers every
    new partition and requests their runs."""
    from sqlalchemy import insert, text

    from akita_pipelines.core.clock import utcnow
    from akita_pipelines.db.schema import customers, integration_objects, integrations
    from akita_pipelines.db.stats import SCHEDULER_TABLES, analyze_stale

    now = utcnow()
    n = 500
    with engine.begin() as conn:
        conn.execute(insert(customers), [{"id": f"c{i}", "name": f"C{i}", "settings": {},
                                          "created_at": now} for i in range(n)])
        conn.execute(insert(integrations), [
            {"id": f"salesforce.c{i}", "customer_id": f"c{i}", "provider": "salesforce",
             "config": {}, "credentials": {}, "settings": {}, "state": "active",
             "created_at": now, "updated_at": now} for i in range(n)])
        conn.execute(insert(integration_objects), [
            {"integration_id": f"salesforce.c{i}", "interaction_type": t,
             "frequency_per_day": 24.0, "enabled": True, "consecutive_failures": 0,
             "state": "ok", "next_due_at": now}
            for i in range(n) for t in ("accounts", "contacts", "deals", "tickets", "tasks")])
    postgres = engine.dialect.name == "postgresql"
    if postgres:
        with engine.connect() as conn:  # the statistics collector reports asynchronously
            conn.execute(text("SELECT pg_stat_force_next_flush()"))
    db = AkitaDatabase(url=engine.url.render_as_string(hide_password=False))
    defs = build_definitions(database=db)
    with instance_for_test() as instance:
        result = _tick(defs, instance, db)
        assert len(instance.get_dynamic_partitions("salesforce_integrations")) == n
        assert result.run_requests  # type: ignore[attr-defined]
    assert analyze_stale(engine, SCHEDULER_TABLES) == []  # the tick left nothing stale
    if postgres:
        with engine.connect() as conn:
            analysed = conn.execute(text(
                "SELECT count(*) FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL "
                "AND relname = 'integration_objects'")).scalar_one()
        assert analysed == 1
