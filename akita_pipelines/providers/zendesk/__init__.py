"""Zendesk Support: incremental exports (cursor-based and time-based), API token or OAuth."""

from akita_pipelines.providers.base import ProviderSpec
from akita_pipelines.providers.zendesk.connector import ZendeskConnector
from akita_pipelines.providers.zendesk.streams import STREAMS

PROVIDER = ProviderSpec(
    name="zendesk",
    title="Zendesk Support",
    streams=STREAMS,
    connect=ZendeskConnector,
    # Exports allow 10 requests a minute; 1,000 records a page is their maximum.
    settings={"sync_frequency_per_day": 24.0, "lookback_seconds": 120, "page_size": 1000},
    # base_url is https://<subdomain>.zendesk.com. Credentials: email + api_token, or OAuth
    # (client_id, client_secret, refresh_token and/or access_token); the connector checks.
    required_config=("base_url",),
)

__all__ = ["PROVIDER"]
