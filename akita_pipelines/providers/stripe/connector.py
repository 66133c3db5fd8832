"""Stripe connector: full reads from the newest-first lists, changes from ``/v1/events``.

Stripe objects carry no "last modified" field and lists come newest first, so a list cannot be
read incrementally. Changes come from the events feed instead (``customer.*``,
``customer.subscription.*``, ``invoice.*``), which Stripe keeps for 30 days only:

* **Incremental** (the cursor is inside the retention): events from the cursor on, read in
  ascending ``created`` windows. Each window is paged newest first to its end, reduced to the
  newest event per object (whose ``data.object`` is the object's state after its last change)
  and handed on with the window's end as its checkpoint, so a crash resumes at the last
  finished window.
* **Full read** (no cursor yet, or a cursor older than the retention, whose changes Stripe no
  longer has): the whole list, then the deletion events the retention still holds (a deleted
  customer is no longer listed). A stale cursor is never skipped silently: the re-read is
  logged with its reason and recorded in :attr:`StripeConnector.full_rereads`.

  The list pages carry no checkpoint: newest first, nothing is complete until the last page.
  The deletion scan's windows do, and they are safe to resume from through the events feed,
  because every object existing when the read started is staged by then. The final checkpoint
  is the time the read started, so changes made while it ran come with the next sync's events.

  A crash during the list pages starts the list again: the connector is handed a datetime
  only, and a checkpoint older than the retention reads exactly like a stale cursor, which
  must re-read everything. Resuming part-way would need the retriever to say it is resuming.

Auth is a secret key (``sk_…`` or a restricted ``rk_…``) sent as a bearer token. Keys do not
expire and cannot be refreshed: a 401 is an :class:`AuthError`, which sends the integration to
``needs_reauth``. Errors are Stripe's ``{"error": {type, code, param, message}}`` body; 429 and
``Stripe-Should-Retry: true`` are retried by the HTTP door, ``Stripe-Should-Retry: false`` is not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

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
from akita_pipelines.providers.http import json_object, retry_after_seconds
from akita_pipelines.providers.stripe.streams import CHANGED_AT, RESOURCES, Resource, stamp

log = logging.getLogger(__name__)

API_BASE = "https://api.stripe.com"
#: Pinned so list payloads keep one shape (events render with the version of their creation).
API_VERSION = "2023-08-16"
MAX_PAGE = 100
EVENT_RETENTION_DAYS = 30.0
#: A cursor must be this far inside the retention: the oldest window is read first, within
#: minutes, before its events expire.
RETENTION_GUARD = timedelta(minutes=10)
EVENT_WINDOW_HOURS = 24.0


@dataclass(frozen=True)
class FullReread:
    """Why a sync re-read a whole list instead of following the events feed."""

    interaction_type: str
    since: datetime
    oldest_event: datetime
    reason: str


def _error_fields(response: requests.Response) -> tuple[str, str, str]:
    try:
        body = response.json()
    except ValueError:
        return "unreadable", "", ""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "unknown", "", ""
    return (str(error.get("type") or ""), str(error.get("code") or ""),
            str(error.get("param") or ""))


def error_hook(response: requests.Response) -> AkitaError | None:
    """Stripe's error table. Messages name type, code and param only: Stripe's own message
    can echo the (masked) key."""
    status = response.status_code
    type_, code, param = _error_fields(response)
    what = f"HTTP {status} {type_}" + (f"/{code}" if code else "") + \
        (f" (param {param})" if param else "")
    should_retry = response.headers.get("Stripe-Should-Retry", "").lower()
    if status == 401:
        return AuthError(f"Stripe refused the API key ({what}): the integration needs a new "
                         "secret key")
    if status == 403:
        return AuthError(f"Stripe API key lacks a permission ({what}): grant read access or "
                         "use another key")
    if status == 429 or code in ("rate_limit", "lock_timeout"):
        return RateLimited(f"Stripe throttled the request ({what})", retry_after_seconds(response))
    if should_retry == "false":
        return ProviderError(f"Stripe error, not to be retried ({what})", status=status)
    if should_retry == "true" or status == 409 or status >= 500:
        return TransientError(f"Stripe error ({what})")
    if status in (400, 404):
        return ProviderError(f"Stripe rejected the request ({what})", status=status)
    return None


def _listed(obj: Any) -> Any:
    """A listed object, stamped with its creation: the last change a list can vouch for."""
    if isinstance(obj, dict) and isinstance(obj.get("created"), int):
        return {**obj, CHANGED_AT: stamp(datetime.fromtimestamp(obj["created"], UTC))}
    return obj  # unreadable: the retriever quarantines it


class StripeConnector:
    """Reads one Stripe account (see the module docstring).

    Config: ``base_url`` (default ``https://api.stripe.com``), ``events_retention_days``
    (default 30), ``events_window_hours`` (default 24). Credentials: ``api_key``.
    """

    def __init__(self, ctx: ConnectionContext) -> None:
        self.ctx = ctx
        self.base_url = str(ctx.config.get("base_url") or API_BASE).rstrip("/")
        try:
            days = float(ctx.config.get("events_retention_days", EVENT_RETENTION_DAYS))
            hours = float(ctx.config.get("events_window_hours", EVENT_WINDOW_HOURS))
        except (TypeError, ValueError):
            raise ConfigError("Stripe events_retention_days and events_window_hours must be "
                              "numbers") from None
        if days <= 0 or hours <= 0:
            raise ConfigError("Stripe events_retention_days and events_window_hours must be "
                              "positive")
        self.retention = timedelta(days=days)
        self.window_seconds = max(1, int(hours * 3600))
        self.page_size = max(1, min(MAX_PAGE, ctx.page_size))
        #: Full re-reads this connector fell back to, for the sync to report.
        self.full_rereads: list[FullReread] = []
        #: What the data engineer should know about the last read (see ``Connector``).
        self.notices: list[str] = []

    # -- HTTP ------------------------------------------------------------------------------
    def _key(self) -> str:
        key = self.ctx.credentials.load().get("api_key")
        if not isinstance(key, str) or not key:
            raise AuthError("the Stripe integration has no api_key")
        if not key.startswith(("sk_", "rk_")):
            raise ConfigError("the Stripe api_key must be a secret (sk_…) or restricted (rk_…) "
                              "key, not a publishable one")
        return key

    def _list(self, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        response = self.ctx.http.request(
            "GET", f"{self.base_url}/v1/{path}", params=params,
            headers={"Authorization": f"Bearer {self._key()}", "Stripe-Version": API_VERSION},
            error_hook=error_hook)
        body = json_object(response, f"Stripe page /v1/{path}")
        if body.get("object") != "list" \
                or not isinstance(body.get("data"), list) \
                or not isinstance(body.get("has_more"), bool):
            raise DataError(f"Stripe returned a page that is not a list object (/v1/{path})")
        return body

    def _pages(self, path: str, params: Mapping[str, Any]) -> Iterator[list[Any]]:
        """Every page of a newest-first list, following ``starting_after`` to the end."""
        after: str | None = None
        while True:
            query = {**params, "limit": self.page_size}
            if after is not None:
                query["starting_after"] = after
            body = self._list(path, query)
            data: list[Any] = body["data"]
            yield data
            if not body["has_more"]:
                return
            last = data[-1] if data else None
            if not isinstance(last, dict) or not isinstance(last.get("id"), str):
                raise DataError(f"Stripe page of /v1/{path} says has_more but its last item "
                                "has no id to continue from")
            after = last["id"]

    # -- reading ---------------------------------------------------------------------------
    def read_changes(self, stream: Stream, since: datetime | None) -> Iterator[Page]:
        """Yield pages of changes since ``since`` (see the module docstring)."""
        resource = RESOURCES.get(stream.source_object)
        if resource is None:
            raise ConfigError(f"Stripe has no resource {stream.source_object!r}")
        started = utcnow()
        if since is not None:
            oldest = started - self.retention + RETENTION_GUARD
            if since >= oldest:
                yield from self._events(resource, since, started, resource.events)
                return
            reason = (f"cursor {since:%Y-%m-%dT%H:%M:%SZ} is older than Stripe's "
                      f"{self.retention.days}-day event retention (oldest usable event "
                      f"{oldest:%Y-%m-%dT%H:%M:%SZ}): changes since then are gone, so every "
                      f"{resource.path} object is read again")
            log.warning("%s %s: %s", self.ctx.integration_id, stream.interaction_type, reason)
            self.full_rereads.append(FullReread(stream.interaction_type, since, oldest, reason))
            self.notices.append(f"full re-read: {reason}")
        yield from self._full_read(resource, started)

    def _full_read(self, resource: Resource, started: datetime) -> Iterator[Page]:
        for data in self._pages(resource.path, resource.list_params):
            yield Page(records=[_listed(o) for o in data], checkpoint=None)
        if resource.deletions:
            # Deleted objects are no longer listed: the feed still has the recent deletions.
            yield from self._events(resource, started - self.retention + RETENTION_GUARD,
                                    started, resource.deletions)
        else:
            yield Page(records=[], checkpoint=started)

    def _events(self, resource: Resource, start: datetime, until: datetime,
                types: tuple[str, ...]) -> Iterator[Page]:
        """Events of ``types`` from ``start`` on, one page per ``created`` window, ascending.

        The last window is open-ended; its checkpoint is ``until`` (the read's start), so
        events arriving while it is paged are read again next time, never skipped.
        """
        low = int(start.timestamp())
        end = int(until.timestamp())
        while True:
            high = low + self.window_seconds
            last = high > end
            params: dict[str, Any] = {"types[]": list(types), "created[gte]": low}
            if not last:
                params["created[lt]"] = high
            newest: dict[str, dict[str, Any]] = {}
            unreadable: list[dict[str, Any]] = []
            for data in self._pages("events", params):
                for event in data:
                    record = self._from_event(event, resource, low)
                    object_id = record.get("id")
                    if isinstance(object_id, str) and object_id:
                        # Newest first: the first event seen holds the object's latest state.
                        newest.setdefault(object_id, record)
                    else:
                        unreadable.append(record)
            records = sorted(newest.values(), key=lambda r: str(r[CHANGED_AT]))
            checkpoint = until if last else datetime.fromtimestamp(high, UTC)
            yield Page(records=[*records, *unreadable], checkpoint=checkpoint)
            if last:
                return
            low = high

    @staticmethod
    def _from_event(event: Any, resource: Resource, window_start: int) -> dict[str, Any]:
        """The object an event carries, stamped with the event's time. A malformed event
        becomes a record without an id, which the retriever quarantines and asks for again."""
        data = event.get("data") if isinstance(event, dict) else None
        obj = data.get("object") if isinstance(data, dict) else None
        created = event.get("created") if isinstance(event, dict) else None
        at = created if isinstance(created, int) else window_start
        record: dict[str, Any] = dict(obj) if isinstance(obj, dict) else {}
        record[CHANGED_AT] = stamp(datetime.fromtimestamp(at, UTC))
        if isinstance(event, dict) and event.get("type") in resource.deletions:
            record["deleted"] = True
        return record
