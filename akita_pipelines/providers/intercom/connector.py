"""Intercom connector: contact and conversation search, the company scroll.

Contacts and conversations come from ``POST /{contacts|conversations}/search`` with an
``updated_at >`` filter, sorted ascending on ``updated_at``, the cursor in the body
(``pagination.starting_after``). Intercom matches date filters **by calendar day in the
workspace's time zone** (``>`` starts at the next local day), so the filter names a time on the
local day *before* the cursor's and records older than the cursor are dropped here. The zone
comes from ``GET /me``; without it the query reaches two days back, which covers every zone.

Companies have no change filter: they come from the scroll API, a full pass each sync filtered
here. A workspace holds one scroll at a time (400 ``scroll_exists``: wait for the other to
expire, a minute unused); a scroll unused for a minute, or hit by a 500, is gone (404
``not_found``): start again. Scroll order is not ``updated_at`` order, so only the last page
carries a checkpoint.

Deleted conversations are listed by ``GET /conversations/deleted`` (2.16 on), newest first: read
before the search, they are staged as tombstones. Deleted contacts and companies leave no trace.

Access tokens do not expire; a 401 means the token was revoked: an :class:`AuthError`, and the
integration waits to be authorised again. 429s are retried after ``X-RateLimit-Reset``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Generator, Iterator
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests

from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.errors import (
    AkitaError,
    AuthError,
    ConfigError,
    DataError,
    ProviderError,
    RateLimited,
    TransientError,
)
from akita_pipelines.providers.base import ConnectionContext, Page, Stream
from akita_pipelines.providers.http import error_body, json_object
from akita_pipelines.providers.mapping import iso

log = logging.getLogger(__name__)

API_VERSION = "2.16"
MAX_PER_PAGE = 150
MAX_DELETED_PER_PAGE = 60
#: An unused scroll expires after a minute; wait a little longer for another one to go.
SCROLL_IDLE_SECONDS = 61.0
MAX_SCROLL_RESTARTS = 3
#: Companies per scroll page (observed: 100); a shorter first page is the only page.
SCROLL_PAGE_SIZE = 100
#: Without the workspace's zone: two days back is on an earlier local day in any zone, even
#: across a 25-hour daylight-saving day.
ZONELESS_WIDENING = timedelta(days=2)
#: Stop spending the 10-second window's budget when this few calls are left.
RATE_LIMIT_RESERVE = 2
_AUTH_CODES = {"unauthorized", "token_revoked", "token_not_found", "token_unauthorized",
               "token_suspended"}


class ScrollExpired(ProviderError):
    """The company scroll is gone (expired, finished or killed by a 500): start a new one."""


class ScrollBusy(RateLimited):
    """Another company scroll is open in the workspace; it expires after a minute unused."""


def _error_codes(response: requests.Response) -> set[str]:
    errors = error_body(response).get("errors")
    if not isinstance(errors, list):
        return set()
    return {str(e.get("code")) for e in errors if isinstance(e, dict) and e.get("code")}


def _seconds_until_reset(response: requests.Response) -> float | None:
    """``X-RateLimit-Reset`` is UNIX seconds; Intercom's windows are 10 s, so cap at a minute."""
    value = response.headers.get("X-RateLimit-Reset")
    if value is None:
        return None
    try:
        reset = float(value)
    except ValueError:
        return None
    return max(0.0, min(60.0, reset - utcnow().timestamp()))


def error_hook(response: requests.Response) -> AkitaError | None:
    """Intercom's error table: its bodies are ``error.list`` objects with error codes."""
    codes = _error_codes(response)
    status = response.status_code
    if status == 401 or codes & _AUTH_CODES:
        # Tokens never expire by themselves: this one was revoked (or never valid).
        return AuthError("Intercom refused the access token: the integration needs "
                         "re-authorising")
    if status == 403 or "forbidden" in codes:
        return AuthError("Intercom forbids this request: the app lacks a read permission")
    if status == 429 or "rate_limit_exceeded" in codes:
        wait = _seconds_until_reset(response)
        return RateLimited("Intercom rate limit exceeded",
                           retry_after=max(1.0, wait) if wait is not None else None)
    if "intercom_version_invalid" in codes:
        return ConfigError("Intercom does not serve this request in the configured "
                           "Intercom-Version: check the integration's api_version")
    if "scroll_exists" in codes:
        return ScrollBusy("another company scroll is open in the Intercom workspace",
                          retry_after=SCROLL_IDLE_SECONDS)
    if status == 404 and urlsplit(response.url).path.endswith("/companies/scroll"):
        return ScrollExpired("the Intercom company scroll expired", status=404)
    return None


