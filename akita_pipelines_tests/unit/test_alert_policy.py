from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from akita_pipelines.alerts.policy import Incident, Thresholds, on_failure
from akita_pipelines.core.errors import FailureClass

NOW = datetime(2026, 3, 1, tzinfo=UTC)
T = Thresholds(warn_after_failures=5, warn_after_days=1, disable_after_failures=20,
               disable_after_days=4, disable_after_config_failures=3, reminder_hours=24)


def incident(failures: int, days_failing: float = 0.0, last_alert_hours: float | None = 1.0,
             warned: bool = False) -> Incident:
    return Incident(failures=failures, failing_since=NOW - timedelta(days=days_failing),
                    last_alert_at=None if last_alert_hours is None
                    else NOW - timedelta(hours=last_alert_hours), warned=warned)


def test_first_failure_alerts_once_and_never_disables_even_on_config_errors() -> None:
    decision = on_failure(incident(1, last_alert_hours=None), FailureClass.CONFIG, NOW,
                          Thresholds(disable_after_config_failures=1))
    assert (decision.alert, decision.disable) == ("broken", False)


def test_further_failures_are_quiet_until_a_reminder_is_due() -> None:
    assert on_failure(incident(2), FailureClass.TRANSIENT, NOW, T).alert is None
    assert on_failure(incident(3, last_alert_hours=25), FailureClass.TRANSIENT, NOW,
                      T).alert == "reminder"


def test_warning_needs_both_failures_and_days_and_comes_once() -> None:
    assert on_failure(incident(6, days_failing=0.5), FailureClass.TRANSIENT, NOW, T).alert is None
    assert on_failure(incident(6, days_failing=2), FailureClass.TRANSIENT, NOW,
                      T).alert == "warning"
    assert on_failure(incident(7, days_failing=2, warned=True), FailureClass.TRANSIENT, NOW,
                      T).alert is None


@pytest.mark.parametrize(
    ("failures", "days", "failure", "disable"),
    [
        (19, 10, FailureClass.TRANSIENT, False),
        (20, 3, FailureClass.TRANSIENT, False),
        (20, 4, FailureClass.TRANSIENT, True),
        (2, 0, FailureClass.CONFIG, False),
        (3, 0, FailureClass.CONFIG, True),
    ],
)
def test_auto_disable_thresholds(failures: int, days: float, failure: FailureClass,
                                 disable: bool) -> None:
    decision = on_failure(incident(failures, days_failing=days), failure, NOW, T)
    assert decision.disable is disable
    if disable:
        assert decision.alert == "disabled"
