"""Each provider's webhook signature: authentic, tampered, forged, stale."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from akita_pipelines.push import notifications
from akita_pipelines.push.signatures import BAD, STALE, verify

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
SECRET = "s3cret"
URL = "https://hooks.example.com/webhooks/hubspot/tok?x=1"


def _hubspot(secret: str, body: bytes, at: datetime, url: str = URL) -> dict[str, str]:
    stamp = str(int(at.timestamp() * 1000))
    digest = hmac.new(secret.encode(), b"POST" + url.encode() + body + stamp.encode(),
                      hashlib.sha256).digest()
    return {"X-HubSpot-Signature-v3": base64.b64encode(digest).decode(),
            "X-HubSpot-Request-Timestamp": stamp}


def _stripe(secret: str, body: bytes, at: datetime) -> dict[str, str]:
    t = str(int(at.timestamp()))
    v1 = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={t},v1={v1}"}


def _zendesk(secret: str, body: bytes, at: datetime) -> dict[str, str]:
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
    return {"X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode(),
            "X-Zendesk-Webhook-Signature-Timestamp": stamp}


def _intercom(secret: str, body: bytes, at: datetime) -> dict[str, str]:
    del at
    return {"X-Hub-Signature": "sha1=" + hmac.new(secret.encode(), body,
                                                   hashlib.sha1).hexdigest()}


def _body(provider: str, at: datetime) -> bytes:
    payload: object = {
        "hubspot": [{"eventId": 1, "subscriptionId": 2, "portalId": 62515, "objectId": 5,
                     "occurredAt": 1, "subscriptionType": "contact.propertyChange"}],
        "stripe": {"id": "evt_1", "object": "event", "type": "customer.updated"},
        "zendesk": {"id": "e1", "type": "zen:event-type:ticket.created", "account_id": 7},
        "intercom": {"type": "notification_event", "id": "notif_1", "app_id": "abc",
                     "topic": "company.updated", "created_at": int(at.timestamp())},
    }[provider]
    return json.dumps(payload).encode()


SIGNERS = {"hubspot": _hubspot, "stripe": _stripe, "zendesk": _zendesk, "intercom": _intercom}


def _check(provider: str, headers: dict[str, str], body: bytes,
           now: datetime = NOW) -> str | None:
    return verify(provider, SECRET, method="POST", uri=URL, body=body, headers=headers,
                  now=now)


@pytest.mark.parametrize("provider", sorted(SIGNERS))
def test_authentic_notifications_pass(provider: str) -> None:
    body = _body(provider, NOW)
    assert _check(provider, SIGNERS[provider](SECRET, body, NOW), body) is None


@pytest.mark.parametrize("provider", sorted(SIGNERS))
def test_forged_and_tampered_notifications_are_refused(provider: str) -> None:
    body = _body(provider, NOW)
    forged = SIGNERS[provider]("someone-else", body, NOW)
    assert _check(provider, forged, body) == BAD
    signed = SIGNERS[provider](SECRET, body, NOW)
    tampered = body.replace(b"1", b"2", 1)
    assert _check(provider, signed, tampered) == BAD
    assert _check(provider, {}, body) == BAD
    # Truncated signature.
    cut = {k: v[:-4] if "ignature" in k else v for k, v in signed.items()}
    assert _check(provider, cut, body) == BAD


@pytest.mark.parametrize("provider", sorted(SIGNERS))
def test_replayed_outside_the_window_is_stale(provider: str) -> None:
    sent = NOW - timedelta(hours=1)
    body = _body(provider, sent)
    assert _check(provider, SIGNERS[provider](SECRET, body, sent), body) == STALE


def test_hubspot_signs_method_and_full_url() -> None:
    body = _body("hubspot", NOW)
    headers = _hubspot(SECRET, body, NOW, url="https://elsewhere.example/webhooks/hubspot/tok")
    assert _check("hubspot", headers, body) == BAD
    # HubSpot decodes some escapes in the URI before signing.
    encoded = "https://hooks.example.com/webhooks/hubspot/tok%3Fx=1"
    decoded = "https://hooks.example.com/webhooks/hubspot/tok?x=1"
    headers = _hubspot(SECRET, body, NOW, url=decoded)
    assert verify("hubspot", SECRET, method="POST", uri=encoded, body=body, headers=headers,
                  now=NOW) is None


def test_stripe_accepts_any_of_several_signatures() -> None:
    body = _body("stripe", NOW)
    good = _stripe(SECRET, body, NOW)["Stripe-Signature"]
    t, v1 = good.split(",")
    both = {"Stripe-Signature": f"{t},v1={'0' * 64},{v1}"}
    assert _check("stripe", both, body) is None


def test_notifications_name_the_interaction_types() -> None:
    hub = notifications.parse("hubspot", json.dumps([
        {"eventId": 1, "portalId": 9, "subscriptionType": "company.creation"},
        {"eventId": 2, "portalId": 9, "subscriptionType": "object.propertyChange",
         "objectTypeId": "0-27"},
        {"eventId": 3, "portalId": 9, "subscriptionType": "product.creation"}]).encode())
    assert [(n.account_ref, n.interaction_type) for n in hub] == [
        ("9", "accounts"), ("9", "tasks"), ("9", None)]
    stripe = notifications.parse("stripe", json.dumps(
        {"id": "evt_1", "object": "event", "type": "customer.subscription.updated"}).encode())
    assert stripe[0].interaction_type == "subscriptions"
    with pytest.raises(notifications.MalformedNotification):
        notifications.parse("stripe", b'{"id": "evt_1"')
