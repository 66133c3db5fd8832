"""Zendesk Support incremental export connector.

Tickets and users come from the cursor-based exports (``start_time`` on the first request,
``cursor=<after_cursor>`` after that, until ``end_of_stream``); organizations from the
time-based export (``start_time`` → ``end_time`` / ``end_of_stream``), whose pages overlap on
the boundary second, so records seen at the end of one page are dropped when the next page
repeats them unchanged. When more than a page of organizations share one second (a bulk
import) the time-based export cannot get past it (``end_time`` equals ``start_time``): that
second is then read from the cursor-paginated organization list and the export resumes one
second later.

What is checkpointed: Akita's checkpoint is a datetime, so a page's checkpoint is the latest
change time it holds, never the opaque ``after_cursor``. For tickets that is the larger of
``updated_at`` and ``generated_timestamp``: the export is ordered and filtered by
``generated_timestamp`` (system updates move it, ``updated_at`` stays), so every record not yet
served lies at or after it, and a ticket whose ``updated_at`` is older than ``start_time``
cannot hold the checkpoint back. Resuming from a timestamp re-reads the boundary second
(``start_time`` is inclusive and whole seconds), which staging dedupes by id and content hash.

Traps handled: ``start_time`` must be at least a minute old (later ones are refused with
"Too recent start_time"), so it is clamped, and a refusal still arriving (clock skew) ends the
read with nothing new rather than failing; the exports allow 10 requests a minute and answer
429 with ``Retry-After``, which the HTTP door honours; next-page URLs from the response are not
followed (the cursor is sent to the configured host, so credentials never leave it).

Auth: ``email`` + ``api_token`` (HTTP Basic ``{email}/token:{api_token}``) or OAuth
(``access_token``, refreshed with ``client_id`` / ``client_secret`` / ``refresh_token`` at
``/oauth/tokens`` before it expires or on 401 ``invalid_token``; rotated refresh tokens are
persisted).
"""

from __future__ import annotations

import base64
import json
import logging
import math
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from akita_pipelines.core.clock import parse_datetime, utcnow
from akita_pipelines.core.errors import (
    AkitaError,
    AuthError,
    ConfigError,
    DataError,
    ProviderError,
    TokenExpired,
)
from akita_pipelines.providers.auth import OAuth2RefreshGrant
from akita_pipelines.providers.base import ConnectionContext, Page, Stream
from akita_pipelines.providers.http import error_body, json_object

log = logging.getLogger(__name__)

#: Zendesk resource → (export kind, path).
EXPORTS: Mapping[str, tuple[str, str]] = {
    "tickets": ("cursor", "/api/v2/incremental/tickets/cursor.json"),
    "users": ("cursor", "/api/v2/incremental/users/cursor.json"),
    "organizations": ("time", "/api/v2/incremental/organizations.json"),
}
MAX_PER_PAGE = 1000
LIST_PAGE_SIZE = 100
#: The API refuses a start_time less than a minute old; one second more absorbs rounding.
MIN_START_AGE = timedelta(seconds=61)
#: Refresh an OAuth access token this long before it expires.
REFRESH_MARGIN = timedelta(seconds=60)


class TooRecentStart(ProviderError):
    """Zendesk refused ``start_time`` as less than a minute old."""


def error_hook(response: requests.Response) -> AkitaError | None:
    """Zendesk's error table: ``{"error": ..., "description": ...}`` bodies."""
    status = response.status_code
    body = error_body(response)
    error = str(body.get("error", ""))
    if status == 401:
        if error == "invalid_token":
            return TokenExpired("Zendesk OAuth access token expired or revoked")
        return AuthError("Zendesk refused the credentials (HTTP 401): check the email and "
                         "API token, or re-authorise the OAuth grant")
    if status == 403:
        return AuthError("Zendesk forbids this export to the credentials' user (HTTP 403): "
                         "incremental exports need an admin")
    if status in (400, 422):
        description = str(body.get("description", ""))
        if "too recent start_time" in description.lower():
            return TooRecentStart("Zendesk refused a start_time less than a minute old",
                                  status=status)
        return ProviderError(f"Zendesk rejected the export request (HTTP {status} "
                             f"{error or 'error'})", status=status)
    return None


