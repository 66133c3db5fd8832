"""The error taxonomy: every failure is classified so the retriever knows what to do.

The class decides the action (retry, refresh-then-retry, fail) and whether the failure counts
toward disabling an integration. Messages never carry secrets: build them from ids and status
codes, not from request headers or bodies that may echo credentials.
"""

from __future__ import annotations

from enum import StrEnum


class FailureClass(StrEnum):
    """What kind of failure, as reported to alerts and stored on the Integration Object."""

    CONFIG = "config"  # wrong setup or revoked authorisation: retrying will not help
    TRANSIENT = "transient"  # network, 5xx, throttling: retry later
    DATA = "data"  # a bad record or page: quarantine and go on


class AkitaError(Exception):
    """Base of every error this project raises on purpose."""

    failure_class: FailureClass = FailureClass.TRANSIENT


class ConfigError(AkitaError):
    """Configuration or registry input is wrong; the message says what to fix."""

    failure_class = FailureClass.CONFIG


class AuthError(AkitaError):
    """The provider refused the credentials and a refresh cannot fix it (e.g. invalid_grant)."""

    failure_class = FailureClass.CONFIG


class TokenExpired(AkitaError):
    """The access token expired; refresh once and retry the request."""

    failure_class = FailureClass.TRANSIENT


class TransientError(AkitaError):
    """A failure that may pass on its own: network errors, 5xx, exhausted retries."""

    failure_class = FailureClass.TRANSIENT


class RateLimited(TransientError):
    """The provider throttled us and the wait it asked for is longer than we may sleep."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderError(AkitaError):
    """The provider answered with an error we do not know how to recover from."""

    failure_class = FailureClass.CONFIG

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class DataError(AkitaError):
    """A payload could not be read: malformed JSON, missing required fields, wrong types."""

    failure_class = FailureClass.DATA


def classify(exc: BaseException) -> FailureClass:
    """Return the failure class of any exception; unknown ones count as transient."""
    if isinstance(exc, AkitaError):
        return exc.failure_class
    return FailureClass.TRANSIENT
