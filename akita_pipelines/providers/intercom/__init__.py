"""Intercom: contact and conversation search on day-granular updated_at, the company scroll."""

from akita_pipelines.providers.base import ProviderSpec
from akita_pipelines.providers.intercom.connector import IntercomConnector
from akita_pipelines.providers.intercom.streams import STREAMS

PROVIDER = ProviderSpec(
    name="intercom",
    title="Intercom",
    streams=STREAMS,
    connect=IntercomConnector,
    # New contacts take minutes to become searchable: re-read a quarter of an hour (the
    # connector itself widens each search to whole days in the workspace's time zone).
    settings={"sync_frequency_per_day": 24.0, "lookback_seconds": 900, "page_size": 150},
    required_config=("base_url",),
    required_credentials=("access_token",),
)

__all__ = ["PROVIDER"]
