"""The fault suite: many syncs under injected faults, then a clean final sync; nothing lost.

Used by ``test_faults.py`` (small) and ``benchmarks/bench_faults.py`` (larger). Every sync runs
the real code path against the Salesforce emulator over real HTTP.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select

from akita_pipelines.core.clock import parse_datetime, utcnow
from akita_pipelines.core.errors import AkitaError
from akita_pipelines.db.entities import unexplained_duplicate_domains
from akita_pipelines.db.integrations import set_integration_state
from akita_pipelines.db.schema import alerts, interactions, quarantine
from akita_pipelines.providers.http import HttpClient
from akita_pipelines.sandbox.server import Sandbox
from akita_pipelines.sync.service import sync_object

TYPES = ("accounts", "contacts", "deals", "tickets", "tasks")
FAULTS = ("rate_limit", "server_error", "bad_record", "truncated", "expire_tokens")


@dataclass
class FaultReport:
    faults: Counter[str] = field(default_factory=Counter)
    attempted: int = 0
    succeeded: int = 0
    lost: int = 0
    stale: int = 0
    duplicates: int = 0
    quarantined: int = 0
    alerts: int = 0
    changes: int = 0

    def rows(self) -> list[tuple[str, Any]]:
        return [("faults injected", sum(self.faults.values())),
                *((f"  {k}", v) for k, v in sorted(self.faults.items())),
                ("provider-side changes", self.changes),
                ("syncs attempted", self.attempted), ("syncs succeeded", self.succeeded),
                ("records lost", self.lost), ("records stale", self.stale),
                ("duplicates", self.duplicates), ("records quarantined", self.quarantined),
                ("alerts raised", self.alerts)]


def _sync(engine: Engine, integration: str, kind: str, report: FaultReport) -> None:
    report.attempted += 1
    try:
        # No real sleeping: backoff and Retry-After waits are recorded, not slept.
        sync_object(engine, integration, kind, http=HttpClient(sleep=lambda s: None))
        report.succeeded += 1
    except AkitaError:
        pass


def run_fault_suite(engine: Engine, sandbox: Sandbox, integration: str, *, rounds: int,
                    seed: int = 1) -> FaultReport:
    emulator = sandbox.emulators["salesforce"]
    rng = random.Random(seed)
    report = FaultReport()
    for _ in range(rounds):
        fault = rng.choice(FAULTS)
        report.faults[fault] += 1
        if fault == "expire_tokens":
            emulator.expire_tokens()
        else:
            emulator.inject(fault, rng.choice([1, 1, 2]))
        for _ in range(rng.randrange(0, 4)):
            kind = rng.choice(["Account", "Contact", "Opportunity", "Case", "Task"])
            action = rng.random()
            if action < 0.6:
                emulator.touch(kind, count=rng.randrange(1, 5))
            elif action < 0.85:
                emulator.create(kind, rng.randrange(1, 3))
            else:
                live = [r["Id"] for r in emulator.records(kind)]
                if live:
                    emulator.delete(kind, [rng.choice(live)])
            report.changes += 1
        _sync(engine, integration, rng.choice(TYPES), report)
    # The clean final pass: faults cleared, the integration re-enabled as an operator would.
    emulator.faults.clear()
    with engine.begin() as conn:
        set_integration_state(conn, integration, "active", utcnow())
    for kind in TYPES:
        _sync(engine, integration, kind, report)
    _verify(engine, sandbox, integration, report)
    return report


def _verify(engine: Engine, sandbox: Sandbox, integration: str, report: FaultReport) -> None:
    emulator = sandbox.emulators["salesforce"]
    with engine.connect() as conn:
        rows = conn.execute(select(interactions.c.interaction_type, interactions.c.external_id,
                                   interactions.c.source_updated_at, interactions.c.deleted_at)
                            .where(interactions.c.integration_id == integration)).all()
        report.duplicates = len(rows) - len({(r[0], r[1]) for r in rows})
        # Accounts sharing a domain are a defect unless recorded for review (a subsidiary).
        report.duplicates += unexplained_duplicate_domains(conn)
        report.quarantined = int(conn.execute(select(func.count()).select_from(quarantine))
                                 .scalar_one())
        report.alerts = int(conn.execute(select(func.count()).select_from(alerts)).scalar_one())
    stored = {(r[0], r[1]): r for r in rows}
    for kind in TYPES:
        for record in emulator.records(kind, include_deleted=True):
            row = stored.get((kind, record["Id"]))
            if row is None:
                report.lost += 1
            elif (row.source_updated_at != parse_datetime(record["SystemModstamp"])
                  or (row.deleted_at is not None) != bool(record["IsDeleted"])):
                report.stale += 1