def export_start_time(since: datetime | None, now: datetime) -> int:
    """The ``start_time`` for a read from ``since``: whole seconds rounded down, and never
    later than a minute before ``now`` (moving it earlier only re-reads what staging dedupes)."""
    latest = math.floor((now - MIN_START_AGE).timestamp())
    if since is None:
        return 0
    return max(0, min(math.floor(since.timestamp()), latest))


def _change_times(record: Any) -> Iterator[datetime]:
    if not isinstance(record, dict):
        return
    stamp = record.get("updated_at")
    if isinstance(stamp, str):
        try:
            yield parse_datetime(stamp)
        except ValueError:
            pass
    generated = record.get("generated_timestamp")
    if isinstance(generated, int) and not isinstance(generated, bool):
        yield datetime.fromtimestamp(generated, UTC)


def export_checkpoint(records: list[Any]) -> datetime | None:
    """The latest change time on a page: ``updated_at`` or, for tickets, the later
    ``generated_timestamp`` the export is ordered by. Unreadable records are skipped (they are
    quarantined, and hold the checkpoint back, in the retriever)."""
    return max((t for record in records for t in _change_times(record)), default=None)


def _second(record: Any) -> int | None:
    stamp = record.get("updated_at") if isinstance(record, dict) else None
    if not isinstance(stamp, str):
        return None
    try:
        return math.floor(parse_datetime(stamp).timestamp())
    except ValueError:
        return None


def _fingerprint(record: Any) -> tuple[str, str] | None:
    if not isinstance(record, dict) or "id" not in record:
        return None
    return str(record["id"]), json.dumps(record, sort_keys=True, default=str)


