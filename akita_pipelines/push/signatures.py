"""Each provider's webhook signature scheme, checked in constant time, with its replay window.

Every check returns ``None`` when the request is authentic and fresh, else the outcome to
count: ``bad_signature`` (missing, malformed or wrong) or ``stale`` (authentic but outside
the replay window). The signature is checked first, so an unsigned request is never told
apart by its age.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

BAD = "bad_signature"
STALE = "stale"

#: HubSpot: "reject the request if the timestamp is older than 5 minutes".
HUBSPOT_WINDOW_SECONDS = 300
#: Stripe's libraries' default tolerance.
STRIPE_WINDOW_SECONDS = 300
#: Zendesk signs the timestamp it sends; we apply the same five minutes.
ZENDESK_WINDOW_SECONDS = 300
#: Intercom signs only the body: its ``created_at`` is the clock. Intercom retries a failed
#: notification once, a minute later, so the window is wider.
INTERCOM_WINDOW_SECONDS = 900

# HubSpot's v3 source string uses the URI with these escapes decoded (HubSpot's docs).
_HUBSPOT_DECODE = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
                   "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";"}


def _header(headers: Mapping[str, str], name: str) -> str:
    # Starlette's headers are case-insensitive; a plain dict from a test may not be.
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    return value or ""


def _outside(stamp: float, now: datetime, window: float) -> bool:
    return abs(now.timestamp() - stamp) > window


def hubspot_uri(uri: str) -> str:
    for escaped, plain in _HUBSPOT_DECODE.items():
        uri = uri.replace(escaped, plain).replace(escaped.lower(), plain)
    return uri


def verify_hubspot(secret: str, *, method: str, uri: str, body: bytes,
                   headers: Mapping[str, str], now: datetime) -> str | None:
    """``X-HubSpot-Signature-v3`` = base64(HMAC-SHA256(app secret, method + URI + body +
    ``X-HubSpot-Request-Timestamp``)), the timestamp in epoch milliseconds."""
    signature = _header(headers, "X-HubSpot-Signature-v3")
    stamp = _header(headers, "X-HubSpot-Request-Timestamp")
    if not signature or not stamp.isdigit():
        return BAD
    source = method.upper().encode() + hubspot_uri(uri).encode() + body + stamp.encode()
    expected = base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest())
    if not hmac.compare_digest(expected, signature.strip().encode()):
        return BAD
    return STALE if _outside(int(stamp) / 1000, now, HUBSPOT_WINDOW_SECONDS) else None


def verify_stripe(secret: str, *, body: bytes, headers: Mapping[str, str],
                  now: datetime) -> str | None:
    """``Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]``: hex HMAC-SHA256(endpoint secret,
    ``"<t>." + body``); any ``v1`` may match (Stripe sends one per active secret)."""
    stamp, candidates = "", []
    for item in _header(headers, "Stripe-Signature").split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            stamp = value
        elif key == "v1":
            candidates.append(value.encode())
    if not stamp.isdigit() or not candidates:
        return BAD
    expected = hmac.new(secret.encode(), stamp.encode() + b"." + body,
                        hashlib.sha256).hexdigest().encode()
    # Compare with every candidate: the time taken does not depend on which one matched.
    matched = [hmac.compare_digest(expected, c) for c in candidates]
    if not any(matched):
        return BAD
    return STALE if _outside(int(stamp), now, STRIPE_WINDOW_SECONDS) else None


def verify_zendesk(secret: str, *, body: bytes, headers: Mapping[str, str],
                   now: datetime) -> str | None:
    """``X-Zendesk-Webhook-Signature`` = base64(HMAC-SHA256(signing secret, timestamp +
    body)), ``X-Zendesk-Webhook-Signature-Timestamp`` an ISO 8601 time."""
    signature = _header(headers, "X-Zendesk-Webhook-Signature")
    stamp = _header(headers, "X-Zendesk-Webhook-Signature-Timestamp")
    if not signature or not stamp:
        return BAD
    expected = base64.b64encode(hmac.new(secret.encode(), stamp.encode() + body,
                                         hashlib.sha256).digest())
    if not hmac.compare_digest(expected, signature.strip().encode()):
        return BAD
    try:
        sent = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return BAD
    if sent.tzinfo is None:
        return BAD
    return STALE if _outside(sent.timestamp(), now, ZENDESK_WINDOW_SECONDS) else None


def verify_intercom(secret: str, *, body: bytes, headers: Mapping[str, str],
                    now: datetime) -> str | None:
    """``X-Hub-Signature: sha1=<hex HMAC-SHA1(client secret, body)>``; the signed body's
    ``created_at`` (unix seconds) dates it."""
    signature = _header(headers, "X-Hub-Signature")
    scheme, _, digest = signature.partition("=")
    if scheme != "sha1" or not digest:
        return BAD
    expected = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest().encode()
    if not hmac.compare_digest(expected, digest.strip().encode()):
        return BAD
    try:
        payload: Any = json.loads(body)
    except ValueError:
        return BAD
    created = payload.get("created_at") if isinstance(payload, dict) else None
    if not isinstance(created, int | float):
        return BAD
    return STALE if _outside(float(created), now, INTERCOM_WINDOW_SECONDS) else None


def verify(provider: str, secret: str, *, method: str, uri: str, body: bytes,
           headers: Mapping[str, str], now: datetime) -> str | None:
    """The check of ``provider``'s scheme (``None``: authentic and fresh)."""
    if provider == "hubspot":
        return verify_hubspot(secret, method=method, uri=uri, body=body, headers=headers,
                              now=now)
    if provider == "stripe":
        return verify_stripe(secret, body=body, headers=headers, now=now)
    if provider == "zendesk":
        return verify_zendesk(secret, body=body, headers=headers, now=now)
    if provider == "intercom":
        return verify_intercom(secret, body=body, headers=headers, now=now)
    raise ValueError(f"no webhook signature scheme for {provider!r}")
