"""The demo registry: customers and integrations that point at the running sandbox."""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from akita_pipelines.core.types import Customer, Integration
from akita_pipelines.onboarding import add_customer, add_integration
from akita_pipelines.providers.registry import PROVIDERS
from akita_pipelines.sandbox.world import World

DEMO_CUSTOMERS = (
    Customer(id="acme-corp", name="Acme Corp", admin_email="cs-admin@acme-corp.example"),
    Customer(id="globex", name="Globex", admin_email="ops@globex.example",
             settings={"sync_frequency_per_day": 48.0}),
)

_CONFIG_KEYS = ("base_url",)


def register_demo(engine: Engine, sandbox_urls: Mapping[str, Mapping[str, Any]],
                  home: Path | None = None) -> list[str]:
    """One integration per customer per provider the sandbox serves, plus (with ``home``) a
    customer SQL database and a file inbox each, written under ``home/demo``; returns the ids."""
    ids = []
    for customer in DEMO_CUSTOMERS:
        add_customer(engine, customer)
        if home is not None:
            ids += _register_local(engine, customer, home / "demo" / customer.id)
        for provider, info in sorted(sandbox_urls.items()):
            if provider not in PROVIDERS:
                continue
            config = dict(info.get("config") or {k: v for k, v in info.items()
                                                 if k in _CONFIG_KEYS})
            credentials = {k: v for k, v in info.items() if k not in (*_CONFIG_KEYS, "config")}
            integration_id = f"{provider}.{customer.id}"
            add_integration(engine, Integration(id=integration_id, customer_id=customer.id,
                                                provider=provider, config=config), credentials)
            ids.append(integration_id)
    return ids


#: The demo customer's own database: a CRM table per type, as a customer's app keeps them.
SQL_STREAMS = {
    "accounts": {"table": "companies", "primary_key": "id", "updated_at": "updated_at",
                 "fields": {"name": "company_name", "website": "site", "phone": "phone"}},
    "contacts": {"table": "people", "primary_key": "id", "updated_at": "updated_at",
                 "fields": {"first_name": "first_name", "last_name": "last_name",
                            "email": "email", "phone": "phone", "account_ref": "company_id"}},
}
FILE_STREAMS = {
    "accounts": {"pattern": "accounts*.csv", "primary_key": "account_id",
                 "fields": {"name": "Company", "website": "Website", "phone": "Phone"}},
    "contacts": {"pattern": "contacts*.csv", "primary_key": "contact_id",
                 "fields": {"first_name": "First", "last_name": "Last", "email": "Email",
                            "account_ref": "account_id"}},
}


def _register_local(engine: Engine, customer: Customer, folder: Path) -> list[str]:
    """A SQL integration over a SQLite CRM and a files integration over a CSV inbox, both
    drawn from the sandbox world so that they match the SaaS providers' records."""
    world = World(seed=7)
    inbox = folder / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    crm = folder / "crm.db"
    view = world.view("sql")
    stamp = world.now.strftime("%Y-%m-%d %H:%M:%S")
    with sqlite3.connect(crm) as db:
        db.execute("DROP TABLE IF EXISTS companies")
        db.execute("DROP TABLE IF EXISTS people")
        db.execute("CREATE TABLE companies (id TEXT PRIMARY KEY, company_name TEXT, site TEXT, "
                   "phone TEXT, updated_at TEXT)")
        db.execute("CREATE TABLE people (id TEXT PRIMARY KEY, first_name TEXT, last_name TEXT, "
                   "email TEXT, phone TEXT, company_id TEXT, updated_at TEXT)")
        db.executemany("INSERT INTO companies VALUES (?, ?, ?, ?, ?)", [
            (f"c{i}", c.name, c.website, c.phone, stamp) for i, c in enumerate(view.companies)])
        company_of = {c.company.entity_id: f"c{i}" for i, c in enumerate(view.companies)}
        db.executemany("INSERT INTO people VALUES (?, ?, ?, ?, ?, ?, ?)", [
            (f"p{i}", p.first_name, p.last_name, p.email, p.phone,
             company_of.get(p.person.company), stamp) for i, p in enumerate(view.people)])
    files = world.view("files")
    file_company = {c.company.entity_id: f"a{i}" for i, c in enumerate(files.companies)}
    with (inbox / "accounts.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["account_id", "Company", "Website", "Phone"])
        writer.writerows([f"a{i}", c.name, c.website or "", c.phone or ""]
                         for i, c in enumerate(files.companies))
    with (inbox / "contacts.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["contact_id", "First", "Last", "Email", "account_id"])
        writer.writerows([f"k{i}", p.first_name, p.last_name, p.email or "",
                          file_company.get(p.person.company, "")]
                         for i, p in enumerate(files.people))
    ids = []
    for provider, config in (("sql", {"url": f"sqlite:///{crm}", "streams": SQL_STREAMS}),
                             ("files", {"inbox": str(inbox), "settle_seconds": 0,
                                        "streams": FILE_STREAMS})):
        integration_id = f"{provider}.{customer.id}"
        add_integration(engine, Integration(id=integration_id, customer_id=customer.id,
                                            provider=provider, config=config), {})
        ids.append(integration_id)
    return ids
