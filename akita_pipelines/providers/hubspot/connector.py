"""HubSpot CRM v3 search connector.

Incremental by the last-modified property (``lastmodifieddate`` on contacts,
``hs_lastmodifieddate`` elsewhere) with a closed lower bound (``GTE``), sorted ascending. Search
is live and its ``paging.next.after`` is an offset into the current result set: a record
changed while a client pages moves to the end and shifts an unread record onto a page already
read, where it is lost until it changes again. So ``after`` is never followed: after every page
the search starts again ``GTE`` the page's last timestamp, dropping the records already read
at exactly that timestamp. When a whole page shares one timestamp (more records than a page
holds changed in the same millisecond, as bulk imports make), that timestamp is read on its
own, ``EQ`` it, sorted by ``hs_object_id``, each page a new search ``hs_object_id GT`` the last
id read, and then the search resumes ``GT`` it. Every search asks for its first page, so the
10,000-result cap of one query (``after`` at or past it is a 400) is never reached. A page's
checkpoint is its highest timestamp: records at that timestamp may continue on the next page,
and a resumption (``GTE`` it) reads them again.

Search never returns archived (deleted) records: they are listed from
``GET /crm/v3/objects/{type}?archived=true`` (no change filter exists there, so the list is read
in full and filtered by ``archivedAt``), first, with no checkpoint, so that an interrupted
sync never moves the cursor past deletions it has not staged. Search does not return
associations either: each page's company and contact ids come from the v4 batch associations
API and are attached in the ``associations`` shape of the v3 object API.

OAuth: HubSpot says a 401 is not a reliable signal to refresh, so the token is refreshed once
``expires_in`` is nearly spent (the expiry is stored beside the token); a 401 still triggers
one refresh and retry. ``X-HubSpot-RateLimit-*`` headers drive proactive throttling; a 429's
``policyName`` says whether waiting helps (``SECONDLY``, ``TEN_SECONDLY_ROLLING``) or not
(``DAILY``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

import requests

from akita_pipelines.core.clock import parse_datetime, utcnow
from akita_pipelines.core.errors import (
    AkitaError,
    AuthError,
    ConfigError,
    DataError,
    ProviderError,
    RateLimited,
    TokenExpired,
)
from akita_pipelines.providers.auth import CredentialStore, OAuth2RefreshGrant
from akita_pipelines.providers.base import ConnectionContext, Page, Stream
from akita_pipelines.providers.http import error_body, json_object
from akita_pipelines.providers.hubspot.streams import ObjectInfo, object_info

MAX_SEARCH_LIMIT = 200
MAX_LIST_LIMIT = 100
#: Refresh this long before the access token's ``expires_in`` runs out.
REFRESH_MARGIN = timedelta(minutes=5)
#: Throttle when no more than this share of a rate-limit bucket is left.
THROTTLE_SHARE = 0.1
DAILY_RETRY_SECONDS = 3600.0


def epoch_ms(value: datetime) -> int:
    """A datetime as the epoch milliseconds HubSpot's datetime filters take."""
    return int(value.timestamp() * 1000)


def _header_int(response: requests.Response, name: str) -> int | None:
    value = response.headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def error_hook(response: requests.Response) -> AkitaError | None:
    """HubSpot's error table: bodies are ``{status, message, category, correlationId, ...}``,
    429s add ``errorType: RATE_LIMIT`` and ``policyName``."""
    status = response.status_code
    body = error_body(response)
    category = str(body.get("category") or "")
    if status == 401:
        # EXPIRED_AUTHENTICATION or INVALID_AUTHENTICATION: one refresh may fix either.
        return TokenExpired(f"HubSpot refused the access token ({category or 'HTTP 401'})")
    if status == 403:
        return AuthError(f"HubSpot denied access ({category or 'HTTP 403'}): check the app's "
                         "scopes")
    if status == 429:
        policy = str(body.get("policyName") or "")
        if policy == "DAILY":
            # Waiting seconds will not help; the next scheduled sync will.
            return RateLimited("HubSpot daily API limit reached", DAILY_RETRY_SECONDS)
        interval = _header_int(response, "X-HubSpot-RateLimit-Interval-Milliseconds")
        wait = interval / 1000 if interval else (1.0 if policy == "SECONDLY" else 10.0)
        return RateLimited(f"HubSpot rate limit reached ({policy or 'unknown policy'})", wait)
    if status == 404:
        return ConfigError("HubSpot does not know this object type: check the integration's "
                           "streams")
    if status == 400:
        message = str(body.get("message") or "")[:200]
        return ProviderError(f"HubSpot rejected the request ({category or 'HTTP 400'}): "
                             f"{message}", status=400)
    return None