class ZendeskConnector:
    """Reads organizations, users and tickets through Zendesk's incremental exports."""

    def __init__(self, ctx: ConnectionContext) -> None:
        self.ctx = ctx
        self.base_url = str(ctx.config["base_url"]).rstrip("/")
        credentials = ctx.credentials.load()
        if credentials.get("email") and credentials.get("api_token"):
            self.mode = "api_token"
        elif credentials.get("access_token") or credentials.get("refresh_token"):
            self.mode = "oauth"
        else:
            raise ConfigError("Zendesk credentials need email and api_token, or an OAuth "
                              "access_token / refresh_token with client_id and client_secret")
        self.oauth = OAuth2RefreshGrant(f"{self.base_url}/oauth/tokens", ctx.credentials,
                                        ctx.http)

    # -- auth -------------------------------------------------------------------------------
    def _refresh(self, stale_token: str | None) -> None:
        current = self.oauth.refresh(stale_token=stale_token)
        if current.get("access_token") == stale_token:
            return
        expires_in = current.get("expires_in")
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            expires_at = (utcnow() + timedelta(seconds=float(expires_in))).isoformat()
            token = current.get("access_token")

            def stamp(creds: dict[str, Any]) -> dict[str, Any]:
                # Only for the token just issued: another run may have refreshed meanwhile.
                return {**creds, "expires_at": expires_at} \
                    if creds.get("access_token") == token else creds
            self.ctx.credentials.update(stamp)

    def _authorization(self) -> tuple[str, str | None]:
        """The Authorization header, and the OAuth token in it (None for an API token)."""
        credentials = self.ctx.credentials.load()
        if self.mode == "api_token":
            pair = f"{credentials['email']}/token:{credentials['api_token']}"
            return "Basic " + base64.b64encode(pair.encode()).decode(), None
        token = credentials.get("access_token")
        expires_at = credentials.get("expires_at")
        due = False
        if isinstance(expires_at, str):
            try:
                due = parse_datetime(expires_at) - REFRESH_MARGIN <= utcnow()
            except ValueError:
                due = False
        if not token or due:
            self._refresh(stale_token=str(token) if token else None)
            token = self.ctx.credentials.load().get("access_token")
        return f"Bearer {token}", str(token)

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        """GET an export page: refresh an expired OAuth token once and retry."""
        for attempt in range(2):
            header, token = self._authorization()
            try:
                response = self.ctx.http.request(
                    "GET", self.base_url + path, params=params,
                    headers={"Authorization": header, "Accept": "application/json"},
                    error_hook=error_hook)
            except TokenExpired:
                if self.mode != "oauth" or attempt == 1:
                    raise AuthError("Zendesk still refuses the OAuth token after a refresh: "
                                    "re-authorise the integration") from None
                self._refresh(stale_token=token)
                continue
            return json_object(response, f"Zendesk export page {path}")
        raise AssertionError("unreachable")

    @staticmethod
    def _records(body: Mapping[str, Any], resource: str) -> list[Any]:
        records = body.get(resource)
        if not isinstance(records, list):
            raise DataError(f"Zendesk export page has no '{resource}' list")
        return records

    # -- exports ----------------------------------------------------------------------------
    def read_changes(self, stream: Stream, since: datetime | None) -> Iterator[Page]:
        try:
            kind, path = EXPORTS[stream.source_object]
        except KeyError:
            raise ConfigError(f"Zendesk has no incremental export for "
                              f"{stream.source_object!r}") from None
        start = export_start_time(since, utcnow())
        if kind == "cursor":
            yield from self._cursor_export(stream.source_object, path, start)
        else:
            yield from self._time_export(stream.source_object, path, start)

    def _cursor_export(self, resource: str, path: str, start: int) -> Iterator[Page]:
        per_page = str(max(1, min(self.ctx.page_size, MAX_PER_PAGE)))
        params = {"start_time": str(start), "per_page": per_page}
        previous: str | None = None
        while True:
            try:
                body = self._get(path, params)
            except TooRecentStart:
                # Our clock runs ahead of Zendesk's: nothing is old enough to read yet.
                log.warning("Zendesk %s export: start_time %d refused as too recent", resource,
                            start)
                return
            records = self._records(body, resource)
            yield Page(records=records, checkpoint=export_checkpoint(records))
            if body.get("end_of_stream") is True:
                return
            cursor = body.get("after_cursor")
            if not isinstance(cursor, str) or not cursor:
                raise ProviderError(f"Zendesk {resource} export: end_of_stream is false but "
                                    "there is no after_cursor")
            if cursor == previous and not records:
                raise ProviderError(f"Zendesk {resource} export: the cursor did not advance")
            previous = cursor
            params = {"cursor": cursor, "per_page": per_page}

    def _time_export(self, resource: str, path: str, start: int) -> Iterator[Page]:
        boundary: set[tuple[str, str]] = set()
        while True:
            try:
                body = self._get(path, {"start_time": str(start)})
            except TooRecentStart:
                log.warning("Zendesk %s export: start_time %d refused as too recent", resource,
                            start)
                return
            records = self._records(body, resource)
            # The page starts at the previous page's last second: drop what it repeats.
            fresh = [r for r in records if _fingerprint(r) not in boundary]
            yield Page(records=fresh, checkpoint=export_checkpoint(records))
            if body.get("end_of_stream") is True:
                return
            end_time = body.get("end_time")
            if isinstance(end_time, bool) or not isinstance(end_time, int):
                raise ProviderError(f"Zendesk {resource} export: end_of_stream is false but "
                                    "end_time is missing")
            boundary = {f for f in (_fingerprint(r) for r in records if _second(r) == end_time)
                        if f is not None}
            if end_time > start:
                start = end_time
                continue
            # More than a page shares second `start`: the export would serve this page again
            # forever. Read that second from the full list instead, then go on after it.
            log.warning("Zendesk %s export stuck at start_time %d: reading that second from "
                        "the list endpoint", resource, start)
            yield from self._second_from_list(resource, start, boundary)
            boundary = set()
            start += 1

    def _second_from_list(self, resource: str, second: int,
                          seen: set[tuple[str, str]]) -> Iterator[Page]:
        """The records of ``resource`` last changed in ``second``, from its cursor-paginated
        list (every live record; deleted ones are not listed)."""
        params = {"page[size]": str(LIST_PAGE_SIZE)}
        while True:
            body = self._get(f"/api/v2/{resource}.json", params)
            records = [r for r in self._records(body, resource)
                       if _second(r) == second and _fingerprint(r) not in seen]
            yield Page(records=records, checkpoint=export_checkpoint(records))
            meta = body.get("meta")
            if not isinstance(meta, dict) or meta.get("has_more") is not True:
                return
            after = meta.get("after_cursor")
            if not isinstance(after, str) or not after:
                raise ProviderError(f"Zendesk {resource} list: has_more without after_cursor")
            params = {"page[size]": str(LIST_PAGE_SIZE), "page[after]": after}
