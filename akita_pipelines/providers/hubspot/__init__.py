"""HubSpot: CRM v3 search on the last-modified property, OAuth2 refresh-token grant."""

from akita_pipelines.providers.base import ProviderSpec
from akita_pipelines.providers.hubspot.connector import HubSpotConnector
from akita_pipelines.providers.hubspot.streams import STREAMS, custom_stream

PROVIDER = ProviderSpec(
    name="hubspot",
    title="HubSpot",
    streams=STREAMS,
    connect=HubSpotConnector,
    # Search can lag writes by a little: a longer lookback re-reads what appeared late.
    settings={"sync_frequency_per_day": 24.0, "lookback_seconds": 600, "page_size": 200},
    required_config=("base_url",),
    required_credentials=("client_id", "client_secret", "refresh_token"),
    custom_stream=custom_stream,
)

__all__ = ["PROVIDER"]