def throttle(response: requests.Response) -> float | None:
    """Wait out the bucket's interval once no more than a tenth of it is left."""
    remaining = _header_int(response, "X-HubSpot-RateLimit-Remaining")
    limit = _header_int(response, "X-HubSpot-RateLimit-Max")
    interval = _header_int(response, "X-HubSpot-RateLimit-Interval-Milliseconds")
    if remaining is None or limit is None or interval is None:
        return None
    if remaining <= max(1, int(limit * THROTTLE_SHARE)):
        return interval / 1000
    return None


class ExpiryStampingStore:
    """A :class:`CredentialStore` that records when a freshly granted access token expires.

    It wraps the refresh inside the same atomic update, so ``expires_at`` always belongs to the
    ``access_token`` stored beside it.
    """

    def __init__(self, inner: CredentialStore) -> None:
        self.inner = inner

    def load(self) -> dict[str, Any]:
        return self.inner.load()

    def update(self, change: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        def stamped(current: dict[str, Any]) -> dict[str, Any]:
            issued = utcnow()
            new = change(current)
            if new.get("access_token") != current.get("access_token"):
                try:
                    lifetime = float(new["expires_in"])
                except (KeyError, TypeError, ValueError):
                    return {k: v for k, v in new.items() if k != "expires_at"}
                new = {**new, "expires_at": (issued + timedelta(seconds=lifetime)).isoformat()}
            return new

        return self.inner.update(stamped)


def _expiring(credentials: Mapping[str, Any]) -> bool:
    stamp = credentials.get("expires_at")
    if not isinstance(stamp, str):
        return False
    try:
        return parse_datetime(stamp) - REFRESH_MARGIN <= utcnow()
    except ValueError:
        return True


def _stamp_ms(record: Any, modified: str) -> int | None:
    """A search result's last-modified time in epoch ms, or None if it cannot be read."""
    if not isinstance(record, dict):
        return None
    props = record.get("properties")
    value = props.get(modified) if isinstance(props, dict) else None
    if not isinstance(value, str):
        value = record.get("updatedAt")
    if not isinstance(value, str):
        return None
    try:
        if value.isdigit():
            return int(value)
        return epoch_ms(parse_datetime(value))
    except ValueError:
        return None


def _record_id(record: Any) -> str | None:
    value = record.get("id") if isinstance(record, dict) else None
    return value if isinstance(value, str) else None


def _checkpoint(records: list[Any]) -> datetime | None:
    stamps = []
    for record in records:
        value = record.get("updatedAt") if isinstance(record, dict) else None
        if isinstance(value, str):
            try:
                stamps.append(parse_datetime(value))
            except ValueError:
                continue
    return max(stamps) if stamps else None


def _filter(prop: str, operator: str, value: int) -> dict[str, str]:
    return {"propertyName": prop, "operator": operator, "value": str(value)}


class HubSpotConnector:
    """Reads one HubSpot portal.

    Config: ``base_url`` (``https://api.hubapi.com``), optional ``token_url`` (default
    ``{base_url}/oauth/v1/token``) and ``streams`` for custom objects. Credentials:
    ``client_id``, ``client_secret``, ``refresh_token``; ``access_token`` and ``expires_at``
    are kept up to date in the store.
    """

    def __init__(self, ctx: ConnectionContext) -> None:
        self.ctx = ctx
        self.base_url = str(ctx.config["base_url"]).rstrip("/")
        token_url = str(ctx.config.get("token_url") or f"{self.base_url}/oauth/v1/token")
        self.credentials = ExpiryStampingStore(ctx.credentials)
        self.oauth = OAuth2RefreshGrant(token_url, self.credentials, ctx.http)
        self.page_size = max(1, min(MAX_SEARCH_LIMIT, ctx.page_size))

    # -- HTTP -------------------------------------------------------------------------------
    def _token(self) -> str:
        current = self.credentials.load()
        token = current.get("access_token")
        if not token or _expiring(current):
            current = self.oauth.refresh(stale_token=str(token) if token else None)
        return str(current["access_token"])

    def _call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
              json: Any = None) -> dict[str, Any]:
        """One API call with the bearer token: refresh once on a 401 and retry."""
        for attempt in range(2):
            token = self._token()
            try:
                response = self.ctx.http.request(
                    method, self.base_url + path, params=params, json=json,
                    headers={"Authorization": f"Bearer {token}"},
                    error_hook=error_hook, throttle=throttle)
            except TokenExpired:
                if attempt == 1:
                    raise AuthError("HubSpot still refuses the access token after a refresh"
                                    ) from None
                self.oauth.refresh(stale_token=token)
                continue
            return json_object(response, f"HubSpot {path}")
        raise AssertionError("unreachable")

    def _search(self, stream: Stream, filters: list[dict[str, str]],
                sort: str) -> tuple[list[Any], str | None]:
        """The first page of a search (never ``after``: see the module's docstring), and
        whether HubSpot offers a next one."""
        request: dict[str, Any] = {
            "filterGroups": [{"filters": filters}] if filters else [],
            "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
            "properties": list(stream.fields), "limit": self.page_size}
        body = self._call("POST", f"/crm/v3/objects/{stream.source_object}/search",
                          json=request)
        return self._results(body, stream)

    @staticmethod
    def _results(body: dict[str, Any], stream: Stream) -> tuple[list[Any], str | None]:
        results = body.get("results")
        if not isinstance(results, list):
            raise DataError(f"HubSpot returned a {stream.source_object} page without results")
        paging = body.get("paging")
        following = paging.get("next") if isinstance(paging, dict) else None
        after = following.get("after") if isinstance(following, dict) else None
        return results, str(after) if after is not None else None

    # -- reading ----------------------------------------------------------------------------
    def read_changes(self, stream: Stream, since: datetime | None) -> Iterator[Page]:
        info = object_info(stream.source_object, self.ctx.config)
        yield from self._archived(stream, since)
        yield from self._changed(stream, info, since)

    def _archived(self, stream: Stream, since: datetime | None) -> Iterator[Page]:
        """Archived records changed since ``since``; no checkpoint (they are not in order)."""
        params: dict[str, Any] = {"archived": "true", "limit": MAX_LIST_LIMIT,
                                  "properties": ",".join(stream.fields)}
        while True:
            body = self._call("GET", f"/crm/v3/objects/{stream.source_object}", params=params)
            results, after = self._results(body, stream)
            if since is not None:
                results = [r for r in results if not self._archived_before(r, since)]
            if results:
                yield Page(records=results, checkpoint=None)
            if after is None:
                return
            params = {**params, "after": after}

    @staticmethod
    def _archived_before(record: Any, since: datetime) -> bool:
        if not isinstance(record, dict):
            return False  # unreadable: keep it, so it is quarantined rather than dropped
        stamp = record.get("archivedAt") or record.get("updatedAt")
        try:
            return isinstance(stamp, str) and parse_datetime(stamp) < since
        except ValueError:
            return False

    def _changed(self, stream: Stream, info: ObjectInfo,
                 since: datetime | None) -> Iterator[Page]:
        """Changed records, ascending by last-modified time, one search per page (never
        ``after``: see the module's docstring)."""
        lower = epoch_ms(since) if since is not None else None
        operator = "GTE"
        seen: set[str] = set()  # ids read at the timestamp ``lower``, while it is ``GTE``
        while True:
            filters = [] if lower is None else [_filter(info.modified, operator, lower)]
            records, following = self._search(stream, filters, info.modified)
            fresh = [r for r in records
                     if not (operator == "GTE" and lower is not None and _record_id(r) in seen
                             and _stamp_ms(r, info.modified) == lower)]
            if following is None:
                yield self._page(stream, info, fresh)
                return
            stamps = [s for s in (_stamp_ms(r, info.modified) for r in records) if s is not None]
            if not stamps:
                raise DataError(f"a full page of {stream.source_object} has no readable "
                                f"{info.modified}")
            top = max(stamps)
            if min(stamps) == top or (lower is not None and top <= lower):
                # More records share ``top`` than a page holds: restarting GTE it would
                # answer this page again. Read that timestamp by id, then go past it; records
                # whose timestamp cannot be read would not be found there: pass them on now.
                odd = [r for r in fresh if _stamp_ms(r, info.modified) != top]
                if odd:
                    yield self._page(stream, info, odd)
                skip = seen if operator == "GTE" and top == lower else set()
                yield from self._same_stamp(stream, info, top, skip)
                lower, operator, seen = top, "GT", set()
                continue
            # ``top`` may continue on the next page: this page's checkpoint (``top``) is still
            # safe, since resuming re-reads ``top`` with GTE.
            yield self._page(stream, info, fresh)
            seen = {i for r in records if (i := _record_id(r)) is not None
                    and _stamp_ms(r, info.modified) == top}
            lower, operator = top, "GTE"

    def _same_stamp(self, stream: Stream, info: ObjectInfo, stamp: int,
                    skip: set[str]) -> Iterator[Page]:
        """Every record modified at ``stamp`` but those in ``skip``, by ``hs_object_id``.

        Each page is a new search ``hs_object_id GT`` the last id read, not ``after``: a
        record changed meanwhile leaves the timestamp without shifting the ones not yet read.
        """
        last_id = 0
        while True:
            filters = [_filter(info.modified, "EQ", stamp),
                       _filter("hs_object_id", "GT", last_id)]
            records, following = self._search(stream, filters, "hs_object_id")
            fresh = [r for r in records if _record_id(r) not in skip]
            if fresh:
                yield self._page(stream, info, fresh)
            if following is None:
                return
            ids = [int(i) for r in records if (i := _record_id(r)) is not None and i.isdigit()]
            if not ids or max(ids) <= last_id:
                raise DataError(f"a page of {stream.source_object} changed at {stamp} does "
                                "not move past the ids already read")
            last_id = max(ids)

    def _page(self, stream: Stream, info: ObjectInfo, records: list[Any]) -> Page:
        if info.associations and records:
            self._attach_associations(stream, info, records)
        return Page(records=records, checkpoint=_checkpoint(records))

    def _attach_associations(self, stream: Stream, info: ObjectInfo,
                             records: list[Any]) -> None:
        """Give each record the ``associations`` block ``GET ...?associations=`` would."""
        by_id = {r["id"]: r for r in records
                 if isinstance(r, dict) and isinstance(r.get("id"), str)}
        if not by_id:
            return
        for other in info.associations:
            body = self._call(
                "POST", f"/crm/v4/associations/{stream.source_object}/{other}/batch/read",
                json={"inputs": [{"id": i} for i in by_id]})
            results = body.get("results")
            if not isinstance(results, list):
                raise DataError(f"HubSpot returned {stream.source_object}→{other} associations "
                                "without results")
            name = f"{info.singular}_to_{object_info(other).singular}"
            for result in results:
                found = self._association_ids(result, name)
                if found is None:
                    continue
                record_id, ids = found
                record = by_id.get(record_id)
                if record is not None and ids:
                    record.setdefault("associations", {})[other] = {"results": ids}

    @staticmethod
    def _association_ids(result: Any, name: str) -> tuple[str, list[dict[str, str]]] | None:
        """``(from id, [{id, type}, ...])`` of one v4 result, primary links first."""
        if not isinstance(result, dict) or not isinstance(result.get("from"), dict):
            return None
        targets = result.get("to")
        if not isinstance(targets, list):
            return None
        primary: list[dict[str, str]] = []
        ids: list[dict[str, str]] = []
        for target in targets:
            if not isinstance(target, dict) or target.get("toObjectId") is None:
                continue
            other_id = str(target["toObjectId"])
            kinds = target.get("associationTypes") or []
            labels = {str(k.get("label") or "").casefold() for k in kinds if isinstance(k, dict)}
            if "primary" in labels:
                primary.append({"id": other_id, "type": name})
            ids.append({"id": other_id, "type": f"{name}_unlabeled"})
        return str(result["from"].get("id")), primary + ids
