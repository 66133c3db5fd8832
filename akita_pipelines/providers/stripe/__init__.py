"""Stripe: newest-first lists for full reads, the 30-day events feed for changes, secret keys."""

from akita_pipelines.providers.base import ProviderSpec
from akita_pipelines.providers.stripe.connector import StripeConnector
from akita_pipelines.providers.stripe.streams import STREAMS

PROVIDER = ProviderSpec(
    name="stripe",
    title="Stripe",
    streams=STREAMS,
    connect=StripeConnector,
    # Stripe lists return at most 100 objects a page; event times have one-second precision.
    settings={"sync_frequency_per_day": 24.0, "lookback_seconds": 300, "page_size": 100},
    required_config=(),
    required_credentials=("api_key",),
)

__all__ = ["PROVIDER"]