def throttle(response: requests.Response) -> float | None:
    """Wait for the next window when the current one is nearly spent."""
    value = response.headers.get("X-RateLimit-Remaining")
    if value is None or not value.strip().isdigit():
        return None
    if int(value) > RATE_LIMIT_RESERVE:
        return None
    return _seconds_until_reset(response)


def search_bound(since: datetime, zone: tzinfo | None) -> int:
    """The value for an ``updated_at >`` search filter that finds every change at or after
    ``since``.

    Intercom truncates the value to its calendar day in the workspace's zone and ``>`` starts at
    the next day, so the value must fall on the local day *before* ``since``'s: noon of that
    day, which exists and is unambiguous in every zone.
    """
    if zone is None:
        return math.floor((since - ZONELESS_WIDENING).timestamp())
    day_before = since.astimezone(zone).date() - timedelta(days=1)
    return math.floor(datetime.combine(day_before, time(12), tzinfo=zone).timestamp())


def keep_changed(items: list[Any], since: datetime | None
                 ) -> tuple[list[dict[str, Any]], datetime | None]:
    """Drop records older than ``since`` (the search is day-granular) and stage
    ``updated_at`` as ISO-8601 UTC, as every provider's cursor is staged.

    Returns:
        The records to stage and the latest ``updated_at`` among them. A record without a
        readable ``updated_at`` is kept as it is, for the processor to quarantine.
    """
    kept: list[dict[str, Any]] = []
    latest: datetime | None = None
    for item in items:
        stamp = item.get("updated_at") if isinstance(item, dict) else None
        if isinstance(stamp, int | float) and not isinstance(stamp, bool) \
                and math.isfinite(stamp):
            at = datetime.fromtimestamp(stamp, UTC)
            if since is not None and at < since:
                continue
            item = {**item, "updated_at": iso(at)}
            latest = at if latest is None else max(latest, at)
        kept.append(item)
    return kept, latest


