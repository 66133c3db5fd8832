"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-24 16:21:32.521866
"""
from alembic import op
import sqlalchemy as sa



revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('customers',
    sa.Column('id', sa.String(length=100), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('admin_email', sa.String(length=320), nullable=True),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customers'))
    )
    op.create_table('accounts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('customer_id', sa.String(length=100), nullable=False),
    sa.Column('name', sa.String(length=500), nullable=True),
    sa.Column('domain', sa.String(length=255), nullable=True),
    sa.Column('phone', sa.String(length=64), nullable=True),
    sa.Column('source', sa.String(length=50), nullable=True),
    sa.Column('source_updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('merged_into', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_accounts_customer_id_customers')),
    sa.ForeignKeyConstraint(['merged_into'], ['accounts.id'], name=op.f('fk_accounts_merged_into_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts'))
    )
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.create_index('ix_accounts_customer_domain', ['customer_id', 'domain'], unique=False)

    op.create_table('entity_merges',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('customer_id', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('survivor_id', sa.BigInteger(), nullable=False),
    sa.Column('absorbed_id', sa.BigInteger(), nullable=False),
    sa.Column('interaction_ids', sa.JSON(), nullable=False),
    sa.Column('contact_ids', sa.JSON(), nullable=False),
    sa.Column('keys', sa.JSON(), nullable=False),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('merged_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('unmerged_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_entity_merges_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_entity_merges'))
    )
    with op.batch_alter_table('entity_merges', schema=None) as batch_op:
        batch_op.create_index('ix_entity_merges_customer', ['customer_id', 'kind'], unique=False)

    op.create_table('integrations',
    sa.Column('id', sa.String(length=200), nullable=False),
    sa.Column('customer_id', sa.String(length=100), nullable=False),
    sa.Column('provider', sa.String(length=50), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('credentials', sa.JSON(), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_integrations_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_integrations'))
    )
    with op.batch_alter_table('integrations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_integrations_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_integrations_provider'), ['provider'], unique=False)

    op.create_table('match_keys',
    sa.Column('customer_id', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('key', sa.String(length=400), nullable=False),
    sa.Column('entity_id', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_match_keys_customer_id_customers')),
    sa.PrimaryKeyConstraint('customer_id', 'kind', 'key', 'entity_id', name=op.f('pk_match_keys'))
    )
    with op.batch_alter_table('match_keys', schema=None) as batch_op:
        batch_op.create_index('ix_match_keys_entity', ['kind', 'entity_id'], unique=False)

    op.create_table('alerts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('incident_key', sa.String(length=300), nullable=False),
    sa.Column('integration_id', sa.String(length=200), nullable=False),
    sa.Column('customer_id', sa.String(length=100), nullable=False),
    sa.Column('interaction_type', sa.String(length=100), nullable=True),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('failure_class', sa.String(length=20), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_alerts_customer_id_customers')),
    sa.ForeignKeyConstraint(['integration_id'], ['integrations.id'], name=op.f('fk_alerts_integration_id_integrations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts'))
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alerts_incident_key'), ['incident_key'], unique=False)

    op.create_table('contacts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('customer_id', sa.String(length=100), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('name', sa.String(length=500), nullable=True),
    sa.Column('first_name', sa.String(length=200), nullable=True),
    sa.Column('last_name', sa.String(length=200), nullable=True),
    sa.Column('phone', sa.String(length=64), nullable=True),
    sa.Column('source', sa.String(length=50), nullable=True),
    sa.Column('source_updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('merged_into', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_contacts_account_id_accounts')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_contacts_customer_id_customers')),
    sa.ForeignKeyConstraint(['merged_into'], ['contacts.id'], name=op.f('fk_contacts_merged_into_contacts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts'))
    )
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.create_index('ix_contacts_customer_email', ['customer_id', 'email'], unique=False)

    op.create_table('integration_objects',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('integration_id', sa.String(length=200), nullable=False),
    sa.Column('interaction_type', sa.String(length=100), nullable=False),
    sa.Column('frequency_per_day', sa.Float(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('cursor', sa.DateTime(timezone=True), nullable=True),
    sa.Column('checkpoint', sa.DateTime(timezone=True), nullable=True),
    sa.Column('full_checkpoint', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_synced_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['integration_id'], ['integrations.id'], name=op.f('fk_integration_objects_integration_id_integrations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_integration_objects')),
    sa.UniqueConstraint('integration_id', 'interaction_type', name=op.f('uq_integration_objects_integration_id_interaction_type'))
    )
    with op.batch_alter_table('integration_objects', schema=None) as batch_op:
        batch_op.create_index('ix_integration_objects_due', ['enabled', 'next_due_at'], unique=False)

    op.create_table('interactions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('customer_id', sa.String(length=100), nullable=False),
    sa.Column('integration_id', sa.String(length=200), nullable=False),
    sa.Column('interaction_type', sa.String(length=100), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=500), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('website', sa.String(length=500), nullable=True),
    sa.Column('domain', sa.String(length=255), nullable=True),
    sa.Column('phone', sa.String(length=64), nullable=True),
    sa.Column('first_name', sa.String(length=200), nullable=True),
    sa.Column('last_name', sa.String(length=200), nullable=True),
    sa.Column('account_ref', sa.String(length=255), nullable=True),
    sa.Column('contact_ref', sa.String(length=255), nullable=True),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('source_updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_interactions_customer_id_customers')),
    sa.ForeignKeyConstraint(['integration_id'], ['integrations.id'], name=op.f('fk_interactions_integration_id_integrations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_interactions')),
    sa.UniqueConstraint('integration_id', 'interaction_type', 'external_id', name=op.f('uq_interactions_integration_id_interaction_type_external_id'))
    )
    with op.batch_alter_table('interactions', schema=None) as batch_op:
        batch_op.create_index('ix_interactions_customer_type', ['customer_id', 'interaction_type'], unique=False)

    op.create_table('account_links',
    sa.Column('interaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('customer_id', sa.String(length=100), nullable=False),
    sa.Column('rule', sa.String(length=50), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('linked_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_account_links_account_id_accounts')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_account_links_customer_id_customers')),
    sa.ForeignKeyConstraint(['interaction_id'], ['interactions.id'], name=op.f('fk_account_links_interaction_id_interactions')),
    sa.PrimaryKeyConstraint('interaction_id', name=op.f('pk_account_links'))
    )
    with op.batch_alter_table('account_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_account_links_account_id'), ['account_id'], unique=False)

    op.create_table('alert_deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('alert_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('channel', sa.String(length=50), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_alert_deliveries_alert_id_alerts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_deliveries')),
    sa.UniqueConstraint('alert_id', 'channel', 'recipient', name=op.f('uq_alert_deliveries_alert_id_channel_recipient'))
    )
    with op.batch_alter_table('alert_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_alert_deliveries_pending', ['status'], unique=False)

    op.create_table('contact_links',
    sa.Column('interaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('customer_id', sa.String(length=100), nullable=False),
    sa.Column('rule', sa.String(length=50), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('linked_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_contact_links_contact_id_contacts')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_contact_links_customer_id_customers')),
    sa.ForeignKeyConstraint(['interaction_id'], ['interactions.id'], name=op.f('fk_contact_links_interaction_id_interactions')),
    sa.PrimaryKeyConstraint('interaction_id', name=op.f('pk_contact_links'))
    )
    with op.batch_alter_table('contact_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contact_links_contact_id'), ['contact_id'], unique=False)

    op.create_table('match_reviews',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('customer_id', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('interaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('entity_id', sa.BigInteger(), nullable=True),
    sa.Column('candidate_id', sa.BigInteger(), nullable=False),
    sa.Column('rule', sa.String(length=50), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_match_reviews_customer_id_customers')),
    sa.ForeignKeyConstraint(['interaction_id'], ['interactions.id'], name=op.f('fk_match_reviews_interaction_id_interactions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_match_reviews')),
    sa.UniqueConstraint('kind', 'interaction_id', 'candidate_id', name=op.f('uq_match_reviews_kind_interaction_id_candidate_id'))
    )
    with op.batch_alter_table('match_reviews', schema=None) as batch_op:
        batch_op.create_index('ix_match_reviews_customer_status', ['customer_id', 'status'], unique=False)

    op.create_table('quarantine',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('integration_object_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['integration_object_id'], ['integration_objects.id'], name=op.f('fk_quarantine_integration_object_id_integration_objects')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quarantine'))
    )
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quarantine_integration_object_id'), ['integration_object_id'], unique=False)

    op.create_table('staged_records',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('integration_object_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=False),
    sa.Column('source_updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('pending', sa.Boolean(), nullable=False),
    sa.Column('staged_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['integration_object_id'], ['integration_objects.id'], name=op.f('fk_staged_records_integration_object_id_integration_objects')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staged_records')),
    sa.UniqueConstraint('integration_object_id', 'external_id', name=op.f('uq_staged_records_integration_object_id_external_id'))
    )
    with op.batch_alter_table('staged_records', schema=None) as batch_op:
        batch_op.create_index('ix_staged_records_pending', ['integration_object_id', 'pending'], unique=False)

    op.create_table('sync_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('integration_object_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.Column('trigger', sa.String(length=20), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('records_fetched', sa.Integer(), nullable=False),
    sa.Column('pages', sa.Integer(), nullable=False),
    sa.Column('created', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('matched', sa.Integer(), nullable=False),
    sa.Column('cursor_before', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cursor_after', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['integration_object_id'], ['integration_objects.id'], name=op.f('fk_sync_runs_integration_object_id_integration_objects')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_runs'))
    )
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sync_runs_integration_object_id'), ['integration_object_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sync_runs_integration_object_id'))

    op.drop_table('sync_runs')
    with op.batch_alter_table('staged_records', schema=None) as batch_op:
        batch_op.drop_index('ix_staged_records_pending')

    op.drop_table('staged_records')
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quarantine_integration_object_id'))

    op.drop_table('quarantine')
    with op.batch_alter_table('match_reviews', schema=None) as batch_op:
        batch_op.drop_index('ix_match_reviews_customer_status')

    op.drop_table('match_reviews')
    with op.batch_alter_table('contact_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contact_links_contact_id'))

    op.drop_table('contact_links')
    with op.batch_alter_table('alert_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_alert_deliveries_pending')

    op.drop_table('alert_deliveries')
    with op.batch_alter_table('account_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_account_links_account_id'))

    op.drop_table('account_links')
    with op.batch_alter_table('interactions', schema=None) as batch_op:
        batch_op.drop_index('ix_interactions_customer_type')

    op.drop_table('interactions')
    with op.batch_alter_table('integration_objects', schema=None) as batch_op:
        batch_op.drop_index('ix_integration_objects_due')

    op.drop_table('integration_objects')
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_index('ix_contacts_customer_email')

    op.drop_table('contacts')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alerts_incident_key'))

    op.drop_table('alerts')
    with op.batch_alter_table('match_keys', schema=None) as batch_op:
        batch_op.drop_index('ix_match_keys_entity')

    op.drop_table('match_keys')
    with op.batch_alter_table('integrations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_integrations_provider'))
        batch_op.drop_index(batch_op.f('ix_integrations_customer_id'))

    op.drop_table('integrations')
    with op.batch_alter_table('entity_merges', schema=None) as batch_op:
        batch_op.drop_index('ix_entity_merges_customer')

    op.drop_table('entity_merges')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_index('ix_accounts_customer_domain')

    op.drop_table('accounts')
    op.drop_table('customers')
