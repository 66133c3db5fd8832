"""Stripe resources as Akita interaction types. Endpoint tables are data.

Customers are accounts (Stripe has no contacts). Subscriptions and invoices are interaction
types of their own, built into the provider rather than declared by a customer. A Stripe
object has no "last modified" field: the connector stamps each payload it hands over with
:data:`CHANGED_AT`, the time of the event that carried it (or the object's ``created`` when it
came from a list), and that stamp is the stream's cursor field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from akita_pipelines.core.clock import parse_datetime
from akita_pipelines.core.types import TypedRecord
from akita_pipelines.providers.base import Stream, by_type
from akita_pipelines.providers.payload import text as _text

#: Added by the connector to every payload: when the change it shows happened (ISO-8601).
CHANGED_AT = "akita_changed_at"


@dataclass(frozen=True)
class Resource:
    """How one Stripe resource is listed and which events report its changes.

    Attributes:
        path: the list endpoint under ``/v1``.
        list_params: extra list parameters (subscriptions hide canceled ones by default).
        events: the event types that carry the object (``types[]``, at most 20).
        deletions: the event types after which the object no longer exists.
    """

    path: str
    list_params: Mapping[str, str]
    events: tuple[str, ...]
    deletions: tuple[str, ...]


RESOURCES: Mapping[str, Resource] = {
    "customers": Resource(
        "customers", {}, ("customer.created", "customer.updated", "customer.deleted"),
        ("customer.deleted",)),
    # customer.subscription.deleted is a cancellation: the subscription still exists.
    "subscriptions": Resource(
        "subscriptions", {"status": "all"},
        tuple(f"customer.subscription.{a}" for a in (
            "created", "updated", "deleted", "paused", "resumed", "pending_update_applied",
            "pending_update_expired", "trial_will_end")),
        ()),
    # invoice.upcoming is left out: an upcoming invoice has no id.
    "invoices": Resource(
        "invoices", {},
        tuple(f"invoice.{a}" for a in (
            "created", "updated", "deleted", "finalized", "finalization_failed", "paid",
            "payment_action_required", "payment_failed", "payment_succeeded", "sent",
            "marked_uncollectible", "voided", "overdue", "will_be_due")),
        ("invoice.deleted",)),
}


def stamp(value: datetime) -> str:
    """The :data:`CHANGED_AT` rendering of a time (UTC, seconds: Stripe's precision)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")




def _ref(payload: Mapping[str, Any], key: str) -> str | None:
    """An id field that may come expanded into the object it names."""
    value = payload.get(key)
    if isinstance(value, Mapping):
        value = value.get("id")
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise TypeError(f"{key} must be an id string")
    return value


def _base(interaction_type: str, expected: str, payload: Mapping[str, Any],
          consumed: tuple[str, ...], **typed: Any) -> TypedRecord:
    object_id = payload["id"]
    if not isinstance(object_id, str) or not object_id:
        raise ValueError("id must be a non-empty string")
    if payload.get("object") != expected:
        raise ValueError(f"object must be {expected!r}, got {payload.get('object')!r}")
    deleted = payload.get("deleted") is True
    changed = payload.get(CHANGED_AT)
    if changed is not None:
        if not isinstance(changed, str):
            raise TypeError(f"{CHANGED_AT} must be a string")
        updated_at: datetime | None = parse_datetime(changed)
    elif deleted and "created" not in payload:
        updated_at = None  # a deleted object as GET shows it: {"id", "object", "deleted"}
    else:
        created = payload["created"]
        if not isinstance(created, int) or isinstance(created, bool):
            raise TypeError("created must be a unix timestamp")
        updated_at = datetime.fromtimestamp(created, UTC)
    skip = {"id", "object", "deleted", CHANGED_AT, *consumed}
    return TypedRecord(
        interaction_type=interaction_type, external_id=object_id, updated_at=updated_at,
        deleted=deleted, fields={k: v for k, v in payload.items() if k not in skip}, **typed)


def customer(payload: Mapping[str, Any]) -> TypedRecord:
    """A customer as an account. There is no website: the account's domain comes from the
    billing email (free-mail domains are ignored by the matcher). ``metadata`` stays in
    ``fields``, where cross-system ids such as ``metadata.salesforce_account_id`` are read."""
    return _base("accounts", "customer", payload, ("name", "email", "phone"),
                 name=_text(payload, "name"), email=_text(payload, "email"),
                 phone=_text(payload, "phone"))


def subscription(payload: Mapping[str, Any]) -> TypedRecord:
    items = payload.get("items")
    plan = None
    if isinstance(items, Mapping) and isinstance(items.get("data"), list) and items["data"]:
        price = items["data"][0].get("price") if isinstance(items["data"][0], Mapping) else None
        if isinstance(price, Mapping):
            plan = _text(price, "nickname") or _text(price, "id")
    status = _text(payload, "status")
    name = _text(payload, "description") or " ".join(p for p in (plan, status) if p) or None
    return _base("subscriptions", "subscription", payload, ("customer",), name=name,
                 account_ref=_ref(payload, "customer"))


def invoice(payload: Mapping[str, Any]) -> TypedRecord:
    return _base("invoices", "invoice", payload, ("customer",),
                 name=_text(payload, "number") or _text(payload, "description"),
                 email=_text(payload, "customer_email"),
                 account_ref=_ref(payload, "customer"))


def _stream(interaction_type: str, source_object: str, to_typed: Any) -> Stream:
    return Stream(interaction_type=interaction_type, source_object=source_object,
                  primary_key="id", cursor_field=CHANGED_AT, fields=(), to_typed=to_typed)


STREAMS = by_type(
    _stream("accounts", "customers", customer),
    _stream("subscriptions", "subscriptions", subscription),
    _stream("invoices", "invoices", invoice),
)
