"""Credentials: API keys and OAuth2 refresh-token grants with rotation persisted atomically."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from akita_pipelines.core.errors import AuthError, ProviderError
from akita_pipelines.providers.http import HttpClient


class CredentialStore(Protocol):
    """Where an integration's secrets live (the database in production, a dict in tests)."""

    def load(self) -> dict[str, Any]:
        """Read the current credentials (always re-read: another run may have rotated them)."""
        ...

    def update(self, change: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        """Atomically apply ``change`` to the freshly read credentials under a per-integration
        lock, persist the result and return it."""
        ...


class MemoryCredentialStore:
    """A credential store in memory: for tests and one-off CLI calls."""

    def __init__(self, credentials: Mapping[str, Any]) -> None:
        self._credentials = dict(credentials)

    def load(self) -> dict[str, Any]:
        return dict(self._credentials)

    def update(self, change: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        self._credentials = change(dict(self._credentials))
        return dict(self._credentials)


@dataclass
class OAuth2RefreshGrant:
    """The OAuth2 ``refresh_token`` grant against one token endpoint.

    Credentials keys used: ``client_id``, ``client_secret``, ``refresh_token``, ``access_token``.
    Any other fields of the token response the provider needs (e.g. Salesforce's
    ``instance_url``) are stored beside them.
    """

    token_url: str
    store: CredentialStore
    http: HttpClient

    def access_token(self) -> str | None:
        token = self.store.load().get("access_token")
        return str(token) if token else None

    def refresh(self, *, stale_token: str | None) -> dict[str, Any]:
        """Refresh the access token, unless another run already did since ``stale_token``.

        The whole exchange runs inside the store's lock, so two runs of one integration never
        both spend a rotating refresh token: the second sees the first's new access token and
        uses it.
        """

        def change(current: dict[str, Any]) -> dict[str, Any]:
            if stale_token is not None and current.get("access_token") not in (None, stale_token):
                return current  # someone refreshed while we waited for the lock
            needed = ("client_id", "client_secret", "refresh_token")
            missing = [k for k in needed if not current.get(k)]
            if missing:
                raise AuthError(f"cannot refresh the access token: credentials lack {missing}")
            response = self.http.request(
                "POST",
                self.token_url,
                data={
                    "grant_type": "refresh_token",
                    "client_id": current["client_id"],
                    "client_secret": current["client_secret"],
                    "refresh_token": current["refresh_token"],
                },
                error_hook=_token_error,
            )
            body = response.json()
            if "access_token" not in body:
                raise AuthError("the token endpoint answered without an access_token")
            return {**current, **body}

        return self.store.update(change)


def _token_error(response: Any) -> AuthError | ProviderError | None:
    if response.status_code in (400, 401):
        try:
            error = response.json().get("error", "unknown")
        except ValueError:
            error = "unreadable body"
        # invalid_grant: revoked or already-rotated refresh token. Not retried: the customer
        # must authorise again.
        return AuthError(f"token refresh refused ({error}): the integration needs re-authorising")
    return None
