"""Intercom objects as Akita interaction types. Endpoint tables are data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from akita_pipelines.core.types import TypedRecord
from akita_pipelines.providers.base import Stream, by_type
from akita_pipelines.providers.mapping import as_datetime
from akita_pipelines.providers.payload import text as _text

#: Keys read into typed fields; everything else stays in ``fields``.
_COMMON = ("type", "id", "updated_at")




def _mapping(payload: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"{key} must be an object, got {type(value).__name__}")
    return value


def _first_id(container: Mapping[str, Any] | None, list_key: str, what: str) -> str | None:
    """The id of the first item of an Intercom list object (``{data: [{id, ...}]}``)."""
    if container is None:
        return None
    items = container.get(list_key) or []
    if not isinstance(items, list):
        raise TypeError(f"{what}.{list_key} must be a list")
    if not items:
        return None
    first = items[0]
    if not isinstance(first, Mapping):
        raise TypeError(f"{what}.{list_key} must hold objects")
    return _text(first, "id")


def _base(interaction_type: str, payload: Mapping[str, Any], consumed: tuple[str, ...],
          deleted: bool = False, **typed: Any) -> TypedRecord:
    record_id = payload["id"]
    if not isinstance(record_id, str) or not record_id:
        raise ValueError("id must be a non-empty string")
    # The connector stages updated_at as ISO-8601; the API sends UNIX seconds. Take both.
    try:
        updated = as_datetime(payload["updated_at"], "updated_at")
    except ValueError:
        raise ValueError(f"updated_at {payload['updated_at']!r} is not a timestamp") from None
    if updated is None:
        raise ValueError("updated_at is missing")
    skip = {*_COMMON, *consumed}
    return TypedRecord(interaction_type=interaction_type, external_id=record_id,
                       updated_at=updated, deleted=deleted,
                       fields={k: v for k, v in payload.items() if k not in skip}, **typed)


def company(payload: Mapping[str, Any]) -> TypedRecord:
    """A company: Intercom keeps no phone number on companies."""
    return _base("accounts", payload, ("name", "website"), name=_text(payload, "name"),
                 website=_text(payload, "website"))


def contact(payload: Mapping[str, Any]) -> TypedRecord:
    """A contact (user or lead); its first company is its account."""
    name = _text(payload, "name")
    first = last = None
    if name:
        # Intercom keeps one name field: the first word is the given name.
        first, _, rest = name.strip().partition(" ")
        last = rest.strip() or None
    return _base("contacts", payload, ("name", "email", "phone", "companies"), name=name,
                 first_name=first, last_name=last, email=_text(payload, "email"),
                 phone=_text(payload, "phone"),
                 account_ref=_first_id(_mapping(payload, "companies"), "data", "companies"))


def conversation(payload: Mapping[str, Any]) -> TypedRecord:
    """A conversation as a ticket: its title (or subject), first contact and company."""
    if "deleted_at" in payload:
        # An entry of GET /conversations/deleted, staged with updated_at = deleted_at.
        return _base("tickets", payload, (), deleted=True)
    source = _mapping(payload, "source")
    title = _text(payload, "title") or (_text(source, "subject") if source else None)
    company_ref = _mapping(payload, "company")
    return _base("tickets", payload, ("title", "contacts", "company"), name=title,
                 contact_ref=_first_id(_mapping(payload, "contacts"), "contacts", "contacts"),
                 account_ref=_text(company_ref, "id") if company_ref else None)


def _stream(interaction_type: str, source_object: str, to_typed: Any) -> Stream:
    return Stream(interaction_type=interaction_type, source_object=source_object,
                  primary_key="id", cursor_field="updated_at", fields=(), to_typed=to_typed)


STREAMS = by_type(
    _stream("accounts", "companies", company),
    _stream("contacts", "contacts", contact),
    _stream("tickets", "conversations", conversation),
)
