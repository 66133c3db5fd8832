"""Domain types shared by every room. Frozen dataclasses, no behaviour beyond small helpers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: The standard interaction types, in the order a sync processes them: accounts before contacts
#: (so contacts can link to their account) before the records that refer to both.
STANDARD_TYPES: tuple[str, ...] = ("accounts", "contacts", "deals", "tickets", "tasks")

#: The types matched into Accounts and Contacts; every other type is linked to them.
MATCHED_TYPES: tuple[str, ...] = ("accounts", "contacts")


def type_order(interaction_type: str) -> int:
    """Sort key placing standard types in dependency order and custom types after them."""
    try:
        return STANDARD_TYPES.index(interaction_type)
    except ValueError:
        return len(STANDARD_TYPES)


@dataclass(frozen=True)
class Customer:
    id: str
    name: str
    admin_email: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Integration:
    """One customer's connection to one provider. ``id`` is globally unique: ``provider.slug``."""

    id: str
    customer_id: str
    provider: str
    config: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    state: str = "active"


@dataclass(frozen=True)
class TypedRecord:
    """One interaction in typed form: the fields the processor needs, plus the rest as ``fields``.

    ``account_ref`` / ``contact_ref`` are the *source* ids of the account or contact the record
    belongs to in the same provider (a contact's AccountId, a deal's company).
    ``requester_email`` names the person a linked record (a ticket, a task) comes from when the
    source gives an email rather than an id: it links the record to that Contact, and unlike
    ``email`` it says nothing about the record's Account. Accounts and contacts leave it empty.
    """

    interaction_type: str
    external_id: str
    updated_at: datetime | None
    name: str | None = None
    email: str | None = None
    website: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    account_ref: str | None = None
    contact_ref: str | None = None
    requester_email: str | None = None
    deleted: bool = False
    fields: Mapping[str, Any] = field(default_factory=dict)
