"""What happens when a sync fails: classify, record, decide whether the integration goes on."""

from __future__ import annotations

import logging

from sqlalchemy import Engine, update

from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.errors import AuthError, FailureClass, RateLimited, classify
from akita_pipelines.db import state
from akita_pipelines.db.schema import integrations

log = logging.getLogger(__name__)

#: How soon a failed object is due again, by failure class (seconds).
RETRY_AFTER = {FailureClass.TRANSIENT: 300.0, FailureClass.CONFIG: 3600.0,
               FailureClass.DATA: 900.0}


def describe_error(exc: BaseException) -> str:
    """A one-line reason safe to store and show: our errors' messages are built without
    secrets; foreign exceptions are reduced to their type."""
    from akita_pipelines.core.errors import AkitaError

    if isinstance(exc, AkitaError):
        return f"{type(exc).__name__}: {exc}"
    return f"{type(exc).__name__}"


def record_failure(engine: Engine, obj: state.ObjectRow, sync_id: int | None, exc: BaseException,
                   counts: dict[str, int] | None = None) -> None:
    """Record the failure on the object (cursor untouched) and flag revoked authorisations."""
    failure = classify(exc)
    retry = RETRY_AFTER[failure]
    if isinstance(exc, RateLimited) and exc.retry_after:
        retry = max(retry, min(exc.retry_after, 24 * 3600))
    reason = f"[{failure.value}] {describe_error(exc)}"
    now = utcnow()
    with engine.begin() as conn:
        failures = state.fail_sync(conn, obj, sync_id, now, error=reason,
                                   retry_after_seconds=retry, counts=counts)
        if isinstance(exc, AuthError):
            # A revoked grant is not retried: the customer must authorise again.
            conn.execute(update(integrations).where(integrations.c.id == obj.integration_id)
                         .values(state="needs_reauth", updated_at=now))
    log.warning("sync of %s/%s failed (%d in a row): %s", obj.integration_id,
                obj.interaction_type, failures, reason)
