"""A small client for the Dagster webserver's GraphQL API: launch runs and backfills, follow them.

Field and mutation names are those of dagster-graphql 1.13 (``launchRun``,
``launchPartitionBackfill``, ``runOrError``, ``partitionBackfillOrError``, ``assetNodes``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests

from akita_pipelines.core.errors import AkitaError

DEFAULT_URL = "http://127.0.0.1:3000"
#: The code location of workspace.yaml and its (only) repository.
LOCATION_NAME = "akita_pipelines"
REPOSITORY_NAME = "__repository__"

#: Run statuses after which a run never changes again.
RUN_DONE = frozenset({"SUCCESS", "FAILURE", "CANCELED"})
#: Backfill statuses after which the daemon launches nothing more.
BACKFILL_DONE = frozenset({"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED",
                           "CANCELED"})

# Every mutation answers with a union: the success type or one of several error types.
_ERROR_FIELDS = """
    ... on Error { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { stepKey invalidOutputName }
    ... on RunConfigValidationInvalid { errors { message } }
"""

LAUNCH_RUN = """
mutation LaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
""" + _ERROR_FIELDS + """
  }
}
"""

LAUNCH_BACKFILL = """
mutation LaunchBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PartitionKeysNotFoundError { partitionKeys }
""" + _ERROR_FIELDS + """
  }
}
"""

RUN_STATUS = """
query RunStatus($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId status startTime endTime stepStats { stepKey status } }
    ... on Error { message }
  }
}
"""

BACKFILL_STATUS = """
query BackfillStatus($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill {
      id status numPartitions
      error { message }
      assetBackfillData {
        assetBackfillStatuses {
          ... on AssetPartitionsStatusCounts {
            assetKey { path }
            numPartitionsTargeted numPartitionsInProgress
            numPartitionsMaterialized numPartitionsFailed
          }
        }
      }
    }
    ... on Error { message }
  }
}
"""

GROUP_ASSETS = """
query GroupAssets($group: AssetGroupSelector!) {
  assetNodes(group: $group) { assetKey { path } isPartitioned }
}
"""


class ControlError(AkitaError):
    """The webserver is unreachable or refused the request; the message says why."""


@dataclass(frozen=True)
class RunOutcome:
    """A run as the webserver reports it."""

    run_id: str
    status: str
    start_time: float | None = None
    end_time: float | None = None
    failed_steps: tuple[str, ...] = ()

    @property
    def done(self) -> bool:
        return self.status in RUN_DONE

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCESS"

    @property
    def seconds(self) -> float | None:
        if self.start_time is None or self.end_time is None:
            return None
        return self.end_time - self.start_time


@dataclass(frozen=True)
class BackfillProgress:
    """Partition counts of an asset backfill.

    A partition counts as done once every selected asset of it is materialised or failed
    (a failed asset also fails its downstream assets in the backfill).
    """

    backfill_id: str
    status: str
    num_partitions: int
    materialized: int = 0
    failed: int = 0
    in_progress: int = 0
    error: str | None = None
    by_asset: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.status in BACKFILL_DONE

    @property
    def finished_partitions(self) -> int:
        return min(self.num_partitions, self.materialized + self.failed)

    @property
    def succeeded(self) -> bool:
        return self.status in ("COMPLETED", "COMPLETED_SUCCESS") and self.failed == 0


def safe_url(url: str) -> str:
    """``scheme://host:port/path`` without user info or query (they may carry secrets)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _message(payload: Mapping[str, Any]) -> str:
    """One line from a GraphQL error type of the launch unions."""
    kind = str(payload.get("__typename", "error"))
    if payload.get("message"):
        detail = str(payload["message"]).strip().splitlines()[0]
    elif "invalidStepKey" in payload:
        detail = f"no step {payload['invalidStepKey']!r}"
    elif "invalidOutputName" in payload:
        detail = f"no output {payload['invalidOutputName']!r} on {payload.get('stepKey')}"
    elif payload.get("errors"):
        detail = "; ".join(str(e.get("message", "")) for e in payload["errors"])
    else:
        detail = "no detail"
    if payload.get("partitionKeys"):
        detail += f" ({', '.join(payload['partitionKeys'])})"
    return f"{kind}: {detail}"


def retrieve_run_config(provider: str, types: Iterable[str], *, full: bool = False,
                        since: str | None = None) -> dict[str, Any]:
    """Run config for the ``retrieve_<provider>_<type>`` op inside each ``<provider>/<type>``
    graph asset (``RetrieveConfig`` in defs/assets.py); empty when nothing differs from the
    defaults, so the run's config stays clean."""
    config: dict[str, Any] = {}
    if full:
        config["full"] = True
    if since:
        config["since"] = since
    if not config:
        return {}
    return {"ops": {f"{provider}__{t}": {"ops": {f"retrieve_{provider}_{t}": {"config": config}}}
                    for t in types}}


