"""The one HTTP door: every provider call goes through :class:`HttpClient`.

It always sets timeouts, retries connection errors, 5xx and 429 with exponential backoff and
jitter, honours ``Retry-After``, sleeps proactively when a provider's rate-limit headers say the
budget is nearly spent, and counts what it did so runs can report it. Error messages carry the
method, host and path only: never headers, query strings or bodies, which may hold secrets.
"""

from __future__ import annotations

import codecs
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.errors import (
    AkitaError,
    AuthError,
    DataError,
    ProviderError,
    RateLimited,
    TransientError,
)
from akita_pipelines.util import jsonfast

#: A provider's error table: maps a failed response to the error to raise, or None to fall back
#: on the generic table below (429/5xx retry, 401/403 auth, other 4xx provider error).
ErrorHook = Callable[[requests.Response], AkitaError | None]
#: Reads rate-limit headers and returns how long to wait before the next call (or None).
ThrottleHook = Callable[[requests.Response], float | None]

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass
class HttpStats:
    """What the door did during one sync: reported in the run's metadata."""

    requests: int = 0
    retries: int = 0
    rate_limit_waits: int = 0
    waited_seconds: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "api_calls": self.requests,
            "retries": self.retries,
            "rate_limit_waits": self.rate_limit_waits,
            "waited_seconds": round(self.waited_seconds, 3),
        }


def describe(method: str, url: str) -> str:
    """``GET host/path`` without the query string (it may carry keys or tokens)."""
    parts = urlsplit(url)
    return f"{method} {parts.netloc}{parts.path}"


def _utf8(encoding: str | None) -> bool:
    """Whether ``response.json()`` reads the body as UTF-8: the declared charset is UTF-8, or
    none is declared (it then detects UTF-8, -16 or -32; orjson refuses the other two)."""
    if encoding is None:
        return True
    try:
        return codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False


def json_body(response: requests.Response) -> Any:
    """``response.json()``, parsed by orjson (several times faster) where it reads the same.

    A body orjson refuses (truncated or invalid JSON, NaN, numbers beyond a double, a byte
    order mark, bytes that are not UTF-8) goes to ``response.json()``, which reads it or
    raises its own ``ValueError``, as it would without orjson; so does a body declared in
    another charset, and one of three bytes or fewer (``response.json()`` guesses their
    encoding).
    """
    content = response.content  # None when there is no body to read
    if isinstance(content, bytes) and len(content) > 3 and _utf8(response.encoding):
        return jsonfast.loads(content, response.json)
    return response.json()


def json_object(response: requests.Response, what: str) -> dict[str, Any]:
    """The response body as a JSON object; a DataError naming ``what`` when it is not one
    (a truncated or garbled page is the provider's fault, not a crash)."""
    try:
        body = json_body(response)
    except ValueError:
        raise DataError(f"{what}: the body is not JSON") from None
    if not isinstance(body, dict):
        raise DataError(f"{what}: the body is not a JSON object")
    return body


def error_body(response: requests.Response) -> dict[str, Any]:
    """An error response's body as a JSON object, ``{}`` when it is none: error hooks read it
    for the provider's codes, and a garbled body must not hide the status behind it."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def retry_after_seconds(response: requests.Response) -> float | None:
    """Parse ``Retry-After`` (seconds or an HTTP date)."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - utcnow()).total_seconds())


@dataclass
class HttpClient:
    """A ``requests`` session with the project's retry, throttle and redaction rules."""

    timeout: tuple[float, float] = (5.0, 60.0)
    max_retries: int = 5
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_wait: float = 120.0  # longer waits than this fail as RateLimited instead of sleeping
    session: requests.Session = field(default_factory=requests.Session)
    sleep: Callable[[float], None] = time.sleep
    stats: HttpStats = field(default_factory=HttpStats)
    user_agent: str = "akita-pipelines/0.1"

    def _backoff(self, attempt: int) -> float:
        # Full jitter: spreads retries of concurrent runs instead of synchronising them.
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * 2**attempt))

    def _wait(self, seconds: float, *, rate_limited: bool) -> None:
        if seconds <= 0:
            return
        self.stats.waited_seconds += seconds
        if rate_limited:
            self.stats.rate_limit_waits += 1
        self.sleep(seconds)

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        json: Any = None,
        error_hook: ErrorHook | None = None,
        throttle: ThrottleHook | None = None,
    ) -> requests.Response:
        """Send a request; return the successful response or raise a classified error."""
        what = describe(method, url)
        merged = {"User-Agent": self.user_agent, **(headers or {})}
        attempt = 0
        while True:
            self.stats.requests += 1
            try:
                response = self.session.request(
                    method, url, headers=merged, params=params, data=data, json=json,
                    timeout=self.timeout,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt >= self.max_retries:
                    raise TransientError(
                        f"{what}: {type(exc).__name__} after {attempt + 1} attempts"
                    ) from None
                self.stats.retries += 1
                self._wait(self._backoff(attempt), rate_limited=False)
                attempt += 1
                continue

            if response.ok:
                if throttle is not None:
                    pause = throttle(response)
                    if pause:
                        self._wait(min(pause, self.max_wait), rate_limited=True)
                return response

            error = error_hook(response) if error_hook is not None else None
            if error is None:
                error = self._generic_error(what, response)
            if isinstance(error, TransientError) and attempt < self.max_retries:
                wait = retry_after_seconds(response)
                if isinstance(error, RateLimited) and error.retry_after is not None:
                    wait = error.retry_after
                if wait is not None and wait > self.max_wait:
                    raise error
                self.stats.retries += 1
                self._wait(wait if wait is not None else self._backoff(attempt),
                           rate_limited=response.status_code == 429 or wait is not None)
                attempt += 1
                continue
            raise error

    @staticmethod
    def _generic_error(what: str, response: requests.Response) -> AkitaError:
        status = response.status_code
        if status == 429:
            return RateLimited(f"{what}: 429 rate limited", retry_after_seconds(response))
        if status in RETRY_STATUSES:
            return TransientError(f"{what}: HTTP {status}")
        if status in (401, 403):
            return AuthError(f"{what}: HTTP {status}: the provider refused the credentials")
        return ProviderError(f"{what}: HTTP {status}", status=status)
