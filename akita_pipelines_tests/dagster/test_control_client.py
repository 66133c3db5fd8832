"""The GraphQL client against a fake webserver: requests it sends, answers it understands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
from dagster import validate_run_config

from akita_pipelines.control.client import (
    ControlError,
    DagsterControl,
    retrieve_run_config,
)
from akita_pipelines.defs.definitions import build_definitions


class FakeResponse:
    def __init__(self, body: Any, status_code: int = 200) -> None:
        self.body = body
        self.status_code = status_code

    def json(self) -> Any:
        if isinstance(self.body, Exception):
            raise self.body
        return self.body


class FakeSession:
    """Answers each POST with the next item of ``answers`` (a body, a response or an error)."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.sent: list[dict[str, Any]] = []

    def post(self, url: str, json: dict[str, Any], timeout: float) -> FakeResponse:
        self.sent.append({"url": url, **json})
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer if isinstance(answer, FakeResponse) else FakeResponse(answer)


def _control(session: FakeSession, url: str = "http://127.0.0.1:3000") -> DagsterControl:
    return DagsterControl(url, session=session)  # type: ignore[arg-type]


def test_launch_run_sends_the_partition_tags_selector_and_config() -> None:
    session = FakeSession({"data": {"launchRun": {
        "__typename": "LaunchRunSuccess", "run": {"runId": "r1", "status": "QUEUED"}}}})
    run_id = _control(session).launch_run(
        job_name="salesforce_sync", partition_key="salesforce.acme",
        tags={"akita/trigger": "manual"}, asset_keys=[["salesforce", "contacts"]],
        run_config=retrieve_run_config("salesforce", ["contacts"], full=True))
    assert run_id == "r1"
    sent = session.sent[0]
    assert sent["url"] == "http://127.0.0.1:3000/graphql"
    params = sent["variables"]["executionParams"]
    assert params["selector"] == {
        "repositoryLocationName": "akita_pipelines", "repositoryName": "__repository__",
        "jobName": "salesforce_sync", "assetSelection": [{"path": ["salesforce", "contacts"]}]}
    assert {"key": "dagster/partition", "value": "salesforce.acme"} in \
        params["executionMetadata"]["tags"]
    assert params["runConfigData"]["ops"]["salesforce__contacts"]["ops"][
        "retrieve_salesforce_contacts"]["config"] == {"full": True}


@pytest.mark.parametrize(("answer", "expected"), [
    ({"__typename": "PythonError", "message": "boom\nTraceback ..."}, "PythonError: boom"),
    ({"__typename": "InvalidStepError", "invalidStepKey": "x.y"}, "no step 'x.y'"),
    ({"__typename": "RunConfigValidationInvalid", "errors": [{"message": "bad since"}]},
     "bad since"),
    ({"__typename": "PipelineNotFoundError", "message": "Could not find Pipeline nope"},
     "Could not find Pipeline nope"),
])
def test_launch_errors_become_one_line_messages(answer: dict[str, Any], expected: str) -> None:
    session = FakeSession({"data": {"launchRun": answer}})
    with pytest.raises(ControlError, match="the run was not launched") as raised:
        _control(session).launch_run(job_name="j", partition_key="p", tags={})
    assert expected in str(raised.value)
    assert "Traceback" not in str(raised.value)


def test_backfill_with_unknown_partitions_names_them() -> None:
    session = FakeSession({"data": {"launchPartitionBackfill": {
        "__typename": "PartitionKeysNotFoundError", "message": "Partition keys not found",
        "partitionKeys": ["salesforce.nope"]}}})
    with pytest.raises(ControlError, match=r"salesforce\.nope"):
        _control(session).launch_backfill(asset_keys=[["salesforce", "accounts"]],
                                          partition_keys=["salesforce.nope"], tags={})


def test_unreachable_webserver_is_a_clear_error_without_credentials() -> None:
    session = FakeSession(requests.ConnectionError("refused"))
    with pytest.raises(ControlError, match="unreachable") as raised:
        _control(session, "http://admin:s3cret@dagster.internal:3000/").run("r1")
    assert "s3cret" not in str(raised.value)
    assert "http://dagster.internal:3000" in str(raised.value)


