"""Salesforce: REST query API with SOQL on SystemModstamp, OAuth2 refresh-token grant."""

from akita_pipelines.providers.base import ProviderSpec
from akita_pipelines.providers.salesforce.connector import SalesforceConnector
from akita_pipelines.providers.salesforce.streams import STREAMS

PROVIDER = ProviderSpec(
    name="salesforce",
    title="Salesforce",
    streams=STREAMS,
    connect=SalesforceConnector,
    settings={"sync_frequency_per_day": 24.0, "lookback_seconds": 300, "page_size": 2000},
    type_settings={"tasks": {"sync_frequency_per_day": 12.0}},
    required_config=("base_url",),
    required_credentials=("client_id", "client_secret", "refresh_token"),
)

__all__ = ["PROVIDER"]
