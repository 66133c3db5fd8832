"""HubSpot CRM objects as Akita interaction types. Endpoint tables are data.

Payloads are CRM v3 objects as the API serves them (``{id, properties, createdAt, updatedAt,
archived}``) plus the ``associations`` block of ``GET /crm/v3/objects/...?associations=``,
which the connector fills from the v4 associations API because search does not return it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from akita_pipelines.core.clock import parse_datetime
from akita_pipelines.core.errors import ConfigError
from akita_pipelines.core.types import TypedRecord
from akita_pipelines.providers.base import Stream, by_type
from akita_pipelines.providers.payload import first_email
from akita_pipelines.providers.payload import text as _text


@dataclass(frozen=True)
class ObjectInfo:
    """What the connector needs to know about a HubSpot object beyond its :class:`Stream`.

    Attributes:
        singular: The name association types use (``contact`` in ``contact_to_company``).
        modified: The last-modified property search filters and sorts on.
        associations: The objects whose associated ids the records carry.
    """

    singular: str
    modified: str = "hs_lastmodifieddate"
    associations: tuple[str, ...] = ()


OBJECTS: Mapping[str, ObjectInfo] = {
    "companies": ObjectInfo("company"),
    # Contacts alone name it ``lastmodifieddate``: filtering them on hs_lastmodifieddate is a 400.
    "contacts": ObjectInfo("contact", "lastmodifieddate", ("companies",)),
    "deals": ObjectInfo("deal", associations=("companies", "contacts")),
    "tickets": ObjectInfo("ticket", associations=("companies", "contacts")),
    "tasks": ObjectInfo("task", associations=("companies", "contacts")),
}


def object_info(source_object: str, config: Mapping[str, Any] | None = None) -> ObjectInfo:
    """The :class:`ObjectInfo` of a standard object, or of a custom one from the integration's
    ``config["streams"]`` entry naming it (``object_type``, optional ``associations``)."""
    if source_object in OBJECTS:
        return OBJECTS[source_object]
    for stream_config in ((config or {}).get("streams") or {}).values():
        if isinstance(stream_config, Mapping) and \
                stream_config.get("object_type") == source_object:
            return ObjectInfo(source_object,
                              associations=tuple(stream_config.get("associations") or ()))
    return ObjectInfo(source_object)




def associated_id(payload: Mapping[str, Any], other: str) -> str | None:
    """The id of the ``other`` record this one belongs to: the primary association (typed
    ``x_to_y``) if there is one, else the first (``x_to_y_unlabeled``)."""
    associations = payload.get("associations") or {}
    if not isinstance(associations, Mapping):
        raise TypeError("associations must be an object")
    block = associations.get(other)
    if block is None:
        return None
    results = block["results"]
    if not isinstance(results, list):
        raise TypeError(f"associations.{other}.results must be a list")
    pairs = [(str(r["type"]), str(r["id"])) for r in results]
    primary = next((i for t, i in pairs if not t.endswith("_unlabeled")), None)
    return primary or (pairs[0][1] if pairs else None)


def _base(interaction_type: str, payload: Mapping[str, Any], **typed: Any) -> TypedRecord:
    record_id = payload["id"]
    if not isinstance(record_id, str) or not record_id:
        raise ValueError("id must be a non-empty string")
    updated = payload["updatedAt"]
    if not isinstance(updated, str):
        raise TypeError("updatedAt must be a string")
    props = payload["properties"]
    if not isinstance(props, Mapping):
        raise TypeError("properties must be an object")
    consumed = set(typed.pop("_consumed", ()))
    fields = {k: v for k, v in props.items() if k not in consumed}
    return TypedRecord(interaction_type=interaction_type, external_id=record_id,
                       updated_at=parse_datetime(updated),
                       deleted=bool(payload.get("archived", False)), fields=fields, **typed)


def company(payload: Mapping[str, Any]) -> TypedRecord:
    props = payload["properties"]
    return _base("accounts", payload, name=_text(props, "name"),
                 website=_text(props, "website") or _text(props, "domain"),
                 phone=_text(props, "phone"), _consumed=("name", "phone"))


def contact(payload: Mapping[str, Any]) -> TypedRecord:
    props = payload["properties"]
    first, last = _text(props, "firstname"), _text(props, "lastname")
    account = associated_id(payload, "companies") or _text(props, "associatedcompanyid")
    return _base("contacts", payload, name=" ".join(p for p in (first, last) if p) or None,
                 first_name=first, last_name=last, email=_text(props, "email"),
                 phone=_text(props, "phone"), account_ref=account,
                 _consumed=("firstname", "lastname", "email", "phone"))


#: A custom object's email properties that name the person it comes from, in order (HubSpot's
#: internal property names are lower case).
_REQUESTER_PROPERTIES = ("requester_email", "from_email", "email")


def _activity(interaction_type: str, name_property: str,
              payload: Mapping[str, Any]) -> TypedRecord:
    """Deals, tickets, tasks and custom objects: a name and the company / contact links."""
    props = payload["properties"]
    others = {k: v for k, v in props.items() if k != name_property}
    return _base(interaction_type, payload, name=_text(props, name_property),
                 account_ref=associated_id(payload, "companies"),
                 contact_ref=associated_id(payload, "contacts"),
                 requester_email=first_email(others, _REQUESTER_PROPERTIES),
                 _consumed=(name_property,))


_COMMON = ("hs_object_id", "createdate")


def _stream(interaction_type: str, obj: str, fields: tuple[str, ...],
            to_typed: Callable[[Mapping[str, Any]], TypedRecord]) -> Stream:
    # ``updatedAt`` mirrors the last-modified property and is top-level in every payload.
    return Stream(interaction_type=interaction_type, source_object=obj, primary_key="id",
                  cursor_field="updatedAt",
                  fields=(*_COMMON, OBJECTS[obj].modified, *fields), to_typed=to_typed)


STREAMS = by_type(
    _stream("accounts", "companies",
            ("name", "domain", "website", "phone", "city", "country", "industry",
             "numberofemployees"), company),
    _stream("contacts", "contacts",
            ("firstname", "lastname", "email", "phone", "jobtitle", "associatedcompanyid"),
            contact),
    _stream("deals", "deals", ("dealname", "amount", "dealstage", "pipeline", "closedate"),
            partial(_activity, "deals", "dealname")),
    _stream("tickets", "tickets",
            ("subject", "content", "hs_pipeline", "hs_pipeline_stage",
             "hs_ticket_priority"), partial(_activity, "tickets", "subject")),
    _stream("tasks", "tasks",
            ("hs_task_subject", "hs_task_status", "hs_task_priority", "hs_timestamp"),
            partial(_activity, "tasks", "hs_task_subject")),
)


def custom_stream(name: str, config: Mapping[str, Any]) -> Stream:
    """A custom object from ``config["streams"][name]``: ``object_type`` (``2-1234567`` or
    ``p_cars``), ``properties`` to read, optional ``name_property`` and ``associations``."""
    object_type = config.get("object_type")
    if not isinstance(object_type, str) or not object_type:
        raise ConfigError(f"streams.{name}.object_type must name the HubSpot object type")
    properties = config.get("properties") or []
    if not isinstance(properties, list) or not all(isinstance(p, str) for p in properties):
        raise ConfigError(f"streams.{name}.properties must be a list of property names")
    name_property = str(config.get("name_property") or "hs_object_id")
    return Stream(interaction_type=name, source_object=object_type, primary_key="id",
                  cursor_field="updatedAt",
                  fields=(*_COMMON, "hs_lastmodifieddate", name_property, *properties),
                  to_typed=partial(_activity, name, name_property))