class IntercomConnector:
    def __init__(self, ctx: ConnectionContext) -> None:
        self.ctx = ctx
        self.base_url = str(ctx.config["base_url"]).rstrip("/")
        self.version = str(ctx.config.get("api_version", API_VERSION))
        self._zone: tzinfo | None = None
        self._zone_read = False

    def _call(self, method: str, path: str, *, params: dict[str, str] | None = None,
              body: dict[str, Any] | None = None) -> dict[str, Any]:
        token = self.ctx.credentials.load().get("access_token")
        if not token:
            raise AuthError("the Intercom credentials lack an access_token")
        response = self.ctx.http.request(
            method, self.base_url + path, params=params, json=body,
            headers={"Authorization": f"Bearer {token}", "Intercom-Version": self.version,
                     "Accept": "application/json"},
            error_hook=error_hook, throttle=throttle)
        return json_object(response, f"Intercom {path}")

    def workspace_zone(self) -> tzinfo | None:
        """The workspace's time zone from ``GET /me`` (None when it cannot be told)."""
        if not self._zone_read:
            self._zone_read = True
            try:
                app = self._call("GET", "/me").get("app")
            except ProviderError:
                return None
            name = app.get("timezone") if isinstance(app, dict) else None
            if isinstance(name, str) and name:
                try:
                    self._zone = ZoneInfo(name)
                except (ZoneInfoNotFoundError, ValueError):
                    self._zone = None
        return self._zone

    def read_changes(self, stream: Stream, since: datetime | None) -> Iterator[Page]:
        if stream.source_object == "companies":
            return self._companies(since)
        return self._search(stream.source_object, since)

    # -- search -----------------------------------------------------------------------------
    def _search(self, kind: str, since: datetime | None) -> Iterator[Page]:
        if kind == "conversations" and since is not None:
            # Before the search: a deletion must not fall behind a checkpoint it moves.
            yield from self._deleted_conversations(since)
        list_key = "data" if kind == "contacts" else "conversations"
        bound = 0 if since is None else search_bound(since, self.workspace_zone())
        pagination: dict[str, Any] = {"per_page": max(1, min(MAX_PER_PAGE, self.ctx.page_size))}
        seen: set[str] = set()
        while True:
            # The cursor goes in the body: as a query parameter it is ignored (page 1 again).
            payload = self._call("POST", f"/{kind}/search", body={
                "query": {"field": "updated_at", "operator": ">", "value": bound},
                "sort": {"field": "updated_at", "order": "ascending"},
                "pagination": pagination})
            items = payload.get(list_key)
            if not isinstance(items, list):
                raise DataError(f"Intercom {kind} search page without {list_key!r}")
            records, latest = keep_changed(items, since)
            if records:
                yield Page(records=records, checkpoint=latest)
            pages = payload.get("pages")
            following = pages.get("next") if isinstance(pages, dict) else None
            cursor = following.get("starting_after") if isinstance(following, dict) else None
            if not cursor:
                return
            if str(cursor) in seen:
                raise ProviderError(f"Intercom {kind} search returned the same page cursor "
                                    "twice")
            seen.add(str(cursor))
            pagination = {**pagination, "starting_after": str(cursor)}

    def _deleted_conversations(self, since: datetime) -> Iterator[Page]:
        """Tombstones for the conversations deleted at or after ``since``."""
        page = 1
        while True:
            try:
                payload = self._call("GET", "/conversations/deleted", params={
                    "order": "desc", "per_page": str(MAX_DELETED_PER_PAGE), "page": str(page)})
            except ConfigError:
                log.warning("Intercom-Version %s does not list deleted conversations: "
                            "deletions are not synced", self.version)
                return
            items = payload.get("conversations")
            if not isinstance(items, list):
                raise DataError("Intercom deleted conversations page without 'conversations'")
            tombstones: list[dict[str, Any]] = []
            reached_older = False
            for item in items:
                stamp = item.get("deleted_at") if isinstance(item, dict) else None
                if isinstance(stamp, int) and not isinstance(stamp, bool):
                    at = datetime.fromtimestamp(stamp, UTC)
                    if at < since:
                        reached_older = True  # newest first: the rest is older still
                        continue
                    item = {**item, "updated_at": iso(at)}
                tombstones.append(item)
            if tombstones:
                yield Page(records=tombstones, checkpoint=None)
            pages = payload.get("pages")
            if reached_older or not isinstance(pages, dict) or not pages.get("next"):
                return
            page += 1

    # -- scroll -----------------------------------------------------------------------------
    def _companies(self, since: datetime | None) -> Iterator[Page]:
        vanished_at: int | None = None
        for attempt in range(MAX_SCROLL_RESTARTS + 1):
            vanished_at = yield from self._scroll_once(since, vanished_at)
            if vanished_at is None:
                return
            if attempt == MAX_SCROLL_RESTARTS:
                raise TransientError("the Intercom company scroll kept expiring; the next "
                                     "sync starts it again")
            # Scrolls cannot resume: start over (pages already staged are deduplicated).

    def _scroll_once(self, since: datetime | None, vanished_before: int | None
                     ) -> Generator[Page, None, int | None]:
        """One pass over the scroll.

        Returns:
            None when the pass reached the end; otherwise how many companies it read before
            the scroll vanished (404), for the caller to start again.
        """
        payload = self._call("GET", "/companies/scroll")
        held: list[dict[str, Any]] | None = None
        latest: datetime | None = None
        read = longest = 0
        while True:
            items = payload.get("data")
            if not isinstance(items, list):
                raise DataError("Intercom company scroll page without 'data'")
            if not items:
                break  # the documented end: an empty page, and Intercom closes the scroll
            short = len(items) < (longest or SCROLL_PAGE_SIZE)
            read += len(items)
            longest = max(longest, len(items))
            records, top = keep_changed(items, since)
            if top is not None:
                latest = top if latest is None else max(latest, top)
            if records:
                # Hold one page back so the last one can carry the checkpoint: scroll order is
                # not updated_at order, so only the end of the pass makes it safe.
                if held:
                    yield Page(records=held, checkpoint=None)
                held = records
            param = payload.get("scroll_param")
            if not isinstance(param, str) or not param:
                raise DataError("Intercom company scroll page without 'scroll_param'")
            try:
                payload = self._call("GET", "/companies/scroll", params={"scroll_param": param})
            except ScrollExpired:
                # Workspaces also end a scroll with a 404 after its last, short page. A 404
                # after a full page is an expiry, unless the previous pass met it at the very
                # same place (the companies fill whole pages exactly).
                if short or read == vanished_before:
                    break
                return read
        if held:
            yield Page(records=held, checkpoint=latest)
        return None
