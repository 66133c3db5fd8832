"""The receiver's logic, without HTTP: find the subscription, check the signature, record
the events once, make the objects due. ``app`` wraps it in Starlette."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from akita_pipelines.core.clock import utcnow
from akita_pipelines.db import push
from akita_pipelines.push import notifications, signatures
from akita_pipelines.push.notifications import PUSH_PROVIDERS, MalformedNotification

log = logging.getLogger(__name__)

#: Larger bodies are refused (413) before they are read: HubSpot's batches of 100 events and
#: Stripe's largest events are far below it.
MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


class Receiver:
    """Turns one notification request into an answer and, when authentic, due objects.

    Args:
        engine: The Akita database (the receiver's only state).
        clock: The current aware time (replay windows, due times).
        public_url: The base URL providers post to (``https://hooks.example.com``), when the
            receiver sits behind a proxy that rewrites it; HubSpot signs the full URL.
    """

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utcnow,
                 public_url: str | None = None) -> None:
        self.engine = engine
        self.clock = clock
        self.public_url = public_url.rstrip("/") if public_url else None

    def _count(self, provider: str, integration_id: str | None, outcome: str,
               n: int = 1) -> None:
        with self.engine.begin() as conn:
            push.count(conn, provider, integration_id, outcome, self.clock(), n)

    def refuse_oversized(self, provider: str) -> Answer:
        if provider in PUSH_PROVIDERS:
            self._count(provider, None, "oversized")
        return Answer(413, {"error": "payload too large"})

    def handle(self, provider: str, token: str | None, *, method: str, url: str, path: str,
               headers: Mapping[str, str], body: bytes) -> Answer:
        """Answer one notification request.

        Args:
            provider: From the endpoint's path.
            token: The per-integration path token, or ``None`` on the provider's shared
                endpoint (the subscription is then found by the account id in the body).
            method: The HTTP method.
            url: The full URL as received; ``public_url`` + ``path`` replaces it if set.
            path: The path and query string as received.
            headers: The request headers.
            body: The raw body, as signed.
        """
        if provider not in PUSH_PROVIDERS:
            return Answer(404, {"error": "unknown provider"})
        now = self.clock()
        try:
            notices = notifications.parse(provider, body)
        except MalformedNotification:
            notices = None
        with self.engine.connect() as conn:
            if token is not None:
                found = push.by_token(conn, provider, token)
                candidates = [found] if found else []
            else:
                refs = {n.account_ref for n in notices or () if n.account_ref}
                candidates = push.by_account(conn, provider, refs)
        if not candidates:
            self._count(provider, None, "unknown")
            return Answer(404, {"error": "unknown integration"})
        uri = self.public_url + path if self.public_url else url
        verdicts = [signatures.verify(provider, s.secret, method=method, uri=uri, body=body,
                                      headers=headers, now=now) for s in candidates]
        passed = [s for s, v in zip(candidates, verdicts, strict=True) if v is None]
        if not passed:
            outcome = signatures.STALE if signatures.STALE in verdicts else signatures.BAD
            self._count(provider, candidates[0].integration_id if token else None, outcome)
            log.warning("%s notification refused: %s", provider, outcome)
            return Answer(401, {"error": "invalid signature"})
        if notices is None:
            self._count(provider, passed[0].integration_id, "malformed")
            return Answer(400, {"error": "not a notification of this provider"})
        accepted = 0
        for subscription in passed:
            mine = [n for n in notices
                    if token is not None or n.account_ref == subscription.account_ref]
            accepted += self._record(subscription, mine, now)
        return Answer(200, {"received": len(notices), "accepted": accepted})

    def _record(self, subscription: push.Subscription,
                notices: list[notifications.Notice], now: datetime) -> int:
        with self.engine.begin() as conn:
            new = push.record_events(conn, subscription.id, [n.event_id for n in notices],
                                     now)
            fresh = [n for n in notices if n.event_id in new]
            types = sorted({n.interaction_type for n in fresh if n.interaction_type})
            if types:
                push.push(conn, subscription.integration_id, types, now,
                          notifications=sum(1 for n in fresh if n.interaction_type))
            for outcome, n in (("accepted", sum(1 for n in fresh if n.interaction_type)),
                               ("ignored", sum(1 for n in fresh if not n.interaction_type)),
                               ("duplicate", len(notices) - len(fresh))):
                if n:
                    push.count(conn, subscription.provider, subscription.integration_id,
                               outcome, now, n)
        return len(fresh)
