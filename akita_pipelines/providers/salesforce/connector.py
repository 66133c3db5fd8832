"""Salesforce REST query connector.

Incremental by ``SystemModstamp`` (indexed, and it also moves on system changes, unlike
``LastModifiedDate``) with a closed lower bound, ordered by ``SystemModstamp, Id`` so that a page's
last modstamp is a safe resume point. ``queryAll`` so deleted rows arrive with ``IsDeleted``.
Salesforce sends no ``expires_in``: an expired session shows up as 401 ``INVALID_SESSION_ID``, on
which we refresh once and retry. ``Sforce-Limit-Info`` drives proactive throttling, since
Salesforce has no 429.

History reads (a first sync, a full re-sync, a backfill) of at least ``bulk_threshold`` records
(integration config, default :data:`BULK_THRESHOLD`; 0 turns bulk off) go through one Bulk API
2.0 query job (:mod:`.bulk`): a few large CSV sets instead of a REST page per 2,000 records.
The size is the ``totalSize`` of the read's first REST page, which a REST read needs anyway:
small reads cost no extra call and keep the quicker REST path (a job is asynchronous and counts
against a daily job allowance); a large one wastes that one page. (A ``SELECT COUNT()`` would
cost a call on every history read, and times out on very large objects.) Increments never
look: they stay on REST ``queryAll``. A job that fails, or no job allowance left, falls back
to REST with a notice.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import requests

from akita_pipelines.core.clock import parse_datetime
from akita_pipelines.core.errors import (
    AkitaError,
    AuthError,
    ConfigError,
    DataError,
    ProviderError,
    RateLimited,
    TokenExpired,
)
from akita_pipelines.providers.auth import OAuth2RefreshGrant
from akita_pipelines.providers.base import ConnectionContext, Page, Stream
from akita_pipelines.providers.http import json_object
from akita_pipelines.providers.salesforce.bulk import (
    FINISHED,
    BulkJobFailed,
    BulkJobGone,
    BulkUnavailable,
    PollTimeout,
    ResultSet,
    job_checkpoint,
    parse_csv,
)

API_VERSION = "v59.0"
#: History reads of at least this many records use a Bulk API 2.0 query job. Below it a
#: REST read is as quick: a job costs a few calls and seconds of polling before any data.
BULK_THRESHOLD = 20_000
#: Records per bulk result set: large sets mean few calls, but each set is held in memory
#: and staged in one transaction.
BULK_SET_SIZE = 10_000
#: How long a job may take before the read gives up (it is aborted; the sync fails as
#: transient and the next one starts over).
BULK_TIMEOUT_SECONDS = 3600.0


def soql_datetime(value: datetime) -> str:
    """A SOQL datetime literal (unquoted, UTC)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _errors(response: requests.Response) -> list[dict[str, Any]]:
    try:
        body = response.json()
    except ValueError:
        return []
    return [e for e in body if isinstance(e, dict)] if isinstance(body, list) else []


def error_hook(response: requests.Response) -> AkitaError | None:
    """Salesforce's error table: its bodies are JSON arrays of ``{message, errorCode}``."""
    codes = {e.get("errorCode") for e in _errors(response)}
    if "INVALID_SESSION_ID" in codes:
        return TokenExpired("Salesforce session expired")
    if "LIMIT_EXCEEDED" in codes:
        # Bulk API 2.0: the org's query jobs for the rolling 24 hours are spent.
        return BulkUnavailable("Salesforce's daily Bulk API 2.0 query job limit is reached",
                               status=response.status_code)
    if codes & {"NOT_FOUND", "INVALIDJOB"} and "/jobs/query/" in response.url:
        # A job Salesforce deleted (7 days after creation) or a locator it no longer knows.
        return BulkJobGone("Salesforce no longer has this Bulk API 2.0 query job or locator",
                           status=response.status_code)
    if "REQUEST_LIMIT_EXCEEDED" in codes:
        messages = " ".join(str(e.get("message", "")) for e in _errors(response))
        if "TotalRequests" in messages:
            # The daily quota: waiting seconds will not help, the next scheduled sync will.
            return RateLimited("Salesforce daily API request limit exceeded",
                               retry_after=24 * 3600)
        # Concurrent long-request limits clear within seconds.
        return RateLimited("Salesforce concurrent request limit exceeded", retry_after=5.0)
    if codes & {"INVALID_FIELD", "INVALID_TYPE", "MALFORMED_QUERY", "INVALIDJOB"}:
        code = sorted(c for c in codes if c)[0]
        return ConfigError(f"Salesforce rejected the query ({code}): check the object and fields")
    if response.status_code in (401, 403):
        return AuthError(f"Salesforce refused the credentials (HTTP {response.status_code})")
    return None


