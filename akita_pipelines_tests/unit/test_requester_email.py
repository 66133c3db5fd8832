"""Streams fill ``requester_email`` on linked records (the processor links them by it)."""

from __future__ import annotations

from typing import Any

import pytest

from akita_pipelines.providers.hubspot.streams import STREAMS as HUBSPOT
from akita_pipelines.providers.hubspot.streams import custom_stream
from akita_pipelines.providers.mapping import parse_mapping


def _mapped(interaction_type: str, fields: dict[str, str] | None = None) -> Any:
    return parse_mapping(interaction_type, {"primary_key": "id", "updated_at": "at",
                                            "fields": fields or {}}, where="streams.x")


@pytest.mark.parametrize(("row", "expected"), [
    ({"requester_email": "a@x.com", "email": "b@x.com"}, "a@x.com"),
    ({"RequesterEmail": "c@x.com", "from_email": "d@x.com"}, "c@x.com"),
    ({"SuppliedEmail": "web form", "from_email": "d@x.com"}, "d@x.com"),  # no @: passed over
    ({"email": 42}, None),
    ({"contact_email": "e@x.com"}, None),
])
def test_an_unmapped_requester_column_fills_requester_email(row: dict[str, Any],
                                                            expected: str | None) -> None:
    typed = _mapped("tickets").to_typed({"id": "t1", "at": "2026-01-01T00:00:00Z", **row})
    assert typed.requester_email == expected
    assert typed.email is None  # the record's own email says where its account is: untouched
    assert dict(typed.fields) == row  # the payload keeps its columns as they came


def test_a_mapped_requester_wins_and_is_consumed() -> None:
    typed = _mapped("tickets", {"requester_email": "asked_by"}).to_typed(
        {"id": "t1", "at": "2026-01-01", "asked_by": "a@x.com", "email": "b@x.com"})
    assert (typed.requester_email, dict(typed.fields)) == ("a@x.com", {"email": "b@x.com"})


def test_accounts_and_contacts_have_no_requester() -> None:
    for kind in ("accounts", "contacts"):
        typed = _mapped(kind).to_typed({"id": "1", "at": "2026-01-01",
                                        "requester_email": "a@x.com"})
        assert typed.requester_email is None


def _hubspot(properties: dict[str, Any]) -> dict[str, Any]:
    return {"id": "1", "updatedAt": "2026-01-01T00:00:00Z", "archived": False,
            "properties": properties}


def test_a_hubspot_custom_object_names_its_requester_by_its_email_property() -> None:
    stream = custom_stream("cars", {"object_type": "p_cars", "properties": ["email"]})
    typed = stream.to_typed(_hubspot({"hs_object_id": "1", "email": "a@x.com"}))
    assert typed.requester_email == "a@x.com"
    assert HUBSPOT["tickets"].to_typed(_hubspot({"subject": "Help"})).requester_email is None
