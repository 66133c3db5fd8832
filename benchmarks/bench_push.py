"""Push: freshness on the real stack, and a flood of notifications against the receiver.

Freshness: a new company in each pushing emulator in turn (HubSpot, Intercom, Stripe, Zendesk),
timed from the change to its row linked to a matched account, on the real stack (PostgreSQL,
receiver, daemon, webserver). Changes come one at a time, a few seconds apart; each
integration sees one about every minute. Polling at the default frequency is computed from
that frequency (a change waits on average half the interval) plus the measured run.

Flood: 10,000 signed notifications over one minute for 100 Stripe integrations (duplicates,
out-of-order and forged ones among them) against ``akita push serve`` on PostgreSQL; the push
sensor ticks every 5 s beside it, over a simulated run queue (2 runs at a time, 3.5 s each:
the measured cost of a run on this machine). Counted: runs per integration, refusals, and
whether every integration's last notification was followed by a run.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from dagster import DagsterRunStatus, SensorResult, build_sensor_context, instance_for_test
from sqlalchemy import Engine, func, select

from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.types import Customer, Integration
from akita_pipelines.db import push
from akita_pipelines.db.engine import make_engine
from akita_pipelines.db.migrate import upgrade
from akita_pipelines.db.schema import webhook_events, webhook_subscriptions
from akita_pipelines.db.state import get_object
from akita_pipelines.defs.definitions import build_definitions
from akita_pipelines.defs.resources import AkitaDatabase
from akita_pipelines.onboarding import add_customer, add_integration
from akita_pipelines.providers.registry import PROVIDERS as ALL_PROVIDERS
from akita_pipelines_tests.e2e.push_stack import running_push_stack
from akita_pipelines_tests.e2e.stack import free_port, wait_for
from akita_pipelines_tests.pg import postgres_server
from benchmarks.common import Figure, sizes

PROVIDERS = ("hubspot", "intercom", "stripe", "zendesk")


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def freshness() -> list[Figure]:
    samples = sizes([12], [40])[0]
    rng = random.Random(5)
    latencies: list[float] = []
    runs: list[float] = []
    changes: list[tuple[str, float, float]] = []  # (integration, changed at, notified at)
    with running_push_stack(providers=PROVIDERS) as stack:
        stack.wait_first_syncs(timeout=600)
        with stack.engine.connect() as conn:
            frequency = get_object(conn, "stripe.acme", "accounts").frequency_per_day  # type: ignore[union-attr]
        for k in range(samples):
            provider = PROVIDERS[k % len(PROVIDERS)]
            integration_id = f"{provider}.acme"
            started = time.time()
            (new_id,) = stack.sandbox.emulators[provider].create("accounts", 1)
            wait_for(lambda i=integration_id, n=new_id: stack.linked_at(i, n),  # type: ignore[misc]
                     timeout=300, what=f"{provider} change linked", interval=0.1)
            latencies.append(time.time() - started)
            with stack.engine.connect() as conn:
                notified = conn.execute(
                    select(func.max(webhook_events.c.received_at))
                    .join(webhook_subscriptions,
                          webhook_subscriptions.c.id == webhook_events.c.subscription_id)
                    .where(webhook_subscriptions.c.integration_id == integration_id)
                ).scalar_one()
            changes.append((integration_id, started, notified.timestamp()))
            time.sleep(rng.uniform(2, 6))
        created = stack.stack.run_creation_times()
        pushed = [r for r in stack.stack.stored_runs() if r.tags.get("akita/trigger") == "push"]
        for run in pushed:
            if run.start_time and run.end_time:
                runs.append(run.end_time - run.start_time)
    stages: dict[str, list[float]] = defaultdict(list)
    for (integration_id, started, notified), total in zip(changes, latencies, strict=True):
        chosen = min((r for r in pushed if r.partition == integration_id and r.start_time
                      and created.get(r.run_id, 0) >= notified), default=None,
                     key=lambda r: created[r.run_id])
        if chosen is None or chosen.start_time is None:
            continue
        stages["notified"].append(notified - started)
        stages["run requested"].append(created[chosen.run_id] - notified)
        stages["run started"].append(chosen.start_time - created[chosen.run_id])
        stages["matched"].append(started + total - chosen.start_time)
    interval = 86400 / frequency
    run_seconds = statistics.median(runs) if runs else 0.0
    print(json.dumps({"push_latencies": [round(x, 1) for x in latencies],
                      "push_run_seconds": [round(x, 1) for x in runs],
                      "median_stage_seconds": {k: round(statistics.median(v), 1)
                                               for k, v in stages.items()}}))
    p50, p95 = statistics.median(latencies), _quantile(latencies, 0.95)
    return [
        Figure("freshness through push: change → matched row, p50 / p95",
               f"{p50:.1f} s / {p95:.1f} s",
               floor=f"polling {interval / 2 / 3600:.1f} h / {interval * 0.95 / 3600:.1f} h",
               ratio=f"{interval / 2 / p50:,.0f}×", goal="≤ 10 s / ≤ 30 s",
               note=f"{len(latencies)} changes over 4 providers; polling at {frequency:g}/day "
                    f"(+ the {run_seconds:.1f} s run)"),
    ]


def _stripe_event(event_id: str, secret: str, now: float, account: str) -> tuple[bytes, str]:
    import hashlib
    import hmac

    body = json.dumps({"id": event_id, "object": "event", "type": "customer.updated",
                       "account": account, "created": int(now)}).encode()
    stamp = str(int(now))
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256)
    return body, f"t={stamp},v1={digest.hexdigest()}"


def flood() -> list[Figure]:
    n_integrations, n_forged_only, total, seconds = 100, 5, 10_000, 60.0
    with postgres_server() as url:
        engine = make_engine(url)
        upgrade(engine)
        secrets: dict[str, tuple[str, str]] = {}
        add_customer(engine, Customer(id="flood", name="Flood"))
        for i in range(n_integrations + n_forged_only):
            integration_id = f"stripe.flood-{i:03d}"
            add_integration(engine, Integration(id=integration_id, customer_id="flood",
                                                provider="stripe",
                                                config={"base_url": "http://127.0.0.1:9"}),
                            {"api_key": "sk_test"})
            with engine.begin() as conn:
                sub = push.create_subscription(conn, integration_id, secret=f"whsec_{i}",
                                               account_ref=None, now=utcnow())
            secrets[integration_id] = (sub.path_token, f"whsec_{i}")
        port = free_port()
        env = {**os.environ, "AKITA_DATABASE_URL": url}
        receiver = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), "akita"), "push", "serve",
             "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: _healthy(port), timeout=30, what="the receiver")
            result = _flood(engine, url, port, secrets, n_integrations, total, seconds)
        finally:
            receiver.terminate()
            receiver.wait(timeout=20)
            engine.dispose()
    return result


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _flood(engine: Engine, url: str, port: int, secrets: dict[str, tuple[str, str]],
           n_integrations: int, total: int, seconds: float) -> list[Figure]:
    rng = random.Random(3)
    ids = sorted(secrets)
    genuine, forged_only = ids[:n_integrations], ids[n_integrations:]
    plan: list[tuple[str, str, bool]] = []  # (integration, event id, forged)
    for k in range(total):
        if k % 100 == 0:
            plan.append((rng.choice(forged_only), f"evt_forged_{k}", True))
        elif k % 50 == 0:
            plan.append((rng.choice(genuine), f"evt_forged_{k}", True))
        elif k % 20 == 0 and plan:
            plan.append(plan[-1])  # a duplicate delivery
        else:
            plan.append((rng.choice(genuine), f"evt_{k}", False))
    for k in range(1, len(plan) - 1, 33):  # out of order
        plan[k], plan[k + 1] = plan[k + 1], plan[k]
    answers: Counter[int] = Counter()
    last_accepted: dict[str, float] = {}
    lock = threading.Lock()
    start = time.time()

    def send(item: tuple[int, tuple[str, str, bool]]) -> None:
        k, (integration_id, event_id, forged) = item
        delay = start + k * seconds / total - time.time()
        if delay > 0:
            time.sleep(delay)
        token, secret = secrets[integration_id]
        body, signature = _stripe_event(event_id, f"x{secret}" if forged else secret,
                                        time.time(), "acct")
        answer = client.post(f"/webhooks/stripe/{token}", content=body,
                             headers={"Stripe-Signature": signature})
        with lock:
            answers[answer.status_code] += 1
            if answer.status_code == 200:
                last_accepted[integration_id] = time.time()

    db = AkitaDatabase(url=url)
    defs = build_definitions(providers={"stripe": ALL_PROVIDERS["stripe"]}, database=db)
    sensor = defs.resolve_sensor_def("akita_push_sensor")
    job = defs.resolve_job_def("stripe_sync")
    requested: dict[str, list[float]] = defaultdict(list)
    sending_done = threading.Event()
    with instance_for_test() as instance, \
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        instance.add_dynamic_partitions("stripe_integrations", ids)

        def senders() -> None:
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(send, enumerate(plan)))
            sending_done.set()

        threading.Thread(target=senders, daemon=True).start()
        queue: list[Any] = []
        running: list[tuple[Any, float]] = []
        while True:
            tick_at = time.time()
            result = sensor(build_sensor_context(instance=instance, definitions=defs,
                                                 resources={"akita_db": db}))
            assert isinstance(result, SensorResult)
            for request in result.run_requests or []:
                key = str(request.partition_key)
                requested[key].append(tick_at)
                # Queued or running, a run is in flight (STARTED: a queued run needs an origin).
                queue.append(instance.create_run_for_job(
                    job, tags={**request.tags, "dagster/partition": key},
                    status=DagsterRunStatus.STARTED))
            # The simulated queue: two runs at a time, 3.5 s each.
            while True:
                now = time.time()
                for run, ends in list(running):
                    if ends <= now:
                        instance.report_run_canceled(run)
                        running.remove((run, ends))
                while queue and len(running) < 2:
                    running.append((queue.pop(0), now + 3.5))
                if time.time() - tick_at >= 5:
                    break
                time.sleep(0.1)
            with engine.connect() as conn:
                pending = push.pending_count(conn)
            if sending_done.is_set() and not pending and not queue and not running:
                break
        sent_seconds = max(last_accepted.values()) - start
        with engine.connect() as conn:
            counts = push.counts(conn)
    per_integration = [len(requested.get(i, [])) for i in genuine]
    lost = [i for i in genuine if i in last_accepted
            and not any(t >= last_accepted[i] for t in requested.get(i, []))]
    refused = {o: sum(n for (_, _, oo), n in counts.items() if oo == o)
               for o in ("bad_signature", "stale", "duplicate")}
    forged_runs = sum(len(requested.get(i, [])) for i in forged_only)
    print(json.dumps({"answers": dict(answers), "counts": refused,
                      "runs_per_integration": dict(Counter(per_integration)),
                      "sent_seconds": round(sent_seconds, 1), "lost": lost}))
    return [
        Figure("push flood: 10k notifications / 100 integrations, runs per integration",
               f"max {max(per_integration)}, mean {statistics.mean(per_integration):.2f}",
               goal="≤ 2", note=f"sent over {sent_seconds:.0f} s; changes without a later "
                                f"run: {len(lost)}"),
        Figure("push flood: forged / duplicate notifications refused or ignored",
               f"{refused['bad_signature']} refused (401), {refused['duplicate']} duplicates",
               goal="all counted, none runs",
               note=f"runs of integrations sent only forged ones: {forged_runs}"),
    ]


def run() -> list[Figure]:
    return [*freshness(), *flood()]


if __name__ == "__main__":
    from benchmarks.common import render

    print(render(run() if len(sys.argv) < 2 else globals()[sys.argv[1]]()))
