"""Rows stored before ``interactions.requester_email`` existed re-match as rows stored after it.

Migration 0007 backfills the column from the stored ``fields``; the streams fill it on records
synced after it. A customer whose rows were stored in the old shape and re-matched after the
upgrade ends with the same links as a customer whose records arrive through a stream now.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from akita_pipelines.core.clock import utcnow
from akita_pipelines.core.types import Customer, Integration, TypedRecord
from akita_pipelines.db.engine import make_engine
from akita_pipelines.db.integrations import save_customer, save_integration
from akita_pipelines.db.migrate import upgrade
from akita_pipelines.db.schema import account_links, contact_links, interactions
from akita_pipelines.providers.mapping import parse_mapping
from akita_pipelines.sync.process import ProcessResult, process_batch
from akita_pipelines.sync.rematch import rematch_customer

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ACCOUNT = {"id": "001A", "name": "Acme", "website": "acme.com"}
CONTACT = {"id": "003J", "first_name": "Jane", "last_name": "Doe", "email": "jane@acme.com",
           "account_ref": "001A"}
#: Tickets from a table whose config maps no requester: the email stays in the unmapped columns.
TICKETS: list[dict[str, Any]] = [
    {"id": "t1", "subject": "Help", "requester_email": "JANE@acme.com"},
    {"id": "t2", "subject": "Again", "SuppliedEmail": "web form", "from_email": "jane@acme.com"},
    {"id": "t3", "subject": "Nobody", "email": 42},
    {"id": "t4", "subject": "Stranger", "requester_email": "someone@elsewhere.org"},
]
TICKET_STREAM = parse_mapping("tickets", {"primary_key": "id", "updated_at": "updated_at",
                                          "fields": {"name": "subject"}}, where="streams.tickets")


@pytest.fixture
def engine_at_0006(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    upgrade(eng, "0006")
    yield eng
    eng.dispose()


def _register(engine: Engine, customer: str) -> None:
    now = utcnow()
    with engine.begin() as conn:
        save_customer(conn, Customer(id=customer, name=customer.title()), now)
        for provider in ("crm", "desk"):
            save_integration(conn, Integration(id=f"{provider}.{customer}", customer_id=customer,
                                               provider="rest", config={"base_url": "http://x"}),
                             {}, now)


def _store_old_shape(engine: Engine, customer: str) -> None:
    """The rows as the processor stored them before 0007: no requester_email column."""
    def row(integration: str, interaction_type: str, external_id: str,
            fields: dict[str, Any], **typed: Any) -> dict[str, Any]:
        return {"customer_id": customer, "integration_id": f"{integration}.{customer}",
                "interaction_type": interaction_type, "external_id": external_id,
                "name": None, "email": None, "website": None, "first_name": None,
                "last_name": None, "account_ref": None, "fields": fields,
                "source_updated_at": T0, "updated_at": T0, **typed}

    rows = [row("crm", "accounts", "001A", {"email": "billing@acme.com"}, name="Acme",
                website="acme.com"),
            row("crm", "contacts", "003J", {}, name="Jane Doe", first_name="Jane",
                last_name="Doe", email="jane@acme.com", account_ref="001A")]
    for ticket in TICKETS:
        rest = {k: v for k, v in ticket.items() if k not in ("id", "subject")}
        rows.append(row("desk", "tickets", ticket["id"], rest, name=ticket["subject"]))
    with engine.begin() as conn:
        conn.execute(insert(interactions), rows)


def _sync_now(engine: Engine, customer: str) -> None:
    """The same records through today's path: the ticket stream fills requester_email."""
    batches = [
        ("crm", [TypedRecord("accounts", "001A", T0, name="Acme", website="acme.com",
                             fields={"email": "billing@acme.com"})]),
        ("crm", [TypedRecord("contacts", "003J", T0, name="Jane Doe", first_name="Jane",
                             last_name="Doe", email="jane@acme.com", account_ref="001A")]),
        ("desk", [TICKET_STREAM.to_typed({**t, "updated_at": T0.isoformat()})
                  for t in TICKETS]),
    ]
    for integration, records in batches:
        with engine.begin() as conn:
            process_batch(conn, customer_id=customer, integration_id=f"{integration}.{customer}",
                          records=records, now=utcnow(),
                          result=ProcessResult(integration, records[0].interaction_type))


def _ticket_links(engine: Engine, customer: str) -> dict[str, tuple[Any, ...]]:
    """Ticket → (its contact's source id, contact rule, its account's source id, account
    rule): source ids, since entity ids differ between customers."""
    i = interactions.c
    with engine.connect() as conn:
        def links(table: Any, column: str,
                  kind: str) -> tuple[dict[str, tuple[int, str]], dict[int, str]]:
            rows = conn.execute(select(i.external_id, i.interaction_type, table.c[column],
                                       table.c.rule)
                                .join(table, table.c.interaction_id == i.id)
                                .where(i.customer_id == customer)).all()
            tickets = {r[0]: (r[2], r[3]) for r in rows if r[1] == "tickets"}
            members = {r[2]: r[0] for r in rows if r[1] == kind}
            return tickets, members

        by_contact, contact_source = links(contact_links, "contact_id", "contacts")
        by_account, account_source = links(account_links, "account_id", "accounts")
        tickets = conn.execute(select(i.external_id).where(
            i.customer_id == customer, i.interaction_type == "tickets")).scalars().all()
    found: dict[str, tuple[Any, ...]] = {}
    for ticket in tickets:
        contact_id, contact_rule = by_contact.get(ticket, (None, None))
        account_id, account_rule = by_account.get(ticket, (None, None))
        found[ticket] = (contact_source.get(contact_id) if contact_id else None, contact_rule,
                         account_source.get(account_id) if account_id else None, account_rule)
    return found


def test_old_rows_rematch_like_new_ones_after_the_backfill(engine_at_0006: Engine) -> None:
    engine = engine_at_0006
    _register(engine, "old")
    _store_old_shape(engine, "old")
    upgrade(engine)
    with engine.connect() as conn:
        backfilled = dict(conn.execute(
            select(interactions.c.external_id, interactions.c.requester_email)
            .where(interactions.c.customer_id == "old")).all())
    assert backfilled == {"001A": None, "003J": None, "t1": "JANE@acme.com",
                          "t2": "jane@acme.com", "t3": None, "t4": "someone@elsewhere.org"}
    with engine.begin() as conn:
        rematch_customer(conn, "old")
    _register(engine, "new")
    _sync_now(engine, "new")
    old, new = _ticket_links(engine, "old"), _ticket_links(engine, "new")
    assert old == new == {
        "t1": ("003J", "email", "001A", "contact_account"),
        "t2": ("003J", "email", "001A", "contact_account"),
        "t3": (None, None, None, None),
        "t4": (None, None, None, None),
    }
