"""The provider registry: a provider is a package plus one line here."""

from __future__ import annotations

from collections.abc import Mapping

from akita_pipelines.core.errors import ConfigError
from akita_pipelines.providers.base import ProviderSpec
from akita_pipelines.providers.files import PROVIDER as FILES
from akita_pipelines.providers.hubspot import PROVIDER as HUBSPOT
from akita_pipelines.providers.intercom import PROVIDER as INTERCOM
from akita_pipelines.providers.rest import PROVIDER as REST
from akita_pipelines.providers.salesforce import PROVIDER as SALESFORCE
from akita_pipelines.providers.sql import PROVIDER as SQL
from akita_pipelines.providers.stripe import PROVIDER as STRIPE
from akita_pipelines.providers.zendesk import PROVIDER as ZENDESK

PROVIDERS: Mapping[str, ProviderSpec] = {
    spec.name: spec
    for spec in (
        SALESFORCE,
        SQL,
        FILES,
        REST,
        ZENDESK,
        INTERCOM,
        HUBSPOT,
        STRIPE,
    )
}


def get_provider(name: str) -> ProviderSpec:
    """The provider called ``name``, or a ConfigError listing the known ones."""
    try:
        return PROVIDERS[name]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise ConfigError(f"unknown provider {name!r}; known providers: {known}") from None
