from __future__ import annotations

from datetime import UTC, datetime

from akita_pipelines.db.state import ObjectRow
from akita_pipelines.sync.scheduler import partition_changes, plan_runs

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def obj(integration: str, kind: str, provider: str = "salesforce") -> ObjectRow:
    return ObjectRow(id=hash((integration, kind)), integration_id=integration, provider=provider,
                     customer_id=integration.split(".")[1], interaction_type=kind,
                     frequency_per_day=24.0, cursor=None, checkpoint=None, full_checkpoint=None,
                     last_synced_at=None,
                     next_due_at=NOW, consecutive_failures=0, state="ok", enabled=True,
                     integration_state="active", last_error=None)


def test_one_run_per_integration_with_types_in_dependency_order() -> None:
    due = [obj("salesforce.a", "tasks"), obj("salesforce.a", "contacts"),
           obj("salesforce.b", "deals"), obj("salesforce.a", "accounts")]
    runs = plan_runs(due, in_flight=set(), known_providers={"salesforce"}, max_runs=10)
    assert [(r.integration_id, r.types) for r in runs] == [
        ("salesforce.a", ("accounts", "contacts", "tasks")), ("salesforce.b", ("deals",))]


def test_in_flight_and_unknown_providers_are_skipped_and_runs_capped() -> None:
    due = [obj("salesforce.a", "accounts"), obj("gone.x", "accounts", provider="gone"),
           obj("salesforce.b", "accounts"), obj("salesforce.c", "accounts")]
    runs = plan_runs(due, in_flight={"salesforce.a"}, known_providers={"salesforce"}, max_runs=1)
    assert [r.integration_id for r in runs] == ["salesforce.b"]


def test_partition_changes_add_new_keys_in_registry_order_and_delete_removed() -> None:
    changes = partition_changes({"salesforce": ["salesforce.b", "salesforce.a"]},
                                {"salesforce": {"salesforce.a", "salesforce.old"},
                                 "hubspot": {"hubspot.x"}})
    assert changes.add == {"salesforce": ["salesforce.b"]}
    assert changes.delete == {"hubspot": ["hubspot.x"], "salesforce": ["salesforce.old"]}
    assert partition_changes({"s": ["k"]}, {"s": {"k"}}).empty
