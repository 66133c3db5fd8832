"""Zendesk resources as Akita interaction types: organizations, users, tickets.

Exports return every field of a record, so ``fields`` is empty. Ids are integers; Akita keeps
them as strings. Deleted records stay in the exports: organizations carry ``deleted_at``,
users ``active: false`` and tickets ``status: "deleted"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from akita_pipelines.core.clock import parse_datetime
from akita_pipelines.core.types import TypedRecord
from akita_pipelines.providers.base import Stream, by_type
from akita_pipelines.providers.payload import text as _text


def _ref(payload: Mapping[str, Any], key: str) -> str | None:
    """A reference to another record (``organization_id``, ``requester_id``) as a string id."""
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{key} must be an integer id, got {type(value).__name__}")
    return str(value)


def _base(interaction_type: str, payload: Mapping[str, Any], *, deleted: bool,
          consumed: tuple[str, ...], **typed: Any) -> TypedRecord:
    record_id = payload["id"]
    if isinstance(record_id, bool) or not isinstance(record_id, int):
        raise TypeError("id must be an integer")
    updated = payload["updated_at"]
    if not isinstance(updated, str):
        raise TypeError("updated_at must be a string")
    skip = {"id", "updated_at", "url", *consumed}
    return TypedRecord(
        interaction_type=interaction_type,
        external_id=str(record_id),
        updated_at=parse_datetime(updated),
        deleted=deleted,
        fields={k: v for k, v in payload.items() if k not in skip},
        **typed,
    )


def organization(payload: Mapping[str, Any]) -> TypedRecord:
    domains = payload.get("domain_names") or []
    if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
        raise TypeError("domain_names must be a list of strings")
    custom = payload.get("organization_fields") or {}
    if not isinstance(custom, Mapping):
        raise TypeError("organization_fields must be an object")
    return _base("accounts", payload, deleted=payload.get("deleted_at") is not None,
                 consumed=("name",), name=_text(payload, "name"),
                 website=domains[0] if domains else None, phone=_text(custom, "phone"))


def user(payload: Mapping[str, Any]) -> TypedRecord:
    name = _text(payload, "name")
    # Zendesk keeps one name field; the last word is the best guess at the family name.
    first, _, last = (name or "").rpartition(" ")
    active = payload.get("active", True)
    if not isinstance(active, bool):
        raise TypeError("active must be a boolean")
    return _base("contacts", payload, deleted=not active,
                 consumed=("name", "email", "phone", "organization_id"),
                 name=name, first_name=first or None, last_name=last or None,
                 email=_text(payload, "email"), phone=_text(payload, "phone"),
                 account_ref=_ref(payload, "organization_id"))


def ticket(payload: Mapping[str, Any]) -> TypedRecord:
    status = _text(payload, "status")
    return _base("tickets", payload, deleted=status == "deleted",
                 consumed=("subject", "organization_id", "requester_id"),
                 name=_text(payload, "subject"),
                 account_ref=_ref(payload, "organization_id"),
                 contact_ref=_ref(payload, "requester_id"))


def _stream(interaction_type: str, resource: str, to_typed: Any) -> Stream:
    return Stream(interaction_type=interaction_type, source_object=resource, primary_key="id",
                  cursor_field="updated_at", fields=(), to_typed=to_typed)


STREAMS = by_type(
    _stream("accounts", "organizations", organization),
    _stream("contacts", "users", user),
    _stream("tickets", "tickets", ticket),
)
