"""Webhook subscriptions and deliveries of an emulator, shared by the emulators that push.

Each emulator decides what a notification says and how it is signed (from its provider's
documentation); this module keeps the subscriptions, the deliveries owed and their retries
on the provider's documented schedule, batches where the provider batches, and can be told to
misbehave: send a notification twice (``duplicate``), late (``out_of_order``), signed with a
wrong secret (``forged``) or re-send an earlier request as it was (``replay``).

Deliveries go out from a background thread (:meth:`WebhookOutbox.start`) or when a test calls
:meth:`WebhookOutbox.deliver_due`; they never hold the emulator's lock while posting.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)

FAULTS = ("duplicate", "out_of_order", "forged", "replay")

#: (attempt number that failed (0 = first), HTTP status or None for no answer, headers)
#: → seconds until the next attempt, or None to give up.
RetryPolicy = Callable[[int, int | None, Mapping[str, str]], float | None]
#: (secret, url, body, now) → the signature headers.
Signer = Callable[[str, str, bytes, datetime], dict[str, str]]
#: (payloads of one request, attempt number) → the body.
Renderer = Callable[[list[Any], int], bytes]


@dataclass
class WebhookSubscription:
    """A URL the emulator posts notifications to, with the secret it signs them with."""

    id: str
    url: str
    secret: str = field(repr=False)
    active: bool = True
    #: Event types it wants (``*``: all), where the provider filters.
    events: tuple[str, ...] = ("*",)


@dataclass
class _Delivery:
    subscription: WebhookSubscription
    payloads: list[Any]
    due: datetime
    attempt: int = 0
    forged: bool = False
    held: bool = False  # out_of_order: waits until a later delivery has gone


@dataclass(frozen=True)
class SentRequest:
    """One request as posted (kept for ``replay`` and for tests)."""

    url: str
    body: bytes
    headers: dict[str, str]
    status: int | None


class WebhookOutbox:
    """One emulator's webhook subscriptions and the deliveries owed to them.

    Args:
        clock: The emulator's clock (delivery and retry times).
        sign: Signs a body for a subscription's secret.
        render: Turns the payloads of one request into its body.
        retry: The provider's retry schedule.
        batch_size: Payloads per request (HubSpot batches up to 100; others send one).
        timeout_seconds: How long a delivery waits for the answer (the provider's timeout).
        user_agent: The provider's ``User-Agent``.
    """

    def __init__(self, *, clock: Callable[[], datetime], sign: Signer, render: Renderer,
                 retry: RetryPolicy, batch_size: int = 1, timeout_seconds: float = 10.0,
                 user_agent: str = "webhook") -> None:
        self.clock = clock
        self.sign = sign
        self.render = render
        self.retry = retry
        self.batch_size = batch_size
        self.timeout = timeout_seconds
        self.user_agent = user_agent
        #: Multiplies retry delays (tests and demos shorten the providers' hours to seconds).
        self.retry_scale = 1.0
        self.subscriptions: dict[str, WebhookSubscription] = {}
        self.queue: list[_Delivery] = []
        self.faults: list[str] = []
        self.sent: list[SentRequest] = []
        self.stats: dict[str, int] = {"published": 0, "requests": 0, "delivered": 0,
                                      "failed": 0, "retried": 0, "gave_up": 0, "forged": 0,
                                      "replayed": 0}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- subscriptions ----------------------------------------------------------------------
    def subscribe(self, url: str, secret: str | None = None, *,
                  subscription_id: str | None = None,
                  events: tuple[str, ...] = ("*",)) -> WebhookSubscription:
        """Post this emulator's notifications to ``url`` from now on, signed with ``secret``
        (a new random one when the provider generates it)."""
        with self._lock:
            sub = WebhookSubscription(subscription_id or f"{len(self.subscriptions) + 1}",
                                      url, secret or secrets.token_urlsafe(32), events=events)
            self.subscriptions[sub.id] = sub
            return sub

    def unsubscribe(self, subscription_id: str) -> None:
        with self._lock:
            self.subscriptions.pop(subscription_id, None)
            self.queue = [d for d in self.queue if d.subscription.id != subscription_id]

    def inject(self, fault: str, count: int = 1) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown webhook fault {fault!r}")
        with self._lock:
            self.faults.extend([fault] * count)

    # -- notifications ----------------------------------------------------------------------
    def publish(self, build: Callable[[WebhookSubscription], Any],
                event_type: str | None = None) -> None:
        """Owe every active subscription that wants ``event_type`` the payload
        ``build(subscription)`` makes for it."""
        with self._lock:
            if not self.subscriptions:
                return
            now = self.clock()
            for sub in self.subscriptions.values():
                if not sub.active or ("*" not in sub.events and event_type not in sub.events):
                    continue
                self.stats["published"] += 1
                payload = build(sub)
                open_batch = next((d for d in self.queue if d.subscription is sub
                                   and d.attempt == 0 and not d.forged and not d.held
                                   and len(d.payloads) < self.batch_size), None)
                if open_batch is not None:
                    open_batch.payloads.append(payload)
                else:
                    self.queue.append(_Delivery(sub, [payload], now))

    def _take_due(self, now: datetime) -> tuple[list[_Delivery], SentRequest | None]:
        replay = None
        with self._lock:
            due = [d for d in self.queue if d.due <= now and not d.held]
            self.queue = [d for d in self.queue if d not in due]
            out: list[_Delivery] = []
            for delivery in due:
                fault = self.faults.pop(0) if self.faults and not delivery.forged else None
                if fault == "duplicate":
                    out += [delivery, _Delivery(delivery.subscription, delivery.payloads,
                                                delivery.due)]
                elif fault == "out_of_order":
                    delivery.held = True
                    self.queue.append(delivery)
                elif fault == "forged":
                    self.stats["forged"] += 1
                    out += [delivery, _Delivery(delivery.subscription, delivery.payloads,
                                                delivery.due, forged=True)]
                elif fault == "replay" and self.sent:
                    out.append(delivery)
                    replay = self.sent[-1]
                else:
                    out.append(delivery)
            if out and any(d.held for d in self.queue):
                # A later notification is going out: the held ones follow it.
                for held in self.queue:
                    held.held = False
            return out, replay

    def deliver_due(self) -> int:
        """Post every delivery that is due; returns the number of requests made."""
        now = self.clock()
        due, replay = self._take_due(now)
        made = 0
        for delivery in due:
            made += 1
            status, headers = self._post(delivery, now)
            ok = status is not None and 200 <= status < 300
            with self._lock:
                if ok and not delivery.forged:
                    self.stats["delivered"] += 1
                elif not delivery.forged:
                    self.stats["failed"] += 1
                    self._schedule_retry(delivery, status, headers, now)
        if replay is not None:
            with self._lock:
                self.stats["replayed"] += 1
            made += 1
            self._send(replay.url, replay.body, replay.headers)
        return made

    def _schedule_retry(self, delivery: _Delivery, status: int | None,
                        headers: Mapping[str, str], now: datetime) -> None:
        delay = self.retry(delivery.attempt, status, headers)
        if delay is None or delivery.subscription.id not in self.subscriptions:
            self.stats["gave_up"] += 1
            return
        self.stats["retried"] += 1
        delivery.attempt += 1
        delivery.due = now + timedelta(seconds=delay * self.retry_scale)
        self.queue.append(delivery)

    def _post(self, delivery: _Delivery, now: datetime) -> tuple[int | None, dict[str, str]]:
        sub = delivery.subscription
        body = self.render(delivery.payloads, delivery.attempt)
        secret = f"forged-{sub.secret}" if delivery.forged else sub.secret
        headers = {"Content-Type": "application/json", "User-Agent": self.user_agent,
                   **self.sign(secret, sub.url, body, now)}
        return self._send(sub.url, body, headers)

    def _send(self, url: str, body: bytes, headers: dict[str, str]
              ) -> tuple[int | None, dict[str, str]]:
        answered: dict[str, str] = {}
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        status: int | None
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                status = int(answer.status)
        except urllib.error.HTTPError as exc:
            status = int(exc.code)
            answered = dict(exc.headers.items()) if exc.headers else {}
            exc.close()
        except (OSError, ValueError):
            status = None  # refused, reset or timed out: no answer
        with self._lock:
            self.stats["requests"] += 1
            self.sent.append(SentRequest(url, body, headers, status))
            del self.sent[:-100]
        return status, answered

    # -- background delivery ----------------------------------------------------------------
    def start(self, tick: Callable[[], None], interval_seconds: float = 0.25) -> None:
        """Deliver from a daemon thread, calling ``tick`` first each round (the emulator
        applies its due churn there, so changes are notified without any API request)."""
        if self._thread is not None:
            return

        def run() -> None:
            while not self._stop.wait(interval_seconds):
                try:
                    tick()
                    self.deliver_due()
                except Exception:  # noqa: BLE001 - an emulator bug must not stop delivery
                    log.exception("webhook delivery round failed")

        self._thread = threading.Thread(target=run, daemon=True, name="webhook-outbox")
        self._thread.start()

    @property
    def subscribed(self) -> bool:
        return bool(self.subscriptions)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def json_body(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def subscription_answer(sub: WebhookSubscription, account_ref: str | None,
                        **extra: Any) -> dict[str, Any]:
    """What ``POST /__sandbox/webhooks`` answers: where and how the emulator will sign."""
    return {"id": sub.id, "url": sub.url, "secret": sub.secret, "account_ref": account_ref,
            **extra}
