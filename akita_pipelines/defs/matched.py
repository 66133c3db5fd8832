"""The matched ``accounts`` and ``contacts`` tables as assets, with checks on them."""


from collections.abc import Sequence

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    MaterializeResult,
    asset,
    asset_check,
)
from sqlalchemy import func, select

from akita_pipelines.db.entities import unexplained_duplicate_domains
from akita_pipelines.db.schema import accounts, contacts, interactions, match_reviews, quarantine
from akita_pipelines.defs.resources import AkitaDatabase
from akita_pipelines.sync.rematch import rematch_all


def build_matched_assets(account_sources: Sequence[AssetKey],
                         contact_sources: Sequence[AssetKey]) -> list[AssetsDefinition]:
    @asset(key="accounts", group_name="matched", deps=list(account_sources), kinds={"sql"},
           description="One row per company of each customer, matched across every provider. "
                       "Materialising it re-matches all Accounts and Contacts from the stored "
                       "interactions (after a rule change) and reports what moved.")
    def matched_accounts(context: AssetExecutionContext,
                         akita_db: AkitaDatabase) -> MaterializeResult[None]:
        report = rematch_all(akita_db.engine())
        context.log.info("re-matched %d customers", report.customers)
        return MaterializeResult(metadata={
            "customers": report.customers, "accounts_before": report.accounts_before,
            "accounts": report.accounts_after, "contacts_before": report.contacts_before,
            "contacts": report.contacts_after, "links": report.links,
            "moved": report.moved, "open_reviews": report.reviews})

    @asset(key="contacts", group_name="matched", deps=[*contact_sources, "accounts"],
           kinds={"sql"},
           description="One row per person of each customer, linked to their Account. "
                       "Re-matched together with `accounts`; this reports the table.")
    def matched_contacts(akita_db: AkitaDatabase) -> MaterializeResult[None]:
        with akita_db.engine().connect() as conn:
            total = conn.execute(select(func.count()).select_from(contacts)).scalar_one()
            orphans = conn.execute(select(func.count()).select_from(contacts)
                                   .where(contacts.c.account_id.is_(None))).scalar_one()
        return MaterializeResult(metadata={"contacts": total, "without_account": orphans})

    return [matched_accounts, matched_contacts]


@asset_check(asset="accounts", description="No two Accounts of one customer share a domain, "
                                           "unless recorded for review (a subsidiary on its "
                                           "parent's domain with a clearly different name).")
def accounts_unique_domain(akita_db: AkitaDatabase) -> AssetCheckResult:
    with akita_db.engine().connect() as conn:
        dupes = unexplained_duplicate_domains(conn)
        shared = conn.execute(
            select(func.count()).select_from(
                select(accounts.c.customer_id, accounts.c.domain)
                .where(accounts.c.domain.is_not(None), accounts.c.merged_into.is_(None))
                .group_by(accounts.c.customer_id, accounts.c.domain)
                .having(func.count() > 1).subquery())).scalar_one()
        reviews = conn.execute(select(func.count()).select_from(match_reviews)
                               .where(match_reviews.c.kind == "accounts")).scalar_one()
    return AssetCheckResult(passed=dupes == 0, severity=AssetCheckSeverity.ERROR,
                            metadata={"unexplained_duplicate_domains": dupes,
                                      "shared_domains": shared, "open_reviews": reviews})


@asset_check(asset="contacts", description="Share of Contacts without an Account.")
def contacts_with_account(akita_db: AkitaDatabase) -> AssetCheckResult:
    with akita_db.engine().connect() as conn:
        total = conn.execute(select(func.count()).select_from(contacts)).scalar_one()
        orphans = conn.execute(select(func.count()).select_from(contacts)
                               .where(contacts.c.account_id.is_(None))).scalar_one()
    share = orphans / total if total else 0.0
    return AssetCheckResult(passed=share <= 0.5, severity=AssetCheckSeverity.WARN,
                            metadata={"contacts": total, "without_account": orphans,
                                      "share_without_account": round(share, 4)})


@asset_check(asset="accounts", description="Share of retrieved records quarantined as bad "
                                           "(missing fields, wrong types, unreadable).")
def quarantine_rate(akita_db: AkitaDatabase) -> AssetCheckResult:
    with akita_db.engine().connect() as conn:
        bad = conn.execute(select(func.count()).select_from(quarantine)).scalar_one()
        good = conn.execute(select(func.count()).select_from(interactions)).scalar_one()
    rate = bad / (bad + good) if bad + good else 0.0
    return AssetCheckResult(passed=rate <= 0.01, severity=AssetCheckSeverity.WARN,
                            metadata={"quarantined": bad, "stored": good,
                                      "quarantine_rate": round(rate, 5)})


CHECKS = [accounts_unique_domain, contacts_with_account, quarantine_rate]
