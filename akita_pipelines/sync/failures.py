"""What happens when a sync fails or recovers: classify, record, alert, maybe disable."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine

from akita_pipelines.alerts.outbox import (
    NewAlert,
    deliver_pending,
    enqueue,
    has_open_incident,
    incident_key,
    open_incident,
)
from akita_pipelines.alerts.policy import Thresholds, on_failure
from akita_pipelines.config.settings import resolve_all
from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.errors import (
    AkitaError,
    AuthError,
    DataError,
    FailureClass,
    RateLimited,
    classify,
)
from akita_pipelines.db import health, integrations, state
from akita_pipelines.providers.registry import PROVIDERS

log = logging.getLogger(__name__)


def describe_error(exc: BaseException) -> str:
    """A one-line reason safe to store and show: our errors' messages are built without
    secrets; foreign exceptions are reduced to their type."""
    if isinstance(exc, AkitaError):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__


def _settings(conn: Connection, obj: state.ObjectRow) -> dict[str, object]:
    integration = integrations.get_integration(conn, obj.integration_id)
    customer = integrations.get_customer(conn, integration.customer_id)
    spec = PROVIDERS.get(integration.provider)
    if spec is None:
        from akita_pipelines.config.settings import DEFAULTS

        return dict(DEFAULTS)
    layers = integrations.effective_layers(spec, customer, integration, obj.interaction_type)
    return {name: s.value for name, s in resolve_all(layers).items()}


def _thresholds(settings: dict[str, object]) -> Thresholds:
    fields = Thresholds.__dataclass_fields__
    return Thresholds(**{k: settings[k] for k in fields})  # type: ignore[arg-type]


def record_failure(engine: Engine, obj: state.ObjectRow, sync_id: int | None, exc: BaseException,
                   counts: dict[str, int] | None = None, *, alert: bool = True) -> None:
    """Record the failure (cursor untouched), raise the alert the incident calls for, and
    disable the integration when the thresholds say so.

    ``alert=False`` for objects that were not tried because another one failed: the failure
    that caused it alerts; its consequences do not alert again.
    """
    failure = classify(exc)
    reason = f"[{failure.value}] {describe_error(exc)}"
    now = utcnow()
    with engine.begin() as conn:
        settings = _settings(conn, obj)
        retry = float(settings["retry_after_failure_seconds"])  # type: ignore[arg-type]
        if failure is FailureClass.CONFIG:
            retry = max(retry, 3600.0)  # a config error will not fix itself within minutes
        if isinstance(exc, RateLimited) and exc.retry_after:
            retry = max(retry, min(exc.retry_after, 24 * 3600))
        failures = state.fail_sync(conn, obj, sync_id, now, error=reason,
                                   retry_after_seconds=retry, counts=counts)
        created_at = integrations.integration_created_at(conn, obj.integration_id)
        key = incident_key(obj.integration_id, obj.interaction_type)
        incident = open_incident(conn, key, failures, obj.last_synced_at or created_at)
        decision = on_failure(incident, failure, now, _thresholds(settings))
        new_state = None
        if isinstance(exc, AuthError):
            new_state = "needs_reauth"  # a revoked grant is not retried: re-authorise
        elif decision.disable:
            new_state = "disabled"
        if new_state:
            integrations.set_integration_state(conn, obj.integration_id, new_state, now)
        kind = decision.alert
        if new_state == "needs_reauth" and kind is None:
            kind = "broken"
        if kind and alert:
            message = (f"{obj.integration_id} {obj.interaction_type}: {reason}. "
                       f"{failures} failure(s) in a row; last success: "
                       f"{_when(obj.last_synced_at)}.")
            if new_state == "needs_reauth":
                message += " The integration needs re-authorising."
            elif new_state == "disabled":
                message += " The integration is now disabled: fix it and run " \
                           f"`akita integrations enable {obj.integration_id}`."
            enqueue(conn, NewAlert(obj.integration_id, obj.customer_id, obj.interaction_type,
                                   kind, failure, message), now)
    log.warning("sync of %s/%s failed (%d in a row): %s", obj.integration_id,
                obj.interaction_type, failures, reason)
    _deliver(engine)


def record_success(conn: Connection, obj: state.ObjectRow, now: datetime) -> bool:
    """In the commit transaction: close an open incident with a 'recovered' alert."""
    key = incident_key(obj.integration_id, obj.interaction_type)
    if not has_open_incident(conn, key):
        return False
    enqueue(conn, NewAlert(obj.integration_id, obj.customer_id, obj.interaction_type,
                           "recovered", None,
                           f"{obj.integration_id} {obj.interaction_type} syncs again."), now)
    return True


def _deliver(engine: Engine) -> None:
    try:
        deliver_pending(engine)
    except Exception:  # noqa: BLE001 - delivery is retried later; the sync's outcome stands
        log.exception("alert delivery failed; the outbox keeps the alerts")


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "never"


@dataclass(frozen=True)
class FailureReport:
    """What a data engineer needs of a classified failure, in the words the UI shows."""

    failure_class: str
    reason: str
    action: str
    #: When the scheduler tries again; None while the integration waits for a person.
    next_retry: datetime | None
    integration_state: str
    consecutive_failures: int
    #: e.g. "broken alert: log sent, email pending"; "none (…)" when no new alert was raised.
    alert: str

    @property
    def summary(self) -> str:
        retry = (f"next retry {self.next_retry.isoformat(timespec='seconds')}"
                 if self.next_retry else "no automatic retry")
        return f"[{self.failure_class}] {self.reason} — {self.action} ({retry})"


def action_for(exc: BaseException, integration_id: str) -> str:
    """What to do about a classified failure."""
    if isinstance(exc, AuthError):
        return (f"re-authorise: register new credentials (`akita integrations add "
                f"{integration_id} --replace --credentials-file …`), then `akita integrations "
                f"enable {integration_id}`")
    if isinstance(exc, RateLimited):
        return "wait: the provider's rate budget is spent; the sync resumes after the wait"
    if isinstance(exc, DataError):
        return "fix the record at the source or the stream's mapping; good records went on"
    failure = classify(exc)
    if failure is FailureClass.CONFIG:
        return (f"fix the configuration of {integration_id} (`akita integrations add "
                f"{integration_id} --replace …`)")
    return "wait: retried automatically with backoff (an outage or network failure)"


def failure_report(engine: Engine, integration_id: str, interaction_type: str,
                   exc: BaseException, since: datetime) -> FailureReport:
    """The report of a failure :func:`record_failure` recorded at or after ``since``."""
    with engine.connect() as conn:
        obj = state.get_object(conn, integration_id, interaction_type)
        sent = health.alerts_since(conn, incident_key(integration_id, interaction_type), since)
    integration_state = obj.integration_state if obj else "unknown"
    waiting = integration_state != "active" or (obj is not None and not obj.enabled)
    next_retry = None if obj is None or waiting else obj.next_due_at
    if sent:
        alert = "; ".join(
            f"{a.kind} alert: " + (", ".join(f"{channel} {status}" for channel, status
                                             in a.deliveries) or "no channel configured")
            for a in sent)
    else:
        alert = "none (this incident was alerted already; reminders follow the policy)"
    return FailureReport(
        failure_class=classify(exc).value, reason=describe_error(exc),
        action=action_for(exc, integration_id), next_retry=next_retry,
        integration_state=integration_state,
        consecutive_failures=obj.consecutive_failures if obj else 0, alert=alert)