def throttle(response: requests.Response) -> float | None:
    """Slow down when less than 5 % of the daily API budget is left."""
    info = response.headers.get("Sforce-Limit-Info", "")
    for part in info.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "api-usage" and "/" in value:
            used, _, limit = value.partition("/")
            try:
                remaining = int(limit) - int(used)
                if remaining < int(limit) * 0.05:
                    return 1.0
            except ValueError:
                return None
    return None


class SalesforceConnector:
    def __init__(self, ctx: ConnectionContext) -> None:
        base_url = str(ctx.config["base_url"]).rstrip("/")
        self.ctx = ctx
        self.api_version = str(ctx.config.get("api_version", API_VERSION))
        self.oauth = OAuth2RefreshGrant(f"{base_url}/services/oauth2/token", ctx.credentials,
                                        ctx.http)
        self.login_url = base_url
        self.bulk_threshold = int(ctx.config.get("bulk_threshold", BULK_THRESHOLD))
        self.bulk_set_size = int(ctx.config.get("bulk_set_size", BULK_SET_SIZE))
        self.bulk_timeout = float(ctx.config.get("bulk_timeout_seconds", BULK_TIMEOUT_SECONDS))
        self.notices: list[str] = []
        self._describes: dict[str, dict[str, Any]] = {}

    def _instance_url(self) -> str:
        return str(self.ctx.credentials.load().get("instance_url") or self.login_url).rstrip("/")

    def _call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
              body: Any = None, accept: str = "application/json") -> requests.Response:
        """A request with the bearer token: refresh once on an expired session and retry."""
        for attempt in range(2):
            token = self.oauth.access_token()
            if token is None:
                self.oauth.refresh(stale_token=None)
                token = self.oauth.access_token()
            try:
                return self.ctx.http.request(
                    method,
                    self._instance_url() + path,
                    params=params,
                    json=body,
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Sforce-Query-Options": f"batchSize={self.ctx.page_size}",
                        "Accept": accept,
                    },
                    error_hook=error_hook,
                    throttle=throttle,
                )
            except TokenExpired:
                if attempt == 1:
                    raise AuthError("Salesforce session still invalid after a refresh") from None
                self.oauth.refresh(stale_token=token)
        raise AssertionError("unreachable")

    def _get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        """A REST query page."""
        body = json_object(self._call("GET", path, params=params), f"Salesforce page {path}")
        if not isinstance(body.get("records"), list):
            raise DataError(f"Salesforce returned a page without records ({path})")
        return body

    def _where(self, stream: Stream, since: datetime | None) -> str:
        return f" WHERE {stream.cursor_field} >= {soql_datetime(since)}" if since else ""

    def query(self, stream: Stream, since: datetime | None) -> str:
        fields = ", ".join(stream.fields)
        return (f"SELECT {fields} FROM {stream.source_object}{self._where(stream, since)} "
                f"ORDER BY {stream.cursor_field}, {stream.primary_key}")

    def bulk_query(self, stream: Stream, since: datetime | None) -> str:
        """The job's SOQL: Bulk API 2.0 refuses ORDER BY, so none."""
        fields = ", ".join(stream.fields)
        return f"SELECT {fields} FROM {stream.source_object}{self._where(stream, since)}"

    def read_changes(self, stream: Stream, since: datetime | None) -> Iterator[Page]:
        resume = self.ctx.resume
        if resume and resume.get("mode") == "bulk":
            if resume.get("query") == self.bulk_query(stream, since) and \
                    resume.get("api_version") == self.api_version:
                yield from self.read_bulk(stream, since, resume)
                return
            self.notices.append("an interrupted Bulk API read was for another query; "
                                "read again from the last stored checkpoint")
        first = self._get(f"/services/data/{self.api_version}/queryAll",
                          {"q": self.query(stream, since)})
        if (self.ctx.history and 0 < self.bulk_threshold <= int(first.get("totalSize") or 0)
                and not first.get("done", True)):
            yield from self.read_bulk(stream, since, None)
            return
        yield from self.read_rest(stream, since, first)

    def read_rest(self, stream: Stream, since: datetime | None,
                  first: dict[str, Any] | None = None) -> Iterator[Page]:
        """Pages of REST ``queryAll`` in modstamp order, each its own resume point."""
        body = first if first is not None else self._get(
            f"/services/data/{self.api_version}/queryAll", {"q": self.query(stream, since)})
        while True:
            records: list[dict[str, Any]] = body["records"]
            checkpoint = None
            if records:
                stamp = records[-1].get(stream.cursor_field)
                if isinstance(stamp, str):
                    checkpoint = parse_datetime(stamp)
            yield Page(records=records, checkpoint=checkpoint)
            if body.get("done", True):
                return
            next_url = body.get("nextRecordsUrl")
            if not isinstance(next_url, str):
                raise ProviderError("Salesforce page has done=false but no nextRecordsUrl")
            body = self._get(next_url)

    # -- Bulk API 2.0 -------------------------------------------------------------------
    def _jobs(self, suffix: str = "") -> str:
        return f"/services/data/{self.api_version}/jobs/query{suffix}"

    def read_bulk(self, stream: Stream, since: datetime | None,
                  resume: Mapping[str, Any] | None = None) -> Iterator[Page]:
        """Pages of one Bulk API 2.0 query job's result sets (``resume``: continue the job a
        killed read staged up to); REST pages when no job can be had."""
        state = self._open_job(stream, since, resume)
        if state is None:
            yield from self.read_rest(stream, since)
            return
        kinds = self._column_kinds(stream)
        while True:
            try:
                result = self._results(state["job"], state["locator"], stream, kinds)
            except BulkJobGone:
                if state["locator"] is None:
                    raise  # a job just created: not an expiry, do not loop
                self.notices.append(f"Bulk API job {state['job']} expired before the read "
                                    "finished; a new job reads again from the last stored "
                                    "checkpoint")
                state = self._open_job(stream, since, None)
                if state is None:
                    yield from self.read_rest(stream, since)
                    return
                continue
            # Datetime columns are all in REST's one rendering (UTC, milliseconds, +0000), so
            # text order is time order.
            stamps = [r[stream.cursor_field] for r in result.records
                      if isinstance(r.get(stream.cursor_field), str)]
            if stamps:
                newest = max(stamps)
                if state["max_stamp"] is None or newest > state["max_stamp"]:
                    state["max_stamp"] = newest
            if result.next_locator is None:
                yield Page(records=result.records,
                           checkpoint=job_checkpoint(state["max_stamp"], state["created"]),
                           resume=None)
                self._delete_job(state["job"])
                return
            state["locator"] = result.next_locator
            # Unordered rows: this set's modstamps are no resume point, the locator is.
            yield Page(records=result.records, checkpoint=None, resume=dict(state))

    def _open_job(self, stream: Stream, since: datetime | None,
                  resume: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The read's state: the interrupted job's (when Salesforce still has it) or a new,
        completed job's; None when no job can serve the read (then REST does)."""
        if resume is not None:
            try:
                self._wait_for(str(resume["job"]))
                return dict(resume)
            except (BulkJobGone, BulkJobFailed):
                # Deleted, expired or aborted by someone else: its results are gone.
                self.notices.append(f"Bulk API job {resume['job']} is gone (expired, deleted "
                                    "or aborted) before the read finished; a new job reads "
                                    "again from the last stored checkpoint")
        soql = self.bulk_query(stream, since)
        try:
            job = self._create_job(soql)
            self._wait_for(job["id"])
        except (BulkUnavailable, BulkJobFailed) as exc:
            self.notices.append(f"{exc}: read through REST instead")
            return None
        return {"mode": "bulk", "job": job["id"], "query": soql, "api_version": self.api_version,
                "created": job.get("createdDate"), "locator": None, "max_stamp": None}

    def _create_job(self, soql: str) -> dict[str, Any]:
        response = self._call("POST", self._jobs(),
                              body={"operation": "queryAll", "query": soql,
                                    "contentType": "CSV", "columnDelimiter": "COMMA",
                                    "lineEnding": "LF"})
        job = json_object(response, "Salesforce Bulk API job")
        if not isinstance(job.get("id"), str):
            raise DataError("Salesforce created a Bulk API job without an id")
        return job

    def _wait_for(self, job_id: str) -> dict[str, Any]:
        """Poll the job until it finishes (backing off to 10 s between polls)."""
        delay, waited = 0.2, 0.0
        while True:
            info = json_object(self._call("GET", self._jobs(f"/{job_id}")),
                               "Salesforce Bulk API job")
            state = info.get("state")
            if state == "JobComplete":
                return info
            if state in FINISHED:
                raise BulkJobFailed(f"Salesforce Bulk API job {job_id} ended {state}: "
                                    f"{str(info.get('errorMessage') or '')[:200]}")
            if waited >= self.bulk_timeout:
                self._call("PATCH", self._jobs(f"/{job_id}"), body={"state": "Aborted"})
                raise PollTimeout(f"Salesforce Bulk API job {job_id} still {state} after "
                                  f"{waited:.0f} s; aborted")
            self.ctx.http.sleep(delay)
            waited += delay
            delay = min(delay * 1.5, 10.0)

    def _results(self, job_id: str, locator: str | None, stream: Stream,
                 kinds: Mapping[str, str]) -> ResultSet:
        params: dict[str, Any] = {"maxRecords": self.bulk_set_size}
        if locator:
            params["locator"] = locator
        response = self._call("GET", self._jobs(f"/{job_id}/results"), params=params,
                              accept="text/csv")
        records = parse_csv(response.text, sobject=stream.source_object,
                            api_version=self.api_version, kinds=kinds)
        announced = response.headers.get("Sforce-NumberOfRecords")
        if announced is not None and announced.isdigit() and int(announced) != len(records):
            raise DataError(f"Salesforce announced {announced} records in a Bulk API result "
                            f"set but sent {len(records)}")
        following = response.headers.get("Sforce-Locator")
        return ResultSet(records, None if following in (None, "", "null") else following)

    def _delete_job(self, job_id: str) -> None:
        """Free the job's stored results; a failure here loses nothing (Salesforce deletes
        jobs after 7 days anyway)."""
        try:
            self._call("DELETE", self._jobs(f"/{job_id}"))
        except AkitaError:
            self.notices.append(f"Bulk API job {job_id} could not be deleted; Salesforce "
                                "removes it after 7 days")

    def _describe(self, sobject: str) -> dict[str, Any]:
        if sobject not in self._describes:
            self._describes[sobject] = json_object(
                self._call("GET", f"/services/data/{self.api_version}/sobjects/{sobject}/"
                                  "describe"), f"Salesforce describe {sobject}")
        return self._describes[sobject]

    def _column_kinds(self, stream: Stream) -> dict[str, str]:
        """Each selected field's describe type; ``Rel.Field`` through the parent's describe."""
        fields = {f["name"]: f for f in self._describe(stream.source_object).get("fields", [])
                  if isinstance(f, dict) and "name" in f}
        kinds: dict[str, str] = {}
        for column in stream.fields:
            relation, _, field = column.partition(".")
            if not field:
                kinds[column] = str(fields.get(column, {}).get("type", "string"))
                continue
            lookup = next((f for f in fields.values() if f.get("relationshipName") == relation),
                          None)
            parents = (lookup or {}).get("referenceTo") or []
            parent_fields = {f["name"]: f for f in self._describe(str(parents[0])).get(
                "fields", []) if isinstance(f, dict) and "name" in f} if parents else {}
            kinds[column] = str(parent_fields.get(field, {}).get("type", "string"))
        return kinds
