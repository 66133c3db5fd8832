"""What a provider's notification says changed: which account, which event, which
Interaction Type. Nothing else is used: the normal incremental sync fetches the change."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

#: Providers that push, and the Interaction Types their notifications can name.
PUSH_PROVIDERS = ("hubspot", "intercom", "stripe", "zendesk")


class MalformedNotification(ValueError):
    """The body is not a notification of this provider."""


@dataclass(frozen=True)
class Notice:
    """One change notification: the provider's account id, a stable event id (the same on
    every retry), and the Interaction Type it concerns (``None``: nothing we sync)."""

    account_ref: str | None
    event_id: str
    interaction_type: str | None


_HUBSPOT_OBJECTS = {"contact": "contacts", "company": "accounts", "deal": "deals",
                    "ticket": "tickets"}
# Generic webhooks (``object.*``) name the object by its type id.
_HUBSPOT_TYPE_IDS = {"0-1": "contacts", "0-2": "accounts", "0-3": "deals", "0-5": "tickets",
                     "0-27": "tasks"}
_ZENDESK_OBJECTS = {"ticket": "tickets", "user": "contacts", "organization": "accounts"}
_INTERCOM_OBJECTS = {"company": "accounts", "contact": "contacts", "user": "contacts",
                     "visitor": "contacts", "conversation": "tickets", "ticket": "tickets"}


def _load(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise MalformedNotification("not JSON") from None


def _text(value: Any) -> str | None:
    return None if value is None or isinstance(value, dict | list) else str(value)


def _hubspot(payload: Any) -> list[Notice]:
    # HubSpot sends a batch: a JSON array of up to 100 events.
    if not isinstance(payload, list):
        raise MalformedNotification("a HubSpot notification is a JSON array")
    notices = []
    for event in payload:
        if not isinstance(event, dict) or "eventId" not in event:
            raise MalformedNotification("a HubSpot event lacks its eventId")
        kind = str(event.get("subscriptionType", ""))
        obj = kind.split(".", 1)[0]
        found = (_HUBSPOT_TYPE_IDS.get(str(event.get("objectTypeId", "")))
                 if obj == "object" else _HUBSPOT_OBJECTS.get(obj))
        # eventId alone is not guaranteed unique (HubSpot's docs): with the object and the
        # time it is, and a retry repeats all three.
        event_id = ":".join(str(event.get(k, "")) for k in ("eventId", "subscriptionId",
                                                             "objectId", "occurredAt"))
        notices.append(Notice(_text(event.get("portalId")), event_id, found))
    return notices


def _stripe(payload: Any) -> list[Notice]:
    if not isinstance(payload, dict) or payload.get("object") != "event" \
            or not payload.get("id"):
        raise MalformedNotification("a Stripe notification is an event object")
    kind = str(payload.get("type", ""))
    found = ("subscriptions" if kind.startswith("customer.subscription.")
             else "accounts" if kind.startswith("customer.")
             else "invoices" if kind.startswith("invoice.") else None)
    return [Notice(_text(payload.get("account")), str(payload["id"]), found)]


def _zendesk(payload: Any) -> list[Notice]:
    if not isinstance(payload, dict) or not payload.get("id") or "type" not in payload:
        raise MalformedNotification("a Zendesk notification is an event with id and type")
    kind = str(payload["type"]).removeprefix("zen:event-type:")
    found = _ZENDESK_OBJECTS.get(kind.split(".", 1)[0])
    return [Notice(_text(payload.get("account_id")), str(payload["id"]), found)]


def _intercom(payload: Any) -> list[Notice]:
    if not isinstance(payload, dict) or payload.get("type") != "notification_event" \
            or not payload.get("id"):
        raise MalformedNotification("an Intercom notification is a notification_event")
    topic = str(payload.get("topic", ""))
    found = None if topic == "ping" else _INTERCOM_OBJECTS.get(topic.split(".", 1)[0])
    return [Notice(_text(payload.get("app_id")), str(payload["id"]), found)]


_PARSERS = {"hubspot": _hubspot, "stripe": _stripe, "zendesk": _zendesk,
            "intercom": _intercom}


def parse(provider: str, body: bytes) -> list[Notice]:
    """The notices in a notification body of ``provider``.

    Raises:
        MalformedNotification: The body is not one of that provider's notifications.
    """
    return _PARSERS[provider](_load(body))
