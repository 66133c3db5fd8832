"""The scheduler's grouping of due integrations into runs."""

from __future__ import annotations

from akita_pipelines.sync.batches import BatchPolicy, batch_size, plan_batches
from akita_pipelines_tests.unit.test_scheduler import obj

POLICY = BatchPolicy(max_size=50, runs_per_provider=3, requests_per_provider=12)


def _due(provider: str, n: int, types: tuple[str, ...] = ("accounts",)) -> list:
    return [obj(f"{provider}.c{i}", t, provider=provider) for i in range(n) for t in types]


def test_few_due_integrations_get_one_run_each() -> None:
    batches = plan_batches(_due("salesforce", 3, ("contacts", "accounts")), in_flight=set(),
                           known_providers={"salesforce"}, max_runs=200, policy=POLICY)
    assert [b.integration_ids for b in batches] == [["salesforce.c0"], ["salesforce.c1"],
                                                    ["salesforce.c2"]]
    assert all(b.single is not None for b in batches)
    assert batches[0].runs[0].types == ("accounts", "contacts")


def test_many_due_share_runs_sized_by_the_provider_limit_and_capped() -> None:
    # 30 due, 3 runs of the provider at once: 3 runs of 10.
    batches = plan_batches(_due("salesforce", 30), in_flight=set(),
                           known_providers={"salesforce"}, max_runs=200, policy=POLICY)
    assert [len(b.runs) for b in batches] == [10, 10, 10]
    # 1,000 due: batches of at most 50, most overdue first, each integration once.
    batches = plan_batches(_due("salesforce", 1000), in_flight=set(),
                           known_providers={"salesforce"}, max_runs=200, policy=POLICY)
    assert [len(b.runs) for b in batches] == [50] * 20
    assert batches[0].integration_ids[0] == "salesforce.c0"
    ids = [i for b in batches for i in b.integration_ids]
    assert len(ids) == len(set(ids)) == 1000
    # The run cap holds; the rest stay due for the next tick.
    assert len(plan_batches(_due("salesforce", 1000), in_flight=set(),
                            known_providers={"salesforce"}, max_runs=5, policy=POLICY)) == 5


def test_batches_are_per_provider_with_their_own_limits_and_skip_in_flight() -> None:
    policy = BatchPolicy(max_size=50, runs_per_provider=3, requests_per_provider=12,
                         overrides={"hubspot": {"max_size": 4, "requests_per_provider": 3}})
    due = _due("salesforce", 12) + _due("hubspot", 12)
    batches = plan_batches(due, in_flight={"salesforce.c0", "hubspot.c1"},
                           known_providers={"salesforce", "hubspot"}, max_runs=200,
                           policy=policy)
    assert all(len({i.split(".")[0] for i in b.integration_ids}) == 1 for b in batches)
    sizes = {p: [len(b.runs) for b in batches if b.provider == p]
             for p in ("salesforce", "hubspot")}
    assert sizes == {"salesforce": [4, 4, 3], "hubspot": [4, 4, 3]}
    assert {"salesforce.c0", "hubspot.c1"}.isdisjoint(i for b in batches
                                                      for i in b.integration_ids)
    # Providers alternate, so one's backlog does not hold back the other's runs.
    assert [b.provider for b in batches[:2]] == ["hubspot", "salesforce"]
    assert policy.for_provider("hubspot").threads == 1
    assert policy.for_provider("salesforce").threads == 4


def test_batch_size_adapts_and_the_environment_configures_it() -> None:
    assert [batch_size(n, POLICY) for n in (0, 1, 3, 4, 30, 151, 10_000)] == [
        1, 1, 1, 2, 10, 50, 50]
    policy = BatchPolicy.from_env({"AKITA_BATCH_MAX_SIZE": "1"})
    assert batch_size(10_000, policy) == 1  # batching off
    assert BatchPolicy.from_env({}) == BatchPolicy()
