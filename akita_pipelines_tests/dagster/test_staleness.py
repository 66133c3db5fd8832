"""Late Integration Objects show in the UI: the on_time check and a partition observation,
with the same rule as ``akita status``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetKey,
    AssetObservation,
    DagsterInstance,
    Definitions,
    build_sensor_context,
    instance_for_test,
)
from sqlalchemy import Engine, update

from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.types import Customer, Integration
from akita_pipelines.db import state
from akita_pipelines.db.schema import integration_objects
from akita_pipelines.defs.definitions import build_definitions
from akita_pipelines.defs.resources import AkitaDatabase
from akita_pipelines.onboarding import add_customer, add_integration
from akita_pipelines.sync.status import object_status

CREDS = {"client_id": "c", "client_secret": "s", "refresh_token": "r"}


def _register(engine: Engine, *customers: str) -> None:
    for customer in customers:
        add_customer(engine, Customer(id=customer, name=customer.title()))
        add_integration(engine, Integration(
            id=f"salesforce.{customer}", customer_id=customer, provider="salesforce",
            config={"base_url": "http://127.0.0.1:1"}), CREDS)


def _overdue(engine: Engine, integration_id: str, interaction_type: str,
             by: timedelta) -> None:
    with engine.begin() as conn:
        conn.execute(update(integration_objects).where(
            integration_objects.c.integration_id == integration_id,
            integration_objects.c.interaction_type == interaction_type)
            .values(next_due_at=utcnow() - by))


def _tick(defs: Definitions, instance: DagsterInstance, db: AkitaDatabase,
          cursor: str | None) -> Any:
    sensor = defs.resolve_sensor_def("akita_staleness_sensor")
    context = build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                                   resources={"akita_db": db})
    return sensor.evaluate_tick(context)


def test_late_objects_fail_their_check_and_mark_their_partition(sqlite_engine: Engine) -> None:
    _register(sqlite_engine, "acme", "globex")
    # Salesforce syncs 24 times a day: late once overdue by more than an hour.
    _overdue(sqlite_engine, "salesforce.acme", "accounts", timedelta(hours=2))
    _overdue(sqlite_engine, "salesforce.globex", "accounts", timedelta(minutes=40))
    db = AkitaDatabase(url=sqlite_engine.url.render_as_string(hide_password=False))
    defs = build_definitions(database=db)
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("salesforce_integrations",
                                        ["salesforce.acme", "salesforce.globex"])
        first = _tick(defs, instance, db, None)
        checks = {tuple(c.asset_key.path): c for c in first.asset_events
                  if isinstance(c, AssetCheckEvaluation)}
        # The first tick evaluates every asset's check, so none shows "not evaluated".
        assert len(checks) == len(defs.resolve_asset_graph().get_all_asset_keys()) - 2
        assert {k for k, c in checks.items() if not c.passed} == {("salesforce", "accounts")}
        late_check = checks[("salesforce", "accounts")]
        assert late_check.check_name == "on_time"
        assert late_check.metadata["late"].value == "salesforce.acme"  # globex: due, not late
        observed = [e for e in first.asset_events if isinstance(e, AssetObservation)]
        assert [(o.asset_key, o.partition) for o in observed] == [
            (AssetKey(["salesforce", "accounts"]), "salesforce.acme")]
        assert observed[0].metadata["status"].value == "late"

        # `akita status` says the same of the same objects.
        with sqlite_engine.connect() as conn:
            statuses = {(s.integration_id, s.interaction_type): s.status
                        for s in map(lambda o: object_status(o, utcnow()),
                                     state.list_objects(conn))}
        assert statuses[("salesforce.acme", "accounts")] == "late"
        assert statuses[("salesforce.globex", "accounts")] == "ok"

        # Nothing changed: nothing new to show.
        second = _tick(defs, instance, db, first.cursor)
        assert not second.asset_events

        # It syncs again: the check passes again.
        with sqlite_engine.begin() as conn:
            conn.execute(update(integration_objects)
                         .where(integration_objects.c.integration_id == "salesforce.acme")
                         .values(next_due_at=utcnow() + timedelta(hours=6)))
        third = _tick(defs, instance, db, second.cursor)
        assert [(e.check_name, e.passed) for e in third.asset_events] == [("on_time", True)]


def test_on_time_check_runs_on_demand_with_the_same_answer(sqlite_engine: Engine) -> None:
    _register(sqlite_engine, "acme")
    _overdue(sqlite_engine, "salesforce.acme", "contacts", timedelta(days=2))
    db = AkitaDatabase(url=sqlite_engine.url.render_as_string(hide_password=False))
    defs = build_definitions(database=db)
    from dagster import AssetCheckKey

    key = AssetCheckKey(AssetKey(["salesforce", "contacts"]), "on_time")
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_check_selection={key}, asset_selection=set())
    with instance_for_test() as instance:
        result = job.execute_in_process(instance=instance, resources={"akita_db": db})
    evaluations = result.get_asset_check_evaluations()
    assert [(e.check_name, e.passed) for e in evaluations] == [("on_time", False)]
    assert evaluations[0].metadata["late_integrations"].value == 1
