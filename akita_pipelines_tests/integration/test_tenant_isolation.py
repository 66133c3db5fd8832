"""Two customers with the same companies never share an Account or a Contact."""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from akita_pipelines.db.schema import (
    account_links,
    accounts,
    contact_links,
    contacts,
    interactions,
)
from akita_pipelines.sandbox.server import Sandbox
from akita_pipelines.sync.rematch import rematch_all
from akita_pipelines.sync.service import sync_object
from akita_pipelines_tests.integration.conftest import register_salesforce


def _crossing(engine: Engine) -> int:
    crossing = 0
    with engine.connect() as conn:
        for links, entities, column in ((account_links, accounts, "account_id"),
                                        (contact_links, contacts, "contact_id")):
            crossing += conn.execute(
                select(func.count()).select_from(links)
                .join(interactions, interactions.c.id == links.c.interaction_id)
                .join(entities, entities.c.id == links.c[column])
                .where((interactions.c.customer_id != entities.c.customer_id)
                       | (links.c.customer_id != entities.c.customer_id))).scalar_one()
        crossing += conn.execute(
            select(func.count()).select_from(contacts)
            .join(accounts, accounts.c.id == contacts.c.account_id)
            .where(contacts.c.customer_id != accounts.c.customer_id)).scalar_one()
    return int(crossing)


def test_no_link_crosses_customers(engine: Engine, sandbox: Sandbox) -> None:
    for customer in ("acme", "globex"):
        integration = register_salesforce(engine, sandbox, customer=customer)
        for kind in ("accounts", "contacts", "deals", "tickets", "tasks"):
            sync_object(engine, integration, kind)
    with engine.connect() as conn:
        per_customer = dict(conn.execute(select(accounts.c.customer_id, func.count())
                                         .group_by(accounts.c.customer_id)).all())
    # Same source data, so the same number of Accounts each, and none shared.
    assert per_customer["acme"] == per_customer["globex"] > 0
    assert _crossing(engine) == 0
    rematch_all(engine)
    assert _crossing(engine) == 0
