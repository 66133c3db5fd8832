"""A customer's own REST API, described declaratively: no code per customer.

Every call goes through ``ctx.http`` (timeouts, retries, Retry-After). Auth styles: bearer token,
API key (header or query), HTTP basic, and OAuth2 client credentials (the token is cached in the
credential store with its expiry, fetched again shortly before it expires or once on a 401).

Checkpoints. Records may arrive in any order, so each page is sorted by the cursor field before
it is yielded. With ``"order": "ascending"`` (the API sorts by the cursor across pages) a page's
highest cursor value is a safe resume point and every page carries it. Otherwise (the default,
``"unsorted"``) no intermediate value is safe — a later page may hold an older record — so pages
carry no checkpoint and the read's maximum is yielded only with the last page: an interrupted
read starts over, which costs time but never loses a record.

Links. Next-page links (body or ``Link`` header) must stay on the configured host: the
credentials are never sent anywhere else. A paginator that returns the same cursor or link twice
ends the read with a ProviderError instead of looping forever.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.errors import (
    AkitaError,
    AuthError,
    ConfigError,
    DataError,
    ProviderError,
    RateLimited,
    TokenExpired,
)
from akita_pipelines.providers.base import ConnectionContext, Page, Stream
from akita_pipelines.providers.http import retry_after_seconds
from akita_pipelines.providers.mapping import (
    as_datetime,
    dedupe_last,
    iso,
    lookup,
    stream_config,
)

PAGINATORS = ("cursor", "next_link", "offset", "page_number", "link_header", "none")
AUTH_TYPES = ("bearer", "api_key", "basic", "oauth2_client_credentials", "none")
STREAM_KEYS = ("path", "records", "params", "paginator", "incremental", "order")
TOKEN_MARGIN = timedelta(seconds=60)


def _text(config: Mapping[str, Any], key: str, default: str, where: str) -> str:
    value = config.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}.{key} must be a non-empty string")
    return value


@dataclass(frozen=True)
class RestStream:
    """One stream's endpoint settings, validated."""

    path: str
    records: str
    params: Mapping[str, Any]
    paginator: Mapping[str, Any]
    incremental: Mapping[str, Any] | None
    ascending: bool
    cursor_field: str | None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], where: str) -> RestStream:
        path = config.get("path")
        if not isinstance(path, str) or not path.startswith("/") or "://" in path:
            raise ConfigError(f"{where}.path must be a path on the API such as /v1/companies")
        paginator = config.get("paginator") or {"type": "none"}
        if not isinstance(paginator, Mapping) or paginator.get("type") not in PAGINATORS:
            raise ConfigError(f"{where}.paginator.type must be one of {list(PAGINATORS)}")
        incremental = config.get("incremental")
        if incremental is not None:
            if not isinstance(incremental, Mapping) or not incremental.get("param") \
                    or not incremental.get("field"):
                raise ConfigError(f"{where}.incremental needs 'param' (the query parameter) and "
                                  "'field' (the record's cursor field)")
            if incremental.get("format", "iso") not in ("iso", "unix", "unix_ms"):
                raise ConfigError(f"{where}.incremental.format must be iso, unix or unix_ms")
        order = config.get("order", "unsorted")
        if order not in ("ascending", "unsorted"):
            raise ConfigError(f"{where}.order must be 'ascending' or 'unsorted'")
        params = config.get("params") or {}
        if not isinstance(params, Mapping):
            raise ConfigError(f"{where}.params must map query parameters to values")
        cursor = (incremental or {}).get("field") or config.get("updated_at")
        return cls(path=path, records=str(config.get("records", "")), params=params,
                   paginator=paginator, incremental=incremental,
                   ascending=order == "ascending", cursor_field=cursor)


def select_records(body: Any, selector: str, what: str) -> list[Any]:
    """The list at a dotted selector (``data.items``; empty for a top-level list)."""
    value = body
    for part in [p for p in selector.split(".") if p]:
        if not isinstance(value, Mapping) or part not in value:
            raise DataError(f"{what}: the response has no {selector!r}")
        value = value[part]
    if value is None:
        return []
    if not isinstance(value, list):
        raise DataError(f"{what}: {selector or 'the body'} is not a list")
    return value


def since_param(since: datetime, fmt: str) -> str:
    """The incremental filter value, rounded down so the bound stays closed."""
    if fmt == "unix":
        return str(math.floor(since.timestamp()))
    if fmt == "unix_ms":
        return str(math.floor(since.timestamp() * 1000))
    return iso(since.replace(microsecond=0))


