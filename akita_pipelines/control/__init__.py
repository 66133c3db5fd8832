"""Drive the running Dagster webserver over its GraphQL API (re-syncs and backfills).

Everything goes through the webserver, so runs pass the run queue and its concurrency limits
exactly like the sensor's runs. No dagster import here: the ``akita`` command stays fast.
"""

from akita_pipelines.control.client import (
    BackfillProgress,
    ControlError,
    DagsterControl,
    RunOutcome,
)

__all__ = ["BackfillProgress", "ControlError", "DagsterControl", "RunOutcome"]
