"""What a provider package declares: its streams, its settings layer and a connector factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from akita_pipelines.core.types import TypedRecord, type_order
from akita_pipelines.providers.auth import CredentialStore
from akita_pipelines.providers.http import HttpClient


@dataclass(frozen=True)
class Stream:
    """One interaction type as the provider serves it.

    Attributes:
        interaction_type: Akita's name (``accounts``, ``contacts``, ... or a custom type).
        source_object: the provider's name for it (``Account``, ``companies``).
        primary_key: the field holding the record's id.
        cursor_field: the field that moves when the record changes.
        fields: the fields to request.
        to_typed: turns one payload into a :class:`TypedRecord`; raises KeyError / ValueError /
            TypeError on a bad payload (the record is then quarantined).
    """

    interaction_type: str
    source_object: str
    primary_key: str
    cursor_field: str
    fields: tuple[str, ...]
    to_typed: Callable[[Mapping[str, Any]], TypedRecord]


@dataclass(frozen=True)
class Page:
    """One page of changed records and the cursor value it is safe to resume from."""

    records: list[dict[str, Any]]
    checkpoint: datetime | None


@dataclass(frozen=True)
class ConnectionContext:
    """Everything a connector gets: its config, its credentials store and the HTTP door."""

    integration_id: str
    config: Mapping[str, Any]
    credentials: CredentialStore
    http: HttpClient
    page_size: int = 2000


class Connector(Protocol):
    def read_changes(self, stream: Stream, since: datetime | None) -> Iterator[Page]:
        """Yield pages of records whose cursor field is ``>= since`` (all when None), in
        ascending cursor order, each page with the highest cursor value it holds."""
        ...


@dataclass(frozen=True)
class ProviderSpec:
    """A provider package's single export, listed in :mod:`akita_pipelines.providers.registry`."""

    name: str
    title: str
    streams: Mapping[str, Stream]
    connect: Callable[[ConnectionContext], Connector]
    settings: Mapping[str, Any] = field(default_factory=dict)
    type_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    required_config: tuple[str, ...] = ("base_url",)
    required_credentials: tuple[str, ...] = ()

    def types_in_order(self) -> list[str]:
        return sorted(self.streams, key=lambda t: (type_order(t), t))
