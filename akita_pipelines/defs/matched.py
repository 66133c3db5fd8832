"""The matched ``accounts`` and ``contacts`` tables as assets, with checks on them.

Every accounts or contacts sync changes these tables: its process op reports a
materialisation of the matched asset (created, matched, merged, open reviews) and evaluates
the asset's checks on it, so the UI shows them live without re-matching everything.
Materialising the asset itself (UI) re-matches all stored interactions.
"""


from collections.abc import Callable, Sequence

from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)
from sqlalchemy import Connection, Engine

from akita_pipelines.db import health
from akita_pipelines.defs.resources import AkitaDatabase
from akita_pipelines.sync.rematch import rematch_all

#: Interaction type → the matched asset its syncs write.
MATCHED_KEYS = {"accounts": AssetKey("accounts"), "contacts": AssetKey("contacts")}


def build_matched_assets(object_keys: Sequence[AssetKey]) -> list[AssetsDefinition]:
    """``accounts`` and ``contacts``, downstream of every provider's ``accounts`` (``contacts``)
    asset, the custom ones of sql, files and rest included: those syncs write their rows.

    Types that only link to them (deals, tickets, custom types) are not upstream: each of their
    syncs would mark the matched tables "unsynced" in the UI without changing them.
    """
    account_sources = [k for k in object_keys if k.path[-1] == "accounts"]
    contact_sources = [k for k in object_keys if k.path[-1] == "contacts"]

    @asset(key="accounts", group_name="matched", deps=account_sources, kinds={"sql"},
           description="One row per company of each customer, matched across every provider. "
                       "Each accounts sync reports a materialisation here (created, matched, "
                       "merged, open reviews). Materialising it from the UI re-matches all "
                       "Accounts and Contacts from the stored interactions (after a rule "
                       "change) and reports what moved.")
    def matched_accounts(context: AssetExecutionContext,
                         akita_db: AkitaDatabase) -> MaterializeResult[None]:
        report = rematch_all(akita_db.engine())
        context.log.info("re-matched %d customers", report.customers)
        return MaterializeResult(metadata={
            "customers": report.customers, "accounts_before": report.accounts_before,
            "accounts": report.accounts_after, "contacts_before": report.contacts_before,
            "contacts": report.contacts_after, "links": report.links,
            "moved": MetadataValue.int(report.moved),
            "open_reviews": report.reviews})

    @asset(key="contacts", group_name="matched", deps=[*contact_sources, "accounts"],
           kinds={"sql"},
           description="One row per person of each customer, linked to their Account. Each "
                       "contacts sync reports a materialisation here; re-matched together "
                       "with `accounts`, and materialising it reports the table.")
    def matched_contacts(akita_db: AkitaDatabase) -> MaterializeResult[None]:
        with akita_db.engine().connect() as conn:
            total, orphans = health.contact_account_counts(conn)
        return MaterializeResult(metadata={"contacts": total, "without_account": orphans})

    return [matched_accounts, matched_contacts]


def _unique_domain(conn: Connection) -> AssetCheckResult:
    stats = health.account_domain_stats(conn)
    return AssetCheckResult(
        passed=stats.unexplained_duplicates == 0, severity=AssetCheckSeverity.ERROR,
        metadata={"unexplained_duplicate_domains": stats.unexplained_duplicates,
                  "shared_domains": stats.shared_domains, "open_reviews": stats.open_reviews})


def _with_account(conn: Connection) -> AssetCheckResult:
    total, orphans = health.contact_account_counts(conn)
    share = orphans / total if total else 0.0
    return AssetCheckResult(passed=share <= 0.5, severity=AssetCheckSeverity.WARN,
                            metadata={"contacts": total, "without_account": orphans,
                                      "share_without_account": MetadataValue.float(
                                          round(share, 4))})


def _quarantine_rate(conn: Connection) -> AssetCheckResult:
    bad, good = health.quarantine_counts(conn)
    rate = bad / (bad + good) if bad + good else 0.0
    return AssetCheckResult(passed=rate <= 0.01, severity=AssetCheckSeverity.WARN,
                            metadata={"quarantined": bad, "stored": good,
                                      "quarantine_rate": MetadataValue.float(round(rate, 5))})


#: The matched assets' checks: (asset, check name, description, evaluation). Dagster runs
#: them on request; every sync of the asset evaluates them too (:func:`evaluate_matched_checks`).
_CHECKS: list[tuple[str, str, str, Callable[[Connection], AssetCheckResult]]] = [
    ("accounts", "accounts_unique_domain", "No two Accounts of one customer share a domain, "
     "unless recorded for review (a subsidiary on its parent's domain with a clearly different "
     "name).", _unique_domain),
    ("contacts", "contacts_with_account", "Share of Contacts without an Account (at most "
     "50 %).", _with_account),
    ("accounts", "quarantine_rate", "Share of retrieved records quarantined as bad (missing "
     "fields, wrong types, unreadable; at most 1 %).", _quarantine_rate),
]


def _asset_check(asset_name: str, name: str, description: str,
                 evaluate: Callable[[Connection], AssetCheckResult]) -> AssetChecksDefinition:
    @asset_check(asset=asset_name, name=name, description=description)
    def check(akita_db: AkitaDatabase) -> AssetCheckResult:
        with akita_db.engine().connect() as conn:
            return evaluate(conn)

    return check


CHECKS = [_asset_check(*entry) for entry in _CHECKS]


def evaluate_matched_checks(engine: Engine, kind: str) -> list[AssetCheckEvaluation]:
    """The checks of the matched ``kind`` asset evaluated now, as events a sync's op logs
    right after reporting the asset's materialisation."""
    key = MATCHED_KEYS[kind]
    evaluations = []
    with engine.connect() as conn:
        for asset_name, name, _, check in _CHECKS:
            if asset_name != kind:
                continue
            result = check(conn)
            evaluations.append(AssetCheckEvaluation(
                asset_key=key, check_name=name, passed=bool(result.passed),
                metadata=dict(result.metadata), severity=result.severity))
    return evaluations