class RestConnector:
    """Reads the streams an integration declares from the customer's API."""

    def __init__(self, ctx: ConnectionContext) -> None:
        self.ctx = ctx
        base = ctx.config.get("base_url")
        if not isinstance(base, str) or urlsplit(base).scheme not in ("http", "https"):
            raise ConfigError("config 'base_url' must be an http(s) URL")
        self.base_url = base.rstrip("/")
        self.host = urlsplit(self.base_url).netloc
        auth = ctx.config.get("auth") or {"type": "none"}
        if not isinstance(auth, Mapping) or auth.get("type") not in AUTH_TYPES:
            raise ConfigError(f"config auth.type must be one of {list(AUTH_TYPES)}")
        self.auth = auth
        headers = ctx.config.get("headers") or {}
        if not isinstance(headers, Mapping):
            raise ConfigError("config 'headers' must map header names to values")
        self.headers = {str(k): str(v) for k, v in headers.items()}

    # -- auth -----------------------------------------------------------------------------
    def _secret(self, key: str) -> str:
        value = self.ctx.credentials.load().get(key)
        if not value:
            raise ConfigError(f"credentials lack {key!r} for {self.auth['type']} auth")
        return str(value)

    def _token(self, *, stale: str | None) -> str:
        """An OAuth2 client-credentials token: cached, fetched under the store's lock."""
        def change(current: dict[str, Any]) -> dict[str, Any]:
            token, expires = current.get("access_token"), current.get("expires_at")
            until = as_datetime(expires, "expires_at") if expires else None
            fresh = token and token != stale and (
                until is None or until > utcnow() + TOKEN_MARGIN)
            if fresh:
                return current
            for key in ("client_id", "client_secret"):
                if not current.get(key):
                    raise ConfigError(f"credentials lack {key!r} for OAuth2 client credentials")
            data = {"grant_type": "client_credentials"}
            if self.auth.get("scope"):
                data["scope"] = str(self.auth["scope"])
            basic = base64.b64encode(
                f"{current['client_id']}:{current['client_secret']}".encode()).decode()
            response = self.ctx.http.request(
                "POST", self._url(_text(self.auth, "token_url", "/oauth/token", "auth")),
                data=data, headers={"Authorization": f"Basic {basic}"},
                error_hook=_token_error)
            body = _json(response, "token endpoint")
            if not isinstance(body, Mapping) or not body.get("access_token"):
                raise AuthError("the token endpoint answered without an access_token")
            expires_in = float(body.get("expires_in") or 3600)
            return {**current, "access_token": str(body["access_token"]),
                    "expires_at": iso(utcnow() + timedelta(seconds=expires_in))}

        return str(self.ctx.credentials.update(change)["access_token"])

    def _authorise(self, headers: dict[str, str], params: dict[str, Any],
                   stale: str | None) -> str | None:
        kind = self.auth["type"]
        if kind == "bearer":
            headers["Authorization"] = f"Bearer {self._secret('token')}"
        elif kind == "basic":
            pair = f"{self._secret('username')}:{self._secret('password')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        elif kind == "api_key":
            key = self._secret("api_key")
            if self.auth.get("in", "header") == "query":
                params[_text(self.auth, "name", "api_key", "auth")] = key
            else:
                headers[_text(self.auth, "header", "X-API-Key", "auth")] = key
        elif kind == "oauth2_client_credentials":
            token = self._token(stale=stale)
            headers["Authorization"] = f"Bearer {token}"
            return token
        return None

    # -- HTTP -----------------------------------------------------------------------------
    def _url(self, path_or_url: str) -> str:
        url = urljoin(self.base_url + "/", path_or_url.lstrip("/")) \
            if "://" not in path_or_url else path_or_url
        if urlsplit(url).netloc != self.host:
            raise ProviderError(f"the API sent a link to another host ({urlsplit(url).netloc}); "
                                "credentials are only sent to the configured base_url")
        return url

    def get(self, path_or_url: str, params: Mapping[str, Any] | None = None
            ) -> requests.Response:
        """GET with auth; an OAuth2 token refused with 401 is replaced once."""
        url = self._url(path_or_url)
        stale: str | None = None
        for attempt in range(2):
            headers = dict(self.headers)
            query = dict(params or {})
            token = self._authorise(headers, query, stale)
            try:
                return self.ctx.http.request("GET", url, headers=headers, params=query or None,
                                             error_hook=self._error_hook, throttle=throttle)
            except TokenExpired:
                if attempt == 1 or token is None:
                    raise AuthError("the API refused the credentials (HTTP 401)") from None
                stale = token
        raise AssertionError("unreachable")

    def _error_hook(self, response: requests.Response) -> AkitaError | None:
        if response.status_code == 401:
            if self.auth["type"] == "oauth2_client_credentials":
                return TokenExpired("the API refused the access token")
            return AuthError("the API refused the credentials (HTTP 401)")
        if response.status_code == 429:
            return RateLimited("the API rate limit was hit (HTTP 429)",
                               retry_after_seconds(response) or _reset_seconds(response))
        return None

    # -- reading --------------------------------------------------------------------------
    def read_changes(self, stream: Stream, since: datetime | None) -> Iterator[Page]:
        """Yield the endpoint's records page by page, each page sorted by the cursor field."""
        where = f"streams.{stream.interaction_type}"
        spec = RestStream.from_config(stream_config(self.ctx.config, stream.interaction_type),
                                      where)
        params: dict[str, Any] = dict(spec.params)
        if since is not None and spec.incremental is not None:
            params[str(spec.incremental["param"])] = since_param(
                since, str(spec.incremental.get("format", "iso")))
        best: datetime | None = None
        pages = self._pages(spec, params, where)
        current = next(pages, None)
        while current is not None:
            following = next(pages, None)
            records = self._sorted(current, spec.cursor_field, where)
            top = _max_cursor(records, spec.cursor_field)
            if top is not None:
                best = top if best is None else max(best, top)
            last = following is None
            checkpoint = best if (spec.ascending or last) else None
            yield Page(records=dedupe_last(records, stream.primary_key), checkpoint=checkpoint)
            current = following

    @staticmethod
    def _sorted(records: list[Any], field: str | None, where: str) -> list[Any]:
        if field is None:
            return records

        def key(record: Any) -> tuple[int, datetime]:
            value = lookup(record, field) if isinstance(record, Mapping) else None
            try:
                stamp = as_datetime(value, field)
            except (TypeError, ValueError):
                stamp = None  # the processor quarantines it; it must not stop the page
            return (0, datetime.min.replace(tzinfo=UTC)) if stamp is None else (1, stamp)

        return sorted(records, key=key)

    def _pages(self, spec: RestStream, params: dict[str, Any], where: str
               ) -> Iterator[list[Any]]:
        """The raw record lists of every page, following the configured paginator."""
        pager = spec.paginator
        kind = pager.get("type", "none")
        limit_param = pager.get("limit_param")
        size = int(pager.get("page_size", self.ctx.page_size))
        if limit_param:
            params[str(limit_param)] = size
        seen: set[str] = set()
        target: str = spec.path
        offset = int(pager.get("start", 0 if kind == "offset" else 1))
        while True:
            query = dict(params)
            if kind == "offset":
                query[_text(pager, "offset_param", "offset", where)] = offset
            elif kind == "page_number":
                query[_text(pager, "page_param", "page", where)] = offset
            # A next link carries its own query string; only the first request gets params.
            response = self.get(target, query if target == spec.path else None)
            body = _json(response, where)
            records = select_records(body, spec.records, where)
            yield records
            following: str | None = None
            if kind == "cursor":
                token = lookup(body, _text(pager, "cursor_path", "next_cursor", where)) \
                    if isinstance(body, Mapping) else None
                if token in (None, "") or (pager.get("has_more_path") and not lookup(
                        body, str(pager["has_more_path"]))):
                    return
                params[_text(pager, "cursor_param", "cursor", where)] = token
                following = f"cursor:{token}"
            elif kind == "next_link":
                link = lookup(body, _text(pager, "next_path", "next", where)) \
                    if isinstance(body, Mapping) else None
                if not link:
                    return
                target, following = str(link), str(link)
            elif kind == "link_header":
                link = response.links.get("next", {}).get("url")
                if not link:
                    return
                target, following = str(link), str(link)
            elif kind in ("offset", "page_number"):
                if not records or (limit_param and len(records) < size):
                    return
                offset += len(records) if kind == "offset" else 1
                following = f"{kind}:{offset}"
            else:
                return
            if following in seen:
                raise ProviderError(f"{where}: the API returned the same next page twice "
                                    f"({kind} paginator); stopping instead of looping")
            seen.add(following)


