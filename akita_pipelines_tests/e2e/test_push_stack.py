"""Push on the real stack: an emulator change → signed notification → receiver → push sensor
→ run → matched row, long before the polling schedule would have synced it."""

from __future__ import annotations

import sys
import time
from datetime import timedelta

import pytest

from akita_pipelines.core.clock import utcnow
from akita_pipelines.db import push
from akita_pipelines.db.state import get_object
from akita_pipelines_tests.e2e.push_stack import running_push_stack
from akita_pipelines_tests.e2e.stack import wait_for

pytestmark = pytest.mark.e2e


def test_a_pushed_change_reaches_the_matched_tables_without_waiting_for_polling() -> None:
    with running_push_stack() as stack:
        stack.wait_first_syncs()
        with stack.engine.connect() as conn:
            obj = get_object(conn, "stripe.acme", "accounts")
        # Polling comes back in an hour or more: only push can be this quick.
        assert obj is not None
        assert obj.next_due_at is not None
        assert obj.next_due_at > utcnow() + timedelta(minutes=30)

        stripe = stack.sandbox.emulators["stripe"]
        started = time.monotonic()
        (new_id,) = stripe.create("customers", 1)
        wait_for(lambda: stack.linked_at("stripe.acme", new_id), timeout=120,
                 what="the new Stripe customer linked to a matched account")
        seconds = time.monotonic() - started
        sys.stdout.write(f"change → matched row through push: {seconds:.1f} s\n")

        runs = stack.stack.stored_runs()
        pushed = [r for r in runs if r.tags.get("akita/trigger") == "push"]
        assert [r.partition for r in pushed] == ["stripe.acme"]
        assert pushed[0].tags["akita/provider"] == "stripe"
        with stack.engine.connect() as conn:
            counts = push.counts(conn)
        assert counts[("stripe", "stripe.acme", "accepted")] >= 1
        assert not [o for (_, _, o) in counts if o in ("bad_signature", "stale")]
