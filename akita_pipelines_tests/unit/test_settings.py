from __future__ import annotations

import pytest

from akita_pipelines.config.settings import SettingLayers, resolve, validate_settings
from akita_pipelines.core.errors import ConfigError


def layers(**kw: object) -> SettingLayers:
    return SettingLayers.build(
        interaction_type="tasks",
        provider_settings={"sync_frequency_per_day": 24.0, "lookback_seconds": 600},
        provider_type_settings={"tasks": {"sync_frequency_per_day": 12.0}},
        **kw,  # type: ignore[arg-type]
    )


def test_default_layer_when_nobody_sets_it() -> None:
    assert resolve("page_size", layers()).layer == "default"


def test_provider_and_provider_type_layers() -> None:
    assert resolve("lookback_seconds", layers()) .layer == "provider"
    effective = resolve("sync_frequency_per_day", layers())
    assert (effective.value, effective.layer) == (12.0, "provider_type")


def test_customer_beats_provider_type_and_object_beats_customer() -> None:
    customer = {"sync_frequency_per_day": 2.0, "types": {"tasks": {"lookback_seconds": 60}}}
    got = layers(customer_settings=customer)
    assert resolve("sync_frequency_per_day", got).layer == "customer"
    assert resolve("lookback_seconds", got).value == 60
    assert resolve("lookback_seconds", got).layer == "customer_type"
    integration = {"types": {"tasks": {"sync_frequency_per_day": 96.0}}}
    got = layers(customer_settings=customer, integration_settings=integration)
    effective = resolve("sync_frequency_per_day", got)
    assert (effective.value, effective.layer) == (96.0, "integration_object")


def test_integration_wide_setting_applies_to_each_type() -> None:
    got = layers(integration_settings={"enabled": False})
    assert resolve("enabled", got).value is False


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"sync_frequncy_per_day": 3}, "unknown setting 'sync_frequncy_per_day'"),
        ({"sync_frequency_per_day": "often"}, "must be int or float"),
        ({"sync_frequency_per_day": 0}, "must be in (0, 1440]"),
        ({"enabled": "yes"}, "enabled must be bool"),
        ({"types": {"tasks": {"page_size": 1.5}}}, "x.types.tasks: page_size must be int"),
    ],
)
def test_bad_settings_say_what_to_fix(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        validate_settings(settings, where="x")
