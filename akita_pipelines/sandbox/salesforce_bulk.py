"""Bulk API 2.0 query jobs for the Salesforce emulator.

Written from Salesforce's Bulk API 2.0 developer guide ("Understanding Bulk API 2.0 Query",
"Create a Query Job", "Get Information About a Query Job", "Get Results for a Query Job",
"Abort a Query Job", "Delete a Query Job", "Limits"):

==========================================================  ====================================
``POST /services/data/vNN.N/jobs/query``                    create: ``{"operation": "query" |
                                                            "queryAll", "query": SOQL,
                                                            "columnDelimiter", "lineEnding"}``
``GET /services/data/vNN.N/jobs/query``                     every job of the org
``GET /services/data/vNN.N/jobs/query/<id>``                job info; polling moves the state
                                                            ``UploadComplete`` → ``InProgress``
                                                            → ``JobComplete``
``GET /services/data/vNN.N/jobs/query/<id>/results``        CSV; ``?locator=&maxRecords=``;
                                                            ``Sforce-Locator`` (``null`` after
                                                            the last set) and
                                                            ``Sforce-NumberOfRecords``
``PATCH /services/data/vNN.N/jobs/query/<id>``              ``{"state": "Aborted"}``
``DELETE /services/data/vNN.N/jobs/query/<id>``             204
==========================================================  ====================================

The SOQL is the REST emulator's subset minus what Bulk API 2.0 refuses: ``ORDER BY``,
``LIMIT``, ``OFFSET`` and ``COUNT()`` (``GROUP BY`` and ``TYPEOF`` are outside the subset
anyway). Rows come in Id order, as PK chunking hands them out: not in modstamp order.

CSV as Salesforce writes it: a header row with the requested field names in SELECT order (API
49.0 and later), every value quoted, null as an empty value, booleans ``true`` / ``false``,
datetimes ``2024-01-01T00:00:00.000Z`` (not REST's ``+0000``), a relationship field as a
``Account.Name`` column. The result set is fixed when the job is created. Locators are opaque
strings; results are gzip-compressed when the client accepts it, as Salesforce always does.

Limits: 10,000 query jobs per rolling 24 hours (``DailyBulkV2QueryJobs`` in ``/limits``;
past it, 400 ``LIMIT_EXCEEDED``); jobs are deleted 7 days after creation (then 404
``NOT_FOUND``, as for an unknown id). Results must be read with the API version that created
the job (409 otherwise). Errors are Salesforce's JSON arrays of ``{errorCode, message}``.
"""

from __future__ import annotations

import base64
import binascii
import csv
import gzip
import io
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request, Response

# The org module imports this one: its names are looked up when a request is answered.
from akita_pipelines.sandbox import salesforce as org_api

if TYPE_CHECKING:
    from akita_pipelines.sandbox.salesforce import SalesforceEmulator

OPERATIONS = ("query", "queryAll")
DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^",
              "BACKQUOTE": "`"}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
#: Salesforce returns "as many rows as can be listed" without ``maxRecords``; the emulator
#: stops at this many.
DEFAULT_MAX_RECORDS = 50_000
JOB_LIFESPAN = timedelta(days=7)
DAILY_QUERY_JOBS = 10_000
WINDOW = timedelta(hours=24)
CREATED_BY = "0055g00000000001AAA"


@dataclass
class QueryJob:
    """One Bulk API 2.0 query job and its fixed result set."""

    id: str
    operation: str
    sobject: str
    fields: list[str]
    api_version: str
    delimiter: str
    line_ending: str
    created: datetime
    modified: datetime
    rows: list[tuple[Any, ...]]
    state: str = "UploadComplete"
    polls: int = 0
    error_message: str | None = None
    processing_ms: int = 0
    kinds: list[str] = field(default_factory=list)