def _max_cursor(records: list[Any], field: str | None) -> datetime | None:
    if field is None:
        return None
    best: datetime | None = None
    for record in records:
        if not isinstance(record, Mapping):
            continue
        try:
            stamp = as_datetime(lookup(record, field), field)
        except (TypeError, ValueError):
            continue
        if stamp is not None and (best is None or stamp > best):
            best = stamp
    return best


def _json(response: requests.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        # A body cut mid-JSON is a classified failure, never an empty page.
        raise DataError(f"{what}: the API returned a body that is not JSON "
                        f"(HTTP {response.status_code}, {len(response.content)} bytes)") from None


def _reset_seconds(response: requests.Response) -> float | None:
    for name in ("RateLimit-Reset", "X-RateLimit-Reset"):
        value = response.headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value)
        except ValueError:
            return None
        if seconds > 1e9:  # an epoch timestamp rather than a delay
            seconds -= utcnow().timestamp()
        return max(0.0, seconds)
    return None


def throttle(response: requests.Response) -> float | None:
    """Wait for the window to reset when the API says no calls are left in it."""
    for name in ("RateLimit-Remaining", "X-RateLimit-Remaining"):
        value = response.headers.get(name)
        if value is not None:
            try:
                if int(float(value)) <= 0:
                    return _reset_seconds(response) or 1.0
            except ValueError:
                return None
            return None
    return None


def _token_error(response: requests.Response) -> AkitaError | None:
    if response.status_code in (400, 401, 403):
        return AuthError(f"the token endpoint refused the client credentials "
                         f"(HTTP {response.status_code})")
    return None