def _tags(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in tags.items()]


def check_url(url: str) -> str:
    """``url`` if it is an http(s) URL with a host; a clear error otherwise."""
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ControlError(f"--url {url!r} is not a webserver URL: give scheme, host and port, "
                           f"e.g. {DEFAULT_URL}")
    return url


class DagsterControl:
    """Talks to one Dagster webserver.

    Args:
        url: The webserver's base URL (``http://host:port`` plus any path prefix).
        timeout: Seconds per HTTP request.
        session: A ``requests.Session`` (tests pass a fake one).
        location: Code location name (workspace.yaml).
        repository: Repository name inside the location.
    """

    def __init__(self, url: str = DEFAULT_URL, *, timeout: float = 30.0,
                 session: requests.Session | None = None, location: str = LOCATION_NAME,
                 repository: str = REPOSITORY_NAME) -> None:
        self.url = check_url(url).rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        self.location = location
        self.repository = repository

    def ui_url(self, path: str) -> str:
        """A link into the UI for people, e.g. ``ui_url('/runs/<id>')``."""
        return safe_url(self.url) + path

    def execute(self, query: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        """POST one GraphQL document; return ``data`` or raise :class:`ControlError`."""
        where = safe_url(self.url)
        try:
            response = self.session.post(f"{self.url}/graphql",
                                         json={"query": query, "variables": dict(variables)},
                                         timeout=self.timeout)
        except requests.ConnectionError:
            raise ControlError(f"the Dagster webserver at {where} is unreachable: start it "
                               f"(`make run`) or pass --url") from None
        except requests.Timeout:
            raise ControlError(f"the Dagster webserver at {where} did not answer within "
                               f"{self.timeout:g} s") from None
        except requests.RequestException as exc:
            raise ControlError(f"cannot reach the Dagster webserver at {where}: "
                               f"{type(exc).__name__}") from None
        if response.status_code != 200:
            raise ControlError(f"the Dagster webserver at {where} answered HTTP "
                               f"{response.status_code} to a GraphQL request")
        try:
            body = response.json()
        except ValueError:
            raise ControlError(f"{where}/graphql did not answer JSON: is this a Dagster "
                               f"webserver?") from None
        if body.get("errors"):
            first = body["errors"][0].get("message", "unknown error")
            raise ControlError(f"GraphQL error from {where}: {first}")
        data = body.get("data")
        if not isinstance(data, dict):
            raise ControlError(f"GraphQL answer from {where} has no data")
        return data

    def _selector(self, job_name: str, asset_keys: Sequence[Sequence[str]] | None
                  ) -> dict[str, Any]:
        selector: dict[str, Any] = {"repositoryLocationName": self.location,
                                    "repositoryName": self.repository, "jobName": job_name}
        if asset_keys:
            selector["assetSelection"] = [{"path": list(k)} for k in asset_keys]
        return selector

    def group_assets(self, group: str) -> list[list[str]]:
        """Keys of the partitioned assets of an asset group (a provider's group)."""
        data = self.execute(GROUP_ASSETS, {"group": {
            "groupName": group, "repositoryName": self.repository,
            "repositoryLocationName": self.location}})
        return [list(n["assetKey"]["path"]) for n in data["assetNodes"] if n["isPartitioned"]]

    def launch_run(self, *, job_name: str, partition_key: str, tags: Mapping[str, str],
                   run_config: Mapping[str, Any] | None = None,
                   asset_keys: Sequence[Sequence[str]] | None = None) -> str:
        """Queue a run of one partition of a job (optionally a subset of its assets).

        Returns:
            The run id.
        """
        params = {
            "selector": self._selector(job_name, asset_keys),
            "runConfigData": dict(run_config or {}),
            "executionMetadata": {"tags": _tags({**tags, "dagster/partition": partition_key})},
        }
        result = self.execute(LAUNCH_RUN, {"executionParams": params})["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise ControlError(f"the run was not launched: {_message(result)}")
        return str(result["run"]["runId"])

    def launch_backfill(self, *, asset_keys: Sequence[Sequence[str]],
                        partition_keys: Sequence[str], tags: Mapping[str, str],
                        run_config: Mapping[str, Any] | None = None,
                        title: str | None = None) -> str:
        """Start an asset backfill of the given partitions; the daemon launches its runs.

        Returns:
            The backfill id.
        """
        params: dict[str, Any] = {
            "assetSelection": [{"path": list(k)} for k in asset_keys],
            "partitionNames": list(partition_keys),
            "tags": _tags(tags),
            "runConfigData": dict(run_config or {}),
        }
        if title:
            params["title"] = title
        result = self.execute(LAUNCH_BACKFILL, {"backfillParams": params})
        launched = result["launchPartitionBackfill"]
        if launched["__typename"] != "LaunchBackfillSuccess":
            raise ControlError(f"the backfill was not launched: {_message(launched)}")
        return str(launched["backfillId"])

    def run(self, run_id: str) -> RunOutcome:
        """The run's status now."""
        found = self.execute(RUN_STATUS, {"runId": run_id})["runOrError"]
        if found["__typename"] != "Run":
            raise ControlError(f"run {run_id}: {_message(found)}")
        failed = tuple(s["stepKey"] for s in found.get("stepStats") or ()
                       if s.get("status") == "FAILURE")
        return RunOutcome(run_id=run_id, status=str(found["status"]),
                          start_time=found.get("startTime"), end_time=found.get("endTime"),
                          failed_steps=failed)

    def backfill(self, backfill_id: str) -> BackfillProgress:
        """The backfill's status and partition counts now."""
        found = self.execute(BACKFILL_STATUS, {"backfillId": backfill_id})
        bf = found["partitionBackfillOrError"]
        if bf["__typename"] != "PartitionBackfill":
            raise ControlError(f"backfill {backfill_id}: {_message(bf)}")
        statuses = [s for s in ((bf.get("assetBackfillData") or {})
                                .get("assetBackfillStatuses") or ()) if "assetKey" in s]
        by_asset = {"/".join(s["assetKey"]["path"]): {
            "targeted": s["numPartitionsTargeted"], "in_progress": s["numPartitionsInProgress"],
            "materialized": s["numPartitionsMaterialized"], "failed": s["numPartitionsFailed"],
        } for s in statuses}
        counts = list(by_asset.values())
        return BackfillProgress(
            backfill_id=backfill_id, status=str(bf["status"]),
            num_partitions=int(bf.get("numPartitions") or 0),
            # The least advanced asset says how many partitions are complete.
            materialized=min((c["materialized"] for c in counts), default=0),
            failed=max((c["failed"] for c in counts), default=0),
            in_progress=max((c["in_progress"] for c in counts), default=0),
            error=((bf.get("error") or {}).get("message") or None),
            by_asset=by_asset)

    def wait_for_run(self, run_id: str, *, poll_seconds: float = 1.0,
                     timeout_seconds: float | None = None,
                     on_change: Callable[[RunOutcome], None] | None = None,
                     sleep: Callable[[float], None] = time.sleep) -> RunOutcome:
        """Poll until the run is done (or the timeout passes: :class:`ControlError`);
        ``on_change`` hears of each new status."""
        last: str | None = None

        def seen(outcome: RunOutcome) -> None:
            nonlocal last
            if outcome.status != last and on_change is not None:
                on_change(outcome)
            last = outcome.status

        return _poll(lambda: self.run(run_id), f"run {run_id}", seen, poll_seconds=poll_seconds,
                     timeout_seconds=timeout_seconds, sleep=sleep)

    def wait_for_backfill(self, backfill_id: str, *, poll_seconds: float = 2.0,
                          timeout_seconds: float | None = None,
                          on_progress: Callable[[BackfillProgress], None] | None = None,
                          sleep: Callable[[float], None] = time.sleep) -> BackfillProgress:
        """Poll until the backfill is done, reporting each poll to ``on_progress``."""
        return _poll(lambda: self.backfill(backfill_id), f"backfill {backfill_id}",
                     on_progress or (lambda _: None), poll_seconds=poll_seconds,
                     timeout_seconds=timeout_seconds, sleep=sleep)


_Polled = TypeVar("_Polled", RunOutcome, BackfillProgress)


def _poll(fetch: Callable[[], _Polled], what: str, seen: Callable[[_Polled], None], *,
          poll_seconds: float, timeout_seconds: float | None,
          sleep: Callable[[float], None]) -> _Polled:
    """Fetch until the answer is done, handing each answer to ``seen``; ControlError naming
    ``what`` and its status once ``timeout_seconds`` have passed."""
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    while True:
        answer = fetch()
        seen(answer)
        if answer.done:
            return answer
        if deadline is not None and time.monotonic() > deadline:
            raise ControlError(f"{what} still {answer.status} after {timeout_seconds:g} s")
        sleep(poll_seconds)
