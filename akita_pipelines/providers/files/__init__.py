"""Customer-provided files (CSV, Excel .xlsx) dropped into a per-customer inbox.

Config::

    {"inbox": "/srv/akita/inbox/acme" | "file:///srv/…" | "s3://bucket/acme/",
     "settle_seconds": 30,
     "streams": {
       "accounts": {"pattern": "accounts*.csv", "primary_key": "company_id",
                    "updated_at": "modified",            # optional column
                    "deleted": "is_deleted",              # optional
                    "encoding": "utf-8-sig", "delimiter": ",", "on_bad_file": "quarantine",
                    "fields": {"name": "company_name", "website": "site"}}}}

See :mod:`akita_pipelines.providers.files.connector` for how files are imported once, whole.
"""

from collections.abc import Mapping
from typing import Any

from akita_pipelines.core.types import TypedRecord
from akita_pipelines.providers.base import ProviderSpec, Stream
from akita_pipelines.providers.files.connector import (
    ARRIVED,
    REJECTED,
    FilesConnector,
    file_mapping,
    file_stream_settings,
)
from akita_pipelines.providers.mapping import make_stream


def files_stream(name: str, config: Mapping[str, Any]) -> Stream:
    """A stream from ``config["streams"][name]``: rows of the files matching its pattern."""
    mapping = file_mapping(name, config)
    settings = file_stream_settings(name, config)

    def to_typed(payload: Mapping[str, Any]) -> TypedRecord:
        if REJECTED in payload:
            # A whole file's rejection report: quarantined with the line numbers as reason.
            raise ValueError(str(payload[REJECTED]))
        return mapping.to_typed(payload)

    stream = make_stream(mapping, settings.pattern, cursor_field=mapping.cursor_field or ARRIVED)
    return Stream(interaction_type=stream.interaction_type, source_object=stream.source_object,
                  primary_key=stream.primary_key, cursor_field=stream.cursor_field,
                  fields=stream.fields, to_typed=to_typed)


PROVIDER = ProviderSpec(
    name="files",
    title="Customer files",
    streams={},
    connect=FilesConnector,
    # Object stores stamp a multipart upload with its start time: a big file can land with an
    # older Last-Modified than a small one read before it; the hour of lookback catches it.
    settings={"sync_frequency_per_day": 24.0, "lookback_seconds": 3600, "page_size": 5000},
    required_config=("inbox",),
    custom_stream=files_stream,
    full_read_is_complete=False,
)

__all__ = ["PROVIDER", "file_stream_settings"]
