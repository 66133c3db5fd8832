"""The ``akita`` command, one sub-module per concern.

``main`` (the group: database, registry, sandbox, seeding, integrations, status), ``control``
(resync and backfill through the webserver's run queue), ``match`` (the matcher over a CSV
export), ``steward`` (re-match, reviews, entities) and ``push`` (the webhook receiver).
"""

from akita_pipelines.cli.main import main

__all__ = ["main"]
