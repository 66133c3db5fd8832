"""The Akita database schema (SQLAlchemy 2.0 Core). Migrations in ``db/migrations`` mirror it.

Tables, by room:
- registry: ``customers``, ``integrations``, ``integration_objects`` (sync state per object)
- retrieval: ``staged_records`` (raw payloads, upserted by external id, numbered in staging order)
- processing: ``interactions`` (typed rows), ``accounts`` / ``contacts`` (matched entities, one per
  real company / person of one customer), ``account_links`` / ``contact_links`` (interaction →
  entity, with the rule that linked it), ``match_keys`` / ``match_reviews`` / ``entity_merges``
  (the matcher's index, review band and merge history)
- history: ``sync_runs``
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every dialect.

    SQLite has no time zones: values are stored as naive UTC so that text comparisons order
    correctly, and read back as aware UTC. PostgreSQL stores ``timestamptz``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: Akita stores timezone-aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

TZ = UtcDateTime()
# BigInteger primary keys autoincrement on PostgreSQL; SQLite only autoincrements INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")

customers = Table(
    "customers",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("admin_email", String(320)),
    Column("settings", JSON, nullable=False, default=dict),
    Column("created_at", TZ, nullable=False),
)

integrations = Table(
    "integrations",
    metadata,
    Column("id", String(200), primary_key=True),  # "<provider>.<slug>", unique across providers
    Column("customer_id", ForeignKey("customers.id"), nullable=False, index=True),
    Column("provider", String(50), nullable=False, index=True),
    Column("config", JSON, nullable=False, default=dict),  # base_url and other non-secret config
    Column("credentials", JSON, nullable=False, default=dict),  # secrets: never logged
    Column("settings", JSON, nullable=False, default=dict),  # layered-config overrides
    Column("state", String(20), nullable=False, default="active"),  # active|needs_reauth|disabled
    Column("created_at", TZ, nullable=False),
    Column("updated_at", TZ, nullable=False),
)

integration_objects = Table(
    "integration_objects",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("integration_id", ForeignKey("integrations.id"), nullable=False),
    Column("interaction_type", String(100), nullable=False),
    Column("frequency_per_day", Float, nullable=False),  # effective, resolved from the layers
    Column("enabled", Boolean, nullable=False, default=True),
    # The committed cursor: every record up to it has been stored *and* processed.
    Column("cursor", TZ),
    # The retrieval checkpoint: pages up to it are staged; committed into ``cursor`` after
    # processing. A crashed sync resumes from here.
    Column("checkpoint", TZ),
    # Where an interrupted full re-read or history backfill got to; it resumes from here.
    Column("full_checkpoint", TZ),
    # How the connector continues an interrupted read whose pages are not in cursor order (a
    # Salesforce bulk job and its next locator); stored with each page. Null: nothing to resume.
    Column("resume_state", JSON),
    Column("last_synced_at", TZ),
    Column("last_attempt_at", TZ),
    Column("next_due_at", TZ),  # last success + 1 day / frequency, or a retry time after failure
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("state", String(20), nullable=False, default="ok"),  # ok|failing
    Column("last_error", Text),
    # Staging numbers each row it stages with new content (the last number drawn); the
    # processor has stored every row numbered up to its watermark.
    Column("staged_seq", BigInteger, nullable=False, default=0, server_default="0"),
    Column("processed_seq", BigInteger, nullable=False, default=0, server_default="0"),
    UniqueConstraint("integration_id", "interaction_type"),
    Index("ix_integration_objects_due", "enabled", "next_due_at"),
)

staged_records = Table(
    "staged_records",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("integration_object_id", ForeignKey("integration_objects.id"), nullable=False),
    Column("external_id", String(255), nullable=False),
    Column("source_updated_at", TZ),
    Column("content_hash", String(64), nullable=False),
    Column("payload", Text, nullable=False),  # the raw JSON as received
    # The object's staging number when this content arrived: above the object's
    # ``processed_seq`` it waits for the processor, which reads in this order.
    Column("seq", BigInteger, nullable=False),
    Column("staged_at", TZ, nullable=False),
    UniqueConstraint("integration_object_id", "external_id"),
    Index("ix_staged_records_seq", "integration_object_id", "seq"),
)

interactions = Table(
    "interactions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    # The integration's customer, copied for the look-ups by customer. No foreign key of its
    # own: the integration's holds it, and PostgreSQL's per-row referential check was a tenth
    # of a sync's server time (migration 0011).
    Column("customer_id", String(100), nullable=False),
    Column("integration_id", ForeignKey("integrations.id"), nullable=False),
    Column("interaction_type", String(100), nullable=False),
    Column("external_id", String(255), nullable=False),
    Column("name", String(500)),
    Column("email", String(320)),
    Column("website", String(500)),
    Column("domain", String(255)),
    Column("phone", String(64)),
    Column("first_name", String(200)),
    Column("last_name", String(200)),
    Column("account_ref", String(255)),
    Column("contact_ref", String(255)),
    Column("requester_email", String(320)),
    Column("fields", JSON, nullable=False, default=dict),
    Column("source_updated_at", TZ),
    Column("deleted_at", TZ),
    Column("updated_at", TZ, nullable=False),
    UniqueConstraint("integration_id", "interaction_type", "external_id"),
    Index("ix_interactions_customer_type", "customer_id", "interaction_type"),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("name", String(500)),
    Column("domain", String(255)),
    Column("phone", String(64)),
    # Survivorship: the source and time of the record that won the golden values.
    Column("source", String(50)),
    Column("source_updated_at", TZ),
    Column("merged_into", ForeignKey("accounts.id")),  # absorbed by a merge; kept for unmerge
    Column("created_at", TZ, nullable=False),
    Column("updated_at", TZ, nullable=False),
    Index("ix_accounts_customer_domain", "customer_id", "domain"),
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("account_id", ForeignKey("accounts.id")),
    Column("email", String(320)),
    Column("name", String(500)),
    Column("first_name", String(200)),
    Column("last_name", String(200)),
    Column("phone", String(64)),
    Column("source", String(50)),
    Column("source_updated_at", TZ),
    Column("merged_into", ForeignKey("contacts.id")),
    Column("created_at", TZ, nullable=False),
    Column("updated_at", TZ, nullable=False),
    Index("ix_contacts_customer_email", "customer_id", "email"),
)

def _links(name: str, entity: str) -> Table:
    """Interaction → the matched account (contact) it belongs to, with the rule that linked it;
    one table per kind, so each entity id has its own foreign key."""
    return Table(
        name,
        metadata,
        Column("interaction_id", ForeignKey("interactions.id"), primary_key=True),
        Column(f"{entity}_id", ForeignKey(f"{entity}s.id"), nullable=False, index=True),
        # The entity's customer, copied; its foreign key is the entity's (migration 0011).
        Column("customer_id", String(100), nullable=False),
        # source_id | id | domain | email | fuzzy | reference | contact_account | new
        Column("rule", String(50), nullable=False),
        Column("score", Float, nullable=False, default=1.0),
        Column("evidence", JSON, nullable=False, default=dict),
        Column("linked_at", TZ, nullable=False),
    )


account_links = _links("account_links", "account")
contact_links = _links("contact_links", "contact")

# What identifies each entity, for the next batch's look-ups: tier-1 ids ("id:salesforce:001…"),
# tier-2 keys ("k:acme.com") and tier-3 block keys ("b:…"). One row per distinct (key, entity).
match_keys = Table(
    "match_keys",
    metadata,
    # No foreign key: a derived index written ~5 rows per entity, where PostgreSQL's per-row
    # referential check cost a quarter of the upsert; rows go with their entities.
    Column("customer_id", String(100), primary_key=True),
    Column("kind", String(20), primary_key=True),  # accounts | contacts
    Column("key", String(400), primary_key=True),
    Column("entity_id", BigInteger, primary_key=True),
    Index("ix_match_keys_entity", "kind", "entity_id"),
)

# Candidate pairs in the review band: recorded, never merged automatically.
match_reviews = Table(
    "match_reviews",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("interaction_id", ForeignKey("interactions.id"), nullable=False),
    Column("entity_id", BigInteger),  # where the record went
    Column("candidate_id", BigInteger, nullable=False),  # the entity it might be
    Column("rule", String(50), nullable=False),
    Column("score", Float, nullable=False),
    Column("evidence", JSON, nullable=False, default=dict),
    Column("status", String(20), nullable=False, default="open"),  # open|merged|rejected
    Column("created_at", TZ, nullable=False),
    UniqueConstraint("kind", "interaction_id", "candidate_id"),
    Index("ix_match_reviews_customer_status", "customer_id", "status"),
)

# Merge history: which links and contacts moved, so that an unmerge can move them back.
entity_merges = Table(
    "entity_merges",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("survivor_id", BigInteger, nullable=False),
    Column("absorbed_id", BigInteger, nullable=False),
    Column("interaction_ids", JSON, nullable=False, default=list),
    Column("contact_ids", JSON, nullable=False, default=list),
    Column("keys", JSON, nullable=False, default=list),
    Column("evidence", JSON, nullable=False, default=dict),
    Column("merged_at", TZ, nullable=False),
    Column("unmerged_at", TZ),
    Index("ix_entity_merges_customer", "customer_id", "kind"),
)

sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("integration_object_id", ForeignKey("integration_objects.id"), nullable=False,
           index=True),
    Column("run_id", String(64)),  # the Dagster run, when there is one
    Column("trigger", String(20), nullable=False),  # sensor|manual|backfill|cli
    Column("started_at", TZ, nullable=False),
    Column("finished_at", TZ),
    Column("status", String(20), nullable=False),  # running|succeeded|failed
    Column("records_fetched", Integer, nullable=False, default=0),
    Column("pages", Integer, nullable=False, default=0),
    Column("created", Integer, nullable=False, default=0),
    Column("updated", Integer, nullable=False, default=0),
    Column("matched", Integer, nullable=False, default=0),
    Column("cursor_before", TZ),
    Column("cursor_after", TZ),
    Column("error", Text),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("integration_object_id", ForeignKey("integration_objects.id"), nullable=False,
           index=True),
    Column("external_id", String(255)),
    Column("reason", Text, nullable=False),
    Column("payload", Text),
    Column("created_at", TZ, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("incident_key", String(300), nullable=False, index=True),  # "<integration>/<type>"
    Column("integration_id", ForeignKey("integrations.id"), nullable=False),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("interaction_type", String(100)),
    Column("kind", String(20), nullable=False),  # broken|reminder|warning|disabled|recovered
    Column("failure_class", String(20)),
    Column("message", Text, nullable=False),
    Column("created_at", TZ, nullable=False),
)

alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("alert_id", ForeignKey("alerts.id"), nullable=False),
    Column("channel", String(50), nullable=False),  # log|email|webhook
    Column("recipient", String(320), nullable=False),
    Column("status", String(20), nullable=False, default="pending"),  # pending|sent|failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("sent_at", TZ),
    UniqueConstraint("alert_id", "channel", "recipient"),
    Index("ix_alert_deliveries_pending", "status"),
)

# Steward decisions, kept across syncs and re-matches. Entity ids change when a customer is
# re-matched, interaction ids do not: every decision holds two records together ("must") or
# apart ("cannot"), and the matcher enforces it whatever the arrival order.
match_decisions = Table(
    "match_decisions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("kind", String(20), nullable=False),  # accounts | contacts
    Column("action", String(20), nullable=False),  # accept|reject|merge|unmerge|detach
    Column("link", String(10), nullable=False),  # must | cannot
    Column("interaction_id", ForeignKey("interactions.id"), nullable=False),
    Column("other_interaction_id", ForeignKey("interactions.id"), nullable=False),
    Column("review_id", BigInteger),  # the review it settled (reviews are rebuilt on re-match)
    Column("actor", String(200), nullable=False),
    Column("reason", Text),
    Column("created_at", TZ, nullable=False),
    Column("revoked_at", TZ),  # a later decision (an unmerge) lifted it
    Column("revoked_by", BigInteger),
    Index("ix_match_decisions_customer", "customer_id", "kind"),
    Index("ix_match_decisions_interaction", "kind", "interaction_id"),
    Index("ix_match_decisions_other", "kind", "other_interaction_id"),
)

# Every steward action and automatic merge, per entity: who, when, why. Entity ids are those
# at the time of the action; the records involved find the rows again after a re-match.
entity_history = Table(
    "entity_history",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("entity_id", BigInteger),
    Column("other_entity_id", BigInteger),
    Column("action", String(20), nullable=False),  # accept|reject|merge|unmerge|detach|auto_merge
    Column("interaction_id", BigInteger),
    Column("other_interaction_id", BigInteger),
    Column("decision_id", BigInteger),
    Column("actor", String(200), nullable=False),
    Column("reason", Text),
    Column("details", JSON, nullable=False, default=dict),
    Column("created_at", TZ, nullable=False),
    Index("ix_entity_history_entity", "customer_id", "kind", "entity_id"),
    Index("ix_entity_history_interaction", "kind", "interaction_id"),
    Index("ix_entity_history_other", "kind", "other_interaction_id"),
)

# Push: providers' change notifications make Integration Objects due at once (akita/push).
# A subscription is one integration's webhook endpoint: an unguessable path token, the
# provider's own id of the account (portal / account / workspace) and the signing secret,
# encrypted like credentials.
webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("integration_id", ForeignKey("integrations.id"), nullable=False, index=True),
    Column("provider", String(50), nullable=False),
    Column("path_token", String(64), nullable=False, unique=True),
    Column("account_ref", String(200)),
    Column("secret", JSON, nullable=False),  # {"fernet": ...}: never logged
    Column("created_at", TZ, nullable=False),
    Index("ix_webhook_subscriptions_account", "provider", "account_ref"),
)

# Event ids already received, per subscription: a retried, duplicated or replayed
# notification triggers nothing twice. Pruned after the providers' retry horizons.
webhook_events = Table(
    "webhook_events",
    metadata,
    Column("subscription_id", ForeignKey("webhook_subscriptions.id"), primary_key=True),
    Column("event_id", String(200), primary_key=True),
    Column("received_at", TZ, nullable=False, index=True),
)

# Integration Objects notified and not yet handed to a run: one row per object however many
# notifications arrived (coalesced). The push sensor requests one run per integration and
# deletes the rows it covered.
push_due = Table(
    "push_due",
    metadata,
    Column("integration_object_id", ForeignKey("integration_objects.id"), primary_key=True),
    Column("integration_id", String(200), nullable=False, index=True),
    Column("first_notified_at", TZ, nullable=False),
    Column("last_notified_at", TZ, nullable=False),
    Column("notifications", Integer, nullable=False),
)

# What the receivers answered, counted per provider, integration ("" when none was resolved)
# and outcome: accepted | duplicate | bad_signature | stale | unknown | oversized | malformed.
webhook_counts = Table(
    "webhook_counts",
    metadata,
    Column("provider", String(50), primary_key=True),
    Column("integration_id", String(200), primary_key=True),
    Column("outcome", String(30), primary_key=True),
    Column("count", BigInteger, nullable=False),
    Column("last_at", TZ, nullable=False),
)
