"""The customer's own REST API, described in config (no code per customer).

Config::

    {"base_url": "https://api.acme.example",
     "auth": {"type": "oauth2_client_credentials", "token_url": "/oauth/token"},
     "streams": {
       "accounts": {"path": "/v1/companies", "records": "data.items",
                    "paginator": {"type": "cursor", "cursor_param": "cursor",
                                  "cursor_path": "meta.next_cursor", "limit_param": "limit"},
                    "incremental": {"param": "updated_since", "format": "iso",
                                    "field": "updated_at"},
                    "order": "unsorted", "primary_key": "id",
                    "fields": {"name": "name", "website": "domain"}}}}

Credentials by auth type: bearer ``token``; api_key ``api_key``; basic ``username`` and
``password``; oauth2_client_credentials ``client_id`` and ``client_secret``. The primary key and
the cursor field must be top-level fields of a record (staging reads them there).
"""

from collections.abc import Mapping
from typing import Any

from akita_pipelines.providers.base import ProviderSpec, Stream
from akita_pipelines.providers.mapping import make_stream, parse_mapping
from akita_pipelines.providers.rest.connector import STREAM_KEYS, RestConnector, RestStream


def rest_stream(name: str, config: Mapping[str, Any]) -> Stream:
    """A stream from ``config["streams"][name]``: the records of one endpoint."""
    where = f"streams.{name}"
    spec = RestStream.from_config(config, where)
    mapping = parse_mapping(name, config, where=where, cursor_required=False,
                            allowed=STREAM_KEYS)
    if spec.cursor_field and mapping.cursor_field is None:
        mapping = parse_mapping(name, {**config, "updated_at": spec.cursor_field}, where=where,
                                cursor_required=False, allowed=STREAM_KEYS)
    return make_stream(mapping, spec.path)


PROVIDER = ProviderSpec(
    name="rest",
    title="REST API",
    streams={},
    connect=RestConnector,
    settings={"sync_frequency_per_day": 24.0, "lookback_seconds": 300, "page_size": 100},
    required_config=("base_url",),
    custom_stream=rest_stream,
)

__all__ = ["PROVIDER"]
