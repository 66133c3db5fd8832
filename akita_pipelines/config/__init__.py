"""Layered settings: defaults → provider → interaction type → customer → integration object."""

from akita_pipelines.config.settings import (
    DEFAULTS,
    LAYERS,
    EffectiveSetting,
    SettingLayers,
    resolve,
    resolve_all,
)

__all__ = ["DEFAULTS", "LAYERS", "EffectiveSetting", "SettingLayers", "resolve", "resolve_all"]
