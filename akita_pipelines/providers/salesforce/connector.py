"""Salesforce REST query connector.

Incremental by ``SystemModstamp`` (indexed, and it also moves on system changes, unlike
``LastModifiedDate``) with a closed lower bound, ordered by ``SystemModstamp, Id`` so that a page's
last modstamp is a safe resume point. ``queryAll`` so deleted rows arrive with ``IsDeleted``.
Salesforce sends no ``expires_in``: an expired session shows up as 401 ``INVALID_SESSION_ID``, on
which we refresh once and retry. ``Sforce-Limit-Info`` drives proactive throttling, since
Salesforce has no 429.
"""

from __future__ import annotations

from collections.abc import Iterator
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

API_VERSION = "v59.0"


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
    if "REQUEST_LIMIT_EXCEEDED" in codes:
        messages = " ".join(str(e.get("message", "")) for e in _errors(response))
        if "TotalRequests" in messages:
            # The daily quota: waiting seconds will not help, the next scheduled sync will.
            return RateLimited("Salesforce daily API request limit exceeded",
                               retry_after=24 * 3600)
        # Concurrent long-request limits clear within seconds.
        return RateLimited("Salesforce concurrent request limit exceeded", retry_after=5.0)
    if codes & {"INVALID_FIELD", "INVALID_TYPE", "MALFORMED_QUERY"}:
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

    def _instance_url(self) -> str:
        return str(self.ctx.credentials.load().get("instance_url") or self.login_url).rstrip("/")

    def _get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        """GET with the bearer token: refresh once on an expired session and retry."""
        for attempt in range(2):
            token = self.oauth.access_token()
            if token is None:
                self.oauth.refresh(stale_token=None)
                token = self.oauth.access_token()
            try:
                response = self.ctx.http.request(
                    "GET",
                    self._instance_url() + path,
                    params=params,
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Sforce-Query-Options": f"batchSize={self.ctx.page_size}",
                    },
                    error_hook=error_hook,
                    throttle=throttle,
                )
            except TokenExpired:
                if attempt == 1:
                    raise AuthError("Salesforce session still invalid after a refresh") from None
                self.oauth.refresh(stale_token=token)
                continue
            body = json_object(response, f"Salesforce page {path}")
            if not isinstance(body.get("records"), list):
                raise DataError(f"Salesforce returned a page without records ({path})")
            return body
        raise AssertionError("unreachable")

    def query(self, stream: Stream, since: datetime | None) -> str:
        fields = ", ".join(stream.fields)
        where = f" WHERE {stream.cursor_field} >= {soql_datetime(since)}" if since else ""
        return (f"SELECT {fields} FROM {stream.source_object}{where} "
                f"ORDER BY {stream.cursor_field}, {stream.primary_key}")

    def read_changes(self, stream: Stream, since: datetime | None) -> Iterator[Page]:
        body = self._get(f"/services/data/{self.api_version}/queryAll",
                         {"q": self.query(stream, since)})
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


