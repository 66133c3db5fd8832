"""Salesforce objects as Akita interaction types. Endpoint tables are data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from akita_pipelines.core.clock import parse_datetime
from akita_pipelines.core.types import TypedRecord
from akita_pipelines.providers.base import Stream
from akita_pipelines.providers.payload import text as _text

_COMMON = ("Id", "SystemModstamp", "CreatedDate", "IsDeleted")


def _value(value: Any) -> Any:
    """A field's value without API metadata: a relationship's nested ``attributes`` (REST
    sends them, Bulk API CSV has none) say nothing about the record."""
    if isinstance(value, dict) and "attributes" in value:
        return {k: v for k, v in value.items() if k != "attributes"}
    return value


def _base(interaction_type: str, payload: Mapping[str, Any], **typed: Any) -> TypedRecord:
    record_id = payload["Id"]
    if not isinstance(record_id, str) or not record_id:
        raise ValueError("Id must be a non-empty string")
    modstamp = payload["SystemModstamp"]
    if not isinstance(modstamp, str):
        raise TypeError("SystemModstamp must be a string")
    skip = {"attributes", *_COMMON, *typed.pop("_consumed", ())}
    return TypedRecord(
        interaction_type=interaction_type,
        external_id=record_id,
        updated_at=parse_datetime(modstamp),
        deleted=bool(payload.get("IsDeleted", False)),
        fields={k: _value(v) for k, v in payload.items() if k not in skip},
        **typed,
    )


def account(payload: Mapping[str, Any]) -> TypedRecord:
    return _base("accounts", payload, name=_text(payload, "Name"),
                 website=_text(payload, "Website"), phone=_text(payload, "Phone"),
                 _consumed=("Name", "Website", "Phone"))


def contact(payload: Mapping[str, Any]) -> TypedRecord:
    first, last = _text(payload, "FirstName"), _text(payload, "LastName")
    name = _text(payload, "Name") or " ".join(p for p in (first, last) if p) or None
    return _base("contacts", payload, name=name, first_name=first, last_name=last,
                 email=_text(payload, "Email"), phone=_text(payload, "Phone"),
                 account_ref=_text(payload, "AccountId"),
                 _consumed=("FirstName", "LastName", "Name", "Email", "Phone", "AccountId"))


def opportunity(payload: Mapping[str, Any]) -> TypedRecord:
    return _base("deals", payload, name=_text(payload, "Name"),
                 account_ref=_text(payload, "AccountId"), _consumed=("Name", "AccountId"))


def case(payload: Mapping[str, Any]) -> TypedRecord:
    return _base("tickets", payload, name=_text(payload, "Subject"),
                 account_ref=_text(payload, "AccountId"), contact_ref=_text(payload, "ContactId"),
                 _consumed=("Subject", "AccountId", "ContactId"))


def task(payload: Mapping[str, Any]) -> TypedRecord:
    what = _text(payload, "WhatId")
    # WhatId points at any object; only an Account id (prefix 001) names the account.
    return _base("tasks", payload, name=_text(payload, "Subject"),
                 account_ref=what if what and what.startswith("001") else None,
                 contact_ref=_text(payload, "WhoId"), _consumed=("Subject", "WhoId"))


def _stream(interaction_type: str, sobject: str, fields: tuple[str, ...],
            to_typed: Any) -> Stream:
    return Stream(interaction_type=interaction_type, source_object=sobject, primary_key="Id",
                  cursor_field="SystemModstamp", fields=_COMMON + fields, to_typed=to_typed)


STREAMS: Mapping[str, Stream] = {
    s.interaction_type: s
    for s in (
        _stream("accounts", "Account",
                ("Name", "Website", "Phone", "BillingCity", "BillingCountry", "Industry",
                 "NumberOfEmployees"), account),
        _stream("contacts", "Contact",
                ("FirstName", "LastName", "Name", "Email", "Phone", "Title", "AccountId"),
                contact),
        _stream("deals", "Opportunity", ("Name", "AccountId", "Amount", "StageName", "CloseDate"),
                opportunity),
        _stream("tickets", "Case", ("Subject", "Status", "Priority", "AccountId", "ContactId"),
                case),
        _stream("tasks", "Task", ("Subject", "Status", "ActivityDate", "WhoId", "WhatId"), task),
    )
}
