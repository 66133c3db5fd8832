"""What a provider package declares: its streams, its settings layer and a connector factory."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from akita_pipelines.core.errors import ConfigError
from akita_pipelines.core.types import TypedRecord, type_order
from akita_pipelines.providers.auth import CredentialStore
from akita_pipelines.providers.http import HttpClient

CUSTOM_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


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


def by_type(*streams: Stream) -> Mapping[str, Stream]:
    """A provider's streams keyed by their interaction type."""
    return {s.interaction_type: s for s in streams}


@dataclass(frozen=True)
class Page:
    """One page of changed records and the cursor value it is safe to resume from."""

    records: list[dict[str, Any]]
    checkpoint: datetime | None
    #: What the connector needs to continue this same read after this page (a bulk job and
    #: its next locator, when the records come in no cursor order); stored with the page, in
    #: its transaction, and handed back as :attr:`ConnectionContext.resume`. None: nothing to
    #: continue (the read ended, or the checkpoint is the resume point).
    resume: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ConnectionContext:
    """Everything a connector gets: its config, its credentials store and the HTTP door."""

    integration_id: str
    config: Mapping[str, Any]
    credentials: CredentialStore
    http: HttpClient
    page_size: int = 2000
    #: A history read (a first sync, a full re-sync, a backfill), not an increment.
    history: bool = False
    #: The resume state of this object's interrupted read (see :attr:`Page.resume`).
    resume: Mapping[str, Any] | None = None


class Connector(Protocol):
    """Reads one integration's changes. A connector may also keep ``notices``: a list of
    sentences the data engineer should see about the last read (a fallback to a full re-read,
    a window it could not cover); the retriever reports them in the run's metadata."""

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
    #: Builds a stream from an integration's configuration, for custom interaction types (a
    #: Salesforce custom object, a table, an endpoint): ``config["streams"][name]``.
    custom_stream: Callable[[str, Mapping[str, Any]], Stream] | None = None
    #: Refuses (ConfigError) an integration's config the streams cannot judge, such as a
    #: connection URL that carries a password; called when the integration is registered.
    check_config: Callable[[Mapping[str, Any]], object] | None = None
    #: Whether a complete full read shows every live record, so that what it does not see can
    #: be marked deleted (not for a file inbox: an old file taken away deletes nothing).
    full_read_is_complete: bool = True

    def types_in_order(self, config: Mapping[str, Any] | None = None) -> list[str]:
        return sorted(self.streams_for(config or {}), key=lambda t: (type_order(t), t))

    def streams_for(self, config: Mapping[str, Any]) -> dict[str, Stream]:
        """The provider's streams plus the custom ones an integration's config declares."""
        streams = dict(self.streams)
        custom = config.get("streams") or {}
        if not isinstance(custom, Mapping):
            raise ConfigError("config 'streams' must map interaction type names to settings")
        for name, stream_config in custom.items():
            if not isinstance(name, str) or not CUSTOM_TYPE.match(name):
                raise ConfigError(f"custom interaction type {name!r} must be lower-case letters, "
                                  "digits and underscores, starting with a letter")
            if self.custom_stream is None:
                raise ConfigError(f"{self.title} does not support custom interaction types")
            if not isinstance(stream_config, Mapping):
                raise ConfigError(f"config streams.{name} must be a mapping")
            streams[name] = self.custom_stream(name, stream_config)
        return streams