def _locator(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def _offset(locator: str) -> int:
    padded = locator + "=" * (-len(locator) % 4)
    try:
        text = base64.b64decode(padded.encode(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError(locator) from None
    if not text.isdigit():
        raise ValueError(locator)
    return int(text)


def _error(status: int, code: str, message: str, headers: Headers) -> Response:
    return Response(json.dumps([{"errorCode": code, "message": message}]), status=status,
                    mimetype="application/json", headers=headers)


class BulkQueryJobs:
    """The org's Bulk API 2.0 query jobs; the org serves auth, limits headers and faults.

    Args:
        org: The Salesforce emulator whose records the jobs read.
        daily_limit: Query jobs allowed per rolling 24 hours.
        polls_to_complete: Job-info requests after which a job is complete (the first one
            shows it ``InProgress``), so clients see each documented state.
    """

    def __init__(self, org: SalesforceEmulator, *, daily_limit: int = DAILY_QUERY_JOBS,
                 polls_to_complete: int = 2) -> None:
        self.org = org
        self.daily_limit = daily_limit
        self.polls_to_complete = polls_to_complete
        self.jobs: OrderedDict[str, QueryJob] = OrderedDict()
        self.created_at: list[datetime] = []
        self._sequence = 0

    # -- Python API ------------------------------------------------------------------------
    def expire(self) -> None:
        """Delete every job now, as Salesforce does seven days after their creation."""
        self.jobs.clear()

    def used_today(self, now: datetime) -> int:
        self.created_at = [t for t in self.created_at if now - t < WINDOW]
        return len(self.created_at)

    # -- HTTP ------------------------------------------------------------------------------
    def dispatch(self, request: Request, version: str, rest: str,
                 headers: Headers) -> Response:
        """Answer ``/jobs/query[/<id>[/results]]`` (``rest`` starts after ``/jobs/query``)."""
        now = self.org.clock()
        for job_id in [j.id for j in self.jobs.values() if now - j.created >= JOB_LIFESPAN]:
            del self.jobs[job_id]
        parts = [p for p in rest.split("/") if p]
        method = request.method
        if not parts:
            if method == "POST":
                return self._create(request, version, headers, now)
            if method == "GET":
                return self._json({"done": True, "nextRecordsUrl": None,
                                   "records": [self._info(j) for j in self.jobs.values()]},
                                  headers)
            return _error(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. "
                          "Allowed are GET,POST", headers)
        job = self.jobs.get(parts[0])
        if job is None or len(parts) > 2 or (len(parts) == 2 and parts[1] != "results"):
            return _error(404, "NOT_FOUND", "The requested resource does not exist", headers)
        if len(parts) == 2:
            if method != "GET":
                return _error(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not "
                              "allowed. Allowed are GET", headers)
            return self._results(request, job, version, headers)
        if method == "GET":
            self._advance(job, now)
            return self._json(self._info(job), headers)
        if method == "PATCH":
            return self._abort(request, job, headers, now)
        if method == "DELETE":
            if job.state == "InProgress":
                return _error(400, "INVALIDJOB", "Job can't be deleted while it's in "
                              "progress: abort it first", headers)
            del self.jobs[job.id]
            return Response(status=204, headers=headers)
        return _error(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. "
                      "Allowed are GET,PATCH,DELETE", headers)

    @staticmethod
    def _json(body: Any, headers: Headers, status: int = 200) -> Response:
        return Response(json.dumps(body), status=status, mimetype="application/json",
                        headers=headers)

    def _create(self, request: Request, version: str, headers: Headers,
                now: datetime) -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _error(400, "INVALIDJOB", "InvalidJob : the request body must be a JSON "
                          "object", headers)
        operation = body.get("operation")
        if operation not in OPERATIONS:
            return _error(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {operation!r}; "
                          "query jobs take 'query' or 'queryAll'", headers)
        soql = body.get("query")
        if not isinstance(soql, str) or not soql.strip():
            return _error(400, "INVALIDJOB", "InvalidJob : a query job needs a 'query'", headers)
        delimiter = body.get("columnDelimiter", "COMMA")
        line_ending = body.get("lineEnding", "LF")
        if delimiter not in DELIMITERS or line_ending not in LINE_ENDINGS:
            return _error(400, "INVALIDJOB", "InvalidJob : unsupported columnDelimiter or "
                          "lineEnding", headers)
        if body.get("contentType", "CSV") != "CSV":
            return _error(400, "INVALIDJOB", "InvalidJob : query results are CSV only", headers)
        try:
            query = org_api.parse_soql(soql)
        except org_api.SoqlError as exc:
            return _error(400, exc.code, str(exc), headers)
        refused = [name for name, used in (("ORDER BY", bool(query.order)),
                                           ("LIMIT", query.limit is not None),
                                           ("OFFSET", bool(query.offset)),
                                           ("COUNT()", query.count_only)) if used]
        if refused:
            return _error(400, "INVALIDJOB", f"InvalidJob : Bulk API 2.0 does not support "
                          f"{', '.join(refused)} in a query job", headers)
        if self.used_today(now) >= self.daily_limit:
            return _error(400, "LIMIT_EXCEEDED", "Max number of Bulk API 2.0 query jobs in a "
                          "24 hour period exceeded", headers)
        self.created_at.append(now)
        self._sequence += 1
        include_deleted = operation == "queryAll"
        records = self.org.objects[query.sobject]
        where = query.where
        rows = [self._row(query.sobject, r, query.fields) for r in records.values()
                if (include_deleted or not r["IsDeleted"]) and (where is None or where(r))]
        job = QueryJob(id=org_api.sf_id("750", self._sequence), operation=operation,
                       sobject=query.sobject, fields=query.fields, api_version=version,
                       delimiter=delimiter, line_ending=line_ending, created=now, modified=now,
                       rows=rows, kinds=[self._kind(query.sobject, f) for f in query.fields])
        if self.org.faults and self.org.faults[0] == "bulk_job_failed":
            self.org.faults.pop(0)
            job.error_message = "Unexpected exception encountered in query processing."
        self.jobs[job.id] = job
        self.org.stats["bulk_jobs"] = self.org.stats.get("bulk_jobs", 0) + 1
        return self._json(self._info(job, created=True), headers)

    def _row(self, sobject: str, record: dict[str, Any], fields: list[str]) -> tuple[Any, ...]:
        values = []
        for name in fields:
            relation, _, parent_field = name.partition(".")
            if parent_field:
                parent = self.org.parent_of(sobject, record, relation)
                values.append(None if parent is None else parent.get(parent_field))
            else:
                values.append(record.get(name))
        return tuple(values)

    @staticmethod
    def _kind(sobject: str, name: str) -> str:
        return org_api.FIELD_TYPES.get(name.rpartition(".")[2], "string")

    def _advance(self, job: QueryJob, now: datetime) -> None:
        if job.state not in ("UploadComplete", "InProgress"):
            return
        job.polls += 1
        job.modified = now
        if job.polls >= self.polls_to_complete:
            job.state = "Failed" if job.error_message else "JobComplete"
            job.processing_ms = 5 + len(job.rows) // 1000
        else:
            job.state = "InProgress"

    def _info(self, job: QueryJob, created: bool = False) -> dict[str, Any]:
        info: dict[str, Any] = {
            "id": job.id, "operation": job.operation, "object": job.sobject,
            "createdById": CREATED_BY, "createdDate": org_api.sf_datetime(job.created),
            "systemModstamp": org_api.sf_datetime(job.modified), "state": job.state,
            "concurrencyMode": "Parallel", "contentType": "CSV",
            "apiVersion": float(job.api_version), "lineEnding": job.line_ending,
            "columnDelimiter": job.delimiter}
        if created:
            return info
        info.update({"jobType": "V2Query", "numberRecordsProcessed":
                     len(job.rows) if job.state == "JobComplete" else 0,
                     "retries": 0, "totalProcessingTime": job.processing_ms,
                     "isPkChunkingSupported": True})
        if job.state == "Failed":
            info["errorMessage"] = job.error_message
        return info

    def _abort(self, request: Request, job: QueryJob, headers: Headers,
               now: datetime) -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or body.get("state") != "Aborted":
            return _error(400, "INVALIDJOB", "InvalidJob : a query job can only be set to "
                          "'Aborted'", headers)
        if job.state not in ("UploadComplete", "InProgress"):
            return _error(400, "INVALIDJOB", f"InvalidJob : Job is in state {job.state} and "
                          "can't be aborted", headers)
        job.state, job.modified = "Aborted", now
        return self._json(self._info(job, created=True), headers)

    def _results(self, request: Request, job: QueryJob, version: str,
                 headers: Headers) -> Response:
        if version != job.api_version:
            return _error(409, "INVALIDJOB", "InvalidJob : results must be requested with the "
                          f"API version that created the job (v{job.api_version})", headers)
        if job.state != "JobComplete":
            status = {"UploadComplete": "UPLOAD_COMPLETE", "InProgress": "IN_PROGRESS",
                      "Aborted": "ABORTED", "Failed": "FAILED"}[job.state]
            return _error(400, "JOB_NOT_COMPLETE", "can only download query results of "
                          "successfully completed bulk job with status: JOB_COMPLETE. "
                          f"Current status: {status}", headers)
        try:
            offset = _offset(request.args["locator"]) if request.args.get("locator") else 0
            limit = int(request.args.get("maxRecords", DEFAULT_MAX_RECORDS))
        except ValueError:
            return _error(400, "INVALIDJOB", "InvalidJob : invalid locator or maxRecords",
                          headers)
        if limit <= 0 or offset > len(job.rows):
            return _error(400, "INVALIDJOB", "InvalidJob : invalid locator or maxRecords",
                          headers)
        rows = job.rows[offset:offset + limit]
        after = offset + len(rows)
        text = self._csv(job, rows)
        out = Headers(headers)
        out["Sforce-Locator"] = _locator(after) if after < len(job.rows) else "null"
        out["Sforce-NumberOfRecords"] = str(len(rows))
        data = text.encode("utf-8")
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            data = gzip.compress(data, compresslevel=1)
            out["Content-Encoding"] = "gzip"
        self.org.stats["bulk_result_sets"] = self.org.stats.get("bulk_result_sets", 0) + 1
        return Response(data, status=200, content_type="text/csv; charset=UTF-8", headers=out)

    @staticmethod
    def _csv(job: QueryJob, rows: list[tuple[Any, ...]]) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=DELIMITERS[job.delimiter],
                            lineterminator=LINE_ENDINGS[job.line_ending],
                            quoting=csv.QUOTE_ALL)
        writer.writerow(job.fields)
        kinds = job.kinds
        for row in rows:
            writer.writerow([_cell(kind, value) for kind, value in zip(kinds, row, strict=True)])
        return buffer.getvalue()


def _cell(kind: str, value: Any) -> str:
    """A value as Bulk API 2.0 CSV shows it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if kind == "datetime" and isinstance(value, str) and value.endswith("+0000"):
        return value[:-5] + "Z"
    if isinstance(value, int | float):
        return json.dumps(value)
    return str(value)
