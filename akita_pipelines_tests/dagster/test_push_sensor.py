"""The push sensor: a run per notified integration, one follow-up however many notifications
arrive while a run is in flight, nothing for a forged notification."""

from __future__ import annotations

import json

from dagster import DagsterRunStatus, build_sensor_context, instance_for_test
from sqlalchemy import Engine

from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.types import Customer, Integration
from akita_pipelines.db import push
from akita_pipelines.defs.definitions import build_definitions
from akita_pipelines.defs.resources import AkitaDatabase
from akita_pipelines.onboarding import add_customer, add_integration


def _tick(defs: object, instance: object, db: AkitaDatabase) -> object:
    sensor = defs.resolve_sensor_def("akita_push_sensor")  # type: ignore[attr-defined]
    return sensor(build_sensor_context(instance=instance, definitions=defs,  # type: ignore[arg-type]
                                       resources={"akita_db": db}))


def test_push_sensor_runs_notified_integrations_once_per_in_flight_run(
        sqlite_engine: Engine) -> None:
    add_customer(sqlite_engine, Customer(id="acme", name="Acme"))
    for provider, credentials in (("hubspot", {"client_id": "c", "client_secret": "s",
                                                "refresh_token": "r"}),
                                  ("stripe", {"api_key": "sk_test"})):
        add_integration(sqlite_engine, Integration(
            id=f"{provider}.acme", customer_id="acme", provider=provider,
            config={"base_url": "http://127.0.0.1:9"}), credentials)
    db = AkitaDatabase(url=sqlite_engine.url.render_as_string(hide_password=False))
    defs = build_definitions(database=db)
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("hubspot_integrations", ["hubspot.acme"])
        instance.add_dynamic_partitions("stripe_integrations", ["stripe.acme"])
        first = _tick(defs, instance, db)
        assert not first.run_requests  # type: ignore[attr-defined]
        with sqlite_engine.begin() as conn:
            for _ in range(50):  # a flood for one object: one row, one run
                push.push(conn, "hubspot.acme", ["contacts"], utcnow())
            push.push(conn, "hubspot.acme", ["deals"], utcnow())
        result = _tick(defs, instance, db)
        runs = result.run_requests  # type: ignore[attr-defined]
        assert [r.partition_key for r in runs] == ["hubspot.acme"]
        assert [k.to_user_string() for k in runs[0].asset_selection] == [
            "hubspot/contacts", "hubspot/deals"]
        assert runs[0].tags["akita/trigger"] == "push"
        assert runs[0].job_name == "hubspot_sync"
        assert json.loads(result.cursor)["runs_requested"] == 1  # type: ignore[attr-defined]
        # Handed over: the next tick has nothing to do.
        assert not _tick(defs, instance, db).run_requests  # type: ignore[attr-defined]

        # A run is in flight; notifications keep coming: they wait for it to end.
        job = defs.resolve_job_def("hubspot_sync")
        run = instance.create_run_for_job(job, tags={"dagster/partition": "hubspot.acme"},
                                          status=DagsterRunStatus.STARTED)
        with sqlite_engine.begin() as conn:
            for _ in range(20):
                push.push(conn, "hubspot.acme", ["contacts"], utcnow())
        assert not _tick(defs, instance, db).run_requests  # type: ignore[attr-defined]
        assert not _tick(defs, instance, db).run_requests  # type: ignore[attr-defined]
        instance.report_run_canceled(run)
        follow_up = _tick(defs, instance, db).run_requests  # type: ignore[attr-defined]
        assert [r.partition_key for r in follow_up] == ["hubspot.acme"]
        assert not _tick(defs, instance, db).run_requests  # type: ignore[attr-defined]

        # That follow-up ran and ended; more notifications within the minute wait for it to
        # pass (a flood makes two runs a minute), another integration's do not.
        instance.create_run_for_job(job, tags={"dagster/partition": "hubspot.acme",
                                               "akita/trigger": "push"},
                                    status=DagsterRunStatus.SUCCESS)
        with sqlite_engine.begin() as conn:
            push.push(conn, "hubspot.acme", ["contacts"], utcnow())
            push.push(conn, "stripe.acme", ["invoices"], utcnow())
        later = _tick(defs, instance, db).run_requests  # type: ignore[attr-defined]
        assert [r.partition_key for r in later] == ["stripe.acme"]
        with sqlite_engine.connect() as conn:
            waiting = [p.obj.integration_id for p in push.pushed_objects(conn, limit=10)]
        assert waiting == ["hubspot.acme"]