@pytest.mark.parametrize(("answer", "expected"), [
    (FakeResponse({}, status_code=502), "HTTP 502"),
    (FakeResponse(ValueError("not json")), "did not answer JSON"),
    ({"errors": [{"message": "Cannot query field 'nope'"}]}, "Cannot query field"),
])
def test_bad_answers_are_clear_errors(answer: Any, expected: str) -> None:
    with pytest.raises(ControlError, match=expected):
        _control(FakeSession(answer)).run("r1")


def _backfill(status: str, materialized: int, failed: int = 0) -> dict[str, Any]:
    counts = [{"assetKey": {"path": ["salesforce", t]}, "numPartitionsTargeted": 3,
               "numPartitionsInProgress": 3 - materialized - failed,
               "numPartitionsMaterialized": materialized, "numPartitionsFailed": failed}
              for t in ("accounts", "contacts")]
    return {"data": {"partitionBackfillOrError": {
        "__typename": "PartitionBackfill", "id": "b1", "status": status, "numPartitions": 3,
        "error": None, "assetBackfillData": {"assetBackfillStatuses": counts}}}}


def test_wait_for_backfill_reports_progress_until_done() -> None:
    session = FakeSession(_backfill("REQUESTED", 0), _backfill("REQUESTED", 2),
                          _backfill("COMPLETED_SUCCESS", 3))
    seen: list[int] = []
    sleeps: list[float] = []
    final = _control(session).wait_for_backfill(
        "b1", on_progress=lambda p: seen.append(p.finished_partitions), sleep=sleeps.append)
    assert seen == [0, 2, 3]
    assert len(sleeps) == 2
    assert final.succeeded
    assert final.materialized == 3
    assert final.failed == 0


def test_a_backfill_with_a_failed_partition_did_not_succeed() -> None:
    final = _control(FakeSession(_backfill("COMPLETED_FAILED", 2, failed=1))).backfill("b1")
    assert final.done
    assert not final.succeeded
    assert final.finished_partitions == 3


def test_wait_for_run_follows_status_changes() -> None:
    def run(status: str, steps: list[dict[str, str]] | None = None) -> dict[str, Any]:
        return {"data": {"runOrError": {"__typename": "Run", "runId": "r1", "status": status,
                                        "startTime": 10.0, "endTime": 12.5,
                                        "stepStats": steps or []}}}
    session = FakeSession(run("QUEUED"), run("QUEUED"), run("STARTED"), run(
        "FAILURE", [{"stepKey": "salesforce__accounts.retrieve", "status": "FAILURE"}]))
    changes: list[str] = []
    outcome = _control(session).wait_for_run("r1", on_change=lambda o: changes.append(o.status),
                                             sleep=lambda _: None)
    assert changes == ["QUEUED", "STARTED", "FAILURE"]
    assert not outcome.succeeded
    assert outcome.failed_steps == ("salesforce__accounts.retrieve",)
    assert outcome.seconds == 2.5


@pytest.mark.parametrize("make", [
    lambda: retrieve_run_config("salesforce", ["accounts", "contacts", "deals", "tickets",
                                               "tasks"], full=True, since="2020-01-01"),
    lambda: retrieve_run_config("salesforce", ["contacts"], full=True),
])
def test_run_config_matches_the_jobs_config_schema(make: Callable[[], dict[str, Any]]) -> None:
    """The client builds config without importing dagster; the job must accept it."""
    job = build_definitions().resolve_job_def("salesforce_sync")
    config = make()
    resolved = validate_run_config(job, config)["ops"]
    assert resolved["salesforce__contacts.retrieve_salesforce_contacts"]["config"]["full"] is True


def test_no_config_when_nothing_differs_from_the_defaults() -> None:
    assert retrieve_run_config("salesforce", ["accounts"]) == {}
