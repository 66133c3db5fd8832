"""Layered settings for Integration Objects.

A setting is looked up from the most specific layer to the least specific one:

1. the integration object (``integration.settings["types"][type]``),
2. the customer (``customer.settings["types"][type]`` then ``customer.settings``),
3. the provider's interaction type (``ProviderSpec.type_settings[type]``),
4. the provider (``ProviderSpec.settings``),
5. the defaults below.

Customer and integration settings come from the registry (YAML or the CLI); provider settings
from the provider's package. ``resolve`` answers "what is the effective value, and which layer
set it", which is what ``akita status`` and the run metadata show.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from akita_pipelines.core.errors import ConfigError

#: Every setting an Integration Object has, with its default and its type.
DEFAULTS: Mapping[str, Any] = {
    "sync_frequency_per_day": 4.0,  # syncs per day; due when 24h / frequency has passed
    "lookback_seconds": 300,  # re-read this much before the cursor, dedupe by id
    "page_size": 2000,
    "history_start": None,  # ISO date: where a first (or full) sync starts; None = all history
    "enabled": True,
    "retry_after_failure_seconds": 900,  # how soon a failed object is due again
    # Alerts and auto-disable (only failures count; a success resets them).
    "warn_after_failures": 5,  # "repeated failures" warning to Akita and the customer ...
    "warn_after_days": 1.0,  # ... once both this many failures and days without success
    "disable_after_failures": 20,  # disable the integration at both of these
    "disable_after_days": 4.0,
    "disable_after_config_failures": 3,  # auth/config errors disable sooner
    "reminder_hours": 24.0,  # at most one reminder per incident this often
}

_TYPES: Mapping[str, tuple[type, ...]] = {
    "sync_frequency_per_day": (int, float),
    "lookback_seconds": (int,),
    "page_size": (int,),
    "history_start": (str, type(None)),
    "enabled": (bool,),
    "retry_after_failure_seconds": (int,),
    "warn_after_failures": (int,),
    "warn_after_days": (int, float),
    "disable_after_failures": (int,),
    "disable_after_days": (int, float),
    "disable_after_config_failures": (int,),
    "reminder_hours": (int, float),
}

#: Layer names, most specific first.
LAYERS: tuple[str, ...] = ("integration_object", "customer_type", "customer", "provider_type",
                          "provider", "default")


@dataclass(frozen=True)
class SettingLayers:
    """The raw settings of each layer for one Integration Object."""

    provider: Mapping[str, Any] = field(default_factory=dict)
    provider_type: Mapping[str, Any] = field(default_factory=dict)
    customer: Mapping[str, Any] = field(default_factory=dict)
    customer_type: Mapping[str, Any] = field(default_factory=dict)
    integration_object: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        *,
        interaction_type: str,
        provider_settings: Mapping[str, Any] | None = None,
        provider_type_settings: Mapping[str, Mapping[str, Any]] | None = None,
        customer_settings: Mapping[str, Any] | None = None,
        integration_settings: Mapping[str, Any] | None = None,
    ) -> SettingLayers:
        """Pick each layer's part for ``interaction_type`` out of the stored settings."""
        customer_settings = customer_settings or {}
        integration_settings = integration_settings or {}
        customer_plain = {k: v for k, v in customer_settings.items() if k != "types"}
        integration_plain = {k: v for k, v in integration_settings.items() if k != "types"}
        customer_type = dict(customer_settings.get("types", {}).get(interaction_type, {}))
        integration_type = dict(integration_settings.get("types", {}).get(interaction_type, {}))
        # Integration-wide settings apply to each of its objects unless the type overrides them.
        return cls(
            provider=provider_settings or {},
            provider_type=(provider_type_settings or {}).get(interaction_type, {}),
            customer=customer_plain,
            customer_type=customer_type,
            integration_object={**integration_plain, **integration_type},
        )


@dataclass(frozen=True)
class EffectiveSetting:
    name: str
    value: Any
    layer: str


def validate_settings(settings: Mapping[str, Any], *, where: str) -> None:
    """Refuse unknown names and wrong types with a message that says what to fix."""
    for name, value in settings.items():
        if name == "types":
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}: 'types' must map interaction types to settings")
            for type_name, type_settings in value.items():
                if not isinstance(type_settings, Mapping):
                    raise ConfigError(f"{where}: types.{type_name} must be a mapping")
                validate_settings(type_settings, where=f"{where}.types.{type_name}")
            continue
        if name not in DEFAULTS:
            known = ", ".join(sorted(DEFAULTS))
            raise ConfigError(f"{where}: unknown setting {name!r}; known settings: {known}")
        expected = _TYPES[name]
        if isinstance(value, bool) and bool not in expected:
            raise ConfigError(f"{where}: {name} must be a number, not {value!r}")
        if not isinstance(value, expected):
            names = " or ".join(t.__name__ for t in expected if t is not type(None))
            raise ConfigError(f"{where}: {name} must be {names}, not {value!r}")
        if name == "sync_frequency_per_day" and not 0 < float(value) <= 1440:  # type: ignore[arg-type]
            raise ConfigError(f"{where}: sync_frequency_per_day must be in (0, 1440], not {value}")


def resolve(name: str, layers: SettingLayers) -> EffectiveSetting:
    """Return the effective value of ``name`` and the layer that set it."""
    if name not in DEFAULTS:
        known = ", ".join(sorted(DEFAULTS))
        raise ConfigError(f"unknown setting {name!r}; known settings: {known}")
    for layer in LAYERS[:-1]:
        values: Mapping[str, Any] = getattr(layers, layer)
        if name in values:
            return EffectiveSetting(name, values[name], layer)
    return EffectiveSetting(name, DEFAULTS[name], "default")


def resolve_all(layers: SettingLayers) -> dict[str, EffectiveSetting]:
    """Every setting's effective value for one Integration Object."""
    return {name: resolve(name, layers) for name in DEFAULTS}
