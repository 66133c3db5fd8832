"""The code location: ``dagster dev -m akita_pipelines.definitions`` or ``workspace.yaml``."""

from akita_pipelines.defs.definitions import build_definitions

defs = build_definitions()
