"""The customer's SQL database (any SQLAlchemy URL): every stream is declared in config.

Config::

    {"url": "postgresql+psycopg2://reader@db.acme.example/crm",   # password in credentials
     "timezone": "UTC",                     # how naive timestamp columns are to be read
     "statement_timeout_seconds": 300,      # optional: PostgreSQL, MySQL and MariaDB
     "streams": {
       "accounts": {"table": "crm.companies", "primary_key": "id", "updated_at": "updated_at",
                    "deleted": "deleted_at",
                    "fields": {"name": "company_name", "website": "site"}},
       "product_usage": {"query": "SELECT u.id, u.account_id, u.updated_at FROM usage u",
                         "primary_key": "id", "updated_at": "updated_at",
                         "fields": {"account_ref": "account_id"}}}}

Credentials: ``password`` (and optionally ``username``), merged into the URL at connect time.
Engines, their traps, and the warehouses not tested here: ``docs/sql-sources.md``.
"""

from collections.abc import Mapping
from typing import Any

from akita_pipelines.providers.base import ProviderSpec, Stream
from akita_pipelines.providers.mapping import make_stream, parse_mapping
from akita_pipelines.providers.sql.connector import SqlConnector, connection_url
from akita_pipelines.providers.sql.query import SqlSource


def sql_stream(name: str, config: Mapping[str, Any]) -> Stream:
    """A stream from ``config["streams"][name]``; ConfigError when it is not a safe read."""
    where = f"streams.{name}"
    mapping = parse_mapping(name, config, where=where,
                            allowed=("table", "query", "updated_at_format"))
    source = SqlSource.from_config(config, where)
    label = ".".join(p for p in source.table if p) if source.table else "query"
    return make_stream(mapping, label)


PROVIDER = ProviderSpec(
    name="sql",
    title="SQL database",
    streams={},
    connect=SqlConnector,
    settings={"sync_frequency_per_day": 24.0, "lookback_seconds": 600, "page_size": 5000},
    required_config=("url",),
    custom_stream=sql_stream,
    # At registration: a password in the URL would otherwise be stored as plain config (shown
    # in the UI and in logs) until the first sync refused it.
    check_config=lambda config: connection_url(config, {}),
)

__all__ = ["PROVIDER"]
