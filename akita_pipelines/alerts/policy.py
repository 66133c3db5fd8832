"""Which alert an Integration Object's failure or success raises, and when to auto-disable.

One alert when an object breaks, one when it recovers, a "repeated failures" warning once per
incident, reminders at most every ``reminder_hours``: never a storm. Auto-disable has a warning
stage and never fires on a brand-new integration's first failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from akita_pipelines.core.errors import FailureClass


@dataclass(frozen=True)
class Thresholds:
    warn_after_failures: int = 5
    warn_after_days: float = 1.0
    disable_after_failures: int = 20
    disable_after_days: float = 4.0
    disable_after_config_failures: int = 3
    reminder_hours: float = 24.0


@dataclass(frozen=True)
class Incident:
    """What is known of the object when a sync fails."""

    failures: int  # consecutive failures, this one included
    failing_since: datetime  # last success, or the integration's creation
    last_alert_at: datetime | None  # newest alert of the open incident
    warned: bool  # the open incident already had its warning


@dataclass(frozen=True)
class Decision:
    alert: str | None  # broken | warning | reminder | disabled | None
    disable: bool = False


def on_failure(incident: Incident, failure: FailureClass, now: datetime,
               t: Thresholds) -> Decision:
    days = (now - incident.failing_since) / timedelta(days=1)
    if incident.failures >= 2:  # never on a first failure
        config_limit = (failure is FailureClass.CONFIG
                        and incident.failures >= t.disable_after_config_failures)
        repeated_limit = (incident.failures >= t.disable_after_failures
                          and days >= t.disable_after_days)
        if config_limit or repeated_limit:
            return Decision("disabled", disable=True)
    if incident.failures == 1 or incident.last_alert_at is None:
        return Decision("broken")
    if (not incident.warned and incident.failures >= t.warn_after_failures
            and days >= t.warn_after_days):
        return Decision("warning")
    if now - incident.last_alert_at >= timedelta(hours=t.reminder_hours):
        return Decision("reminder")
    return Decision(None)


def tells_customer(kind: str, failure: FailureClass | None) -> bool:
    """The customer hears of what they must act on, of the warning stage, and of the outcome."""
    if kind in ("warning", "disabled", "recovered"):
        return True
    return kind == "broken" and failure is FailureClass.CONFIG
