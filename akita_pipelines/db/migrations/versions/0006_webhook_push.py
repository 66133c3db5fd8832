"""Push: webhook subscriptions, received event ids, pushed objects and receiver counts

Providers' change notifications (HubSpot, Stripe, Zendesk, Intercom webhooks) make Integration
Objects due at once. ``webhook_subscriptions`` holds each integration's endpoint (path token,
the provider's account id, the encrypted signing secret); ``webhook_events`` the event ids
received (duplicates trigger nothing); ``push_due`` the objects notified and not yet handed to
a run (one row per object: coalesced); ``webhook_counts`` what the receivers answered.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 11:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('webhook_subscriptions',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('integration_id', sa.String(length=200), nullable=False),
    sa.Column('provider', sa.String(length=50), nullable=False),
    sa.Column('path_token', sa.String(length=64), nullable=False),
    sa.Column('account_ref', sa.String(length=200), nullable=True),
    sa.Column('secret', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['integration_id'], ['integrations.id'], name=op.f('fk_webhook_subscriptions_integration_id_integrations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_subscriptions')),
    sa.UniqueConstraint('path_token', name=op.f('uq_webhook_subscriptions_path_token'))
    )
    with op.batch_alter_table('webhook_subscriptions', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_subscriptions_account', ['provider', 'account_ref'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_subscriptions_integration_id'), ['integration_id'], unique=False)

    op.create_table('webhook_events',
    sa.Column('subscription_id', BIG_ID, nullable=False),
    sa.Column('event_id', sa.String(length=200), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['subscription_id'], ['webhook_subscriptions.id'], name=op.f('fk_webhook_events_subscription_id_webhook_subscriptions')),
    sa.PrimaryKeyConstraint('subscription_id', 'event_id', name=op.f('pk_webhook_events'))
    )
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_events_received_at'), ['received_at'], unique=False)

    op.create_table('push_due',
    sa.Column('integration_object_id', BIG_ID, nullable=False),
    sa.Column('integration_id', sa.String(length=200), nullable=False),
    sa.Column('first_notified_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_notified_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('notifications', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['integration_object_id'], ['integration_objects.id'], name=op.f('fk_push_due_integration_object_id_integration_objects')),
    sa.PrimaryKeyConstraint('integration_object_id', name=op.f('pk_push_due'))
    )
    with op.batch_alter_table('push_due', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_push_due_integration_id'), ['integration_id'], unique=False)

    op.create_table('webhook_counts',
    sa.Column('provider', sa.String(length=50), nullable=False),
    sa.Column('integration_id', sa.String(length=200), nullable=False),
    sa.Column('outcome', sa.String(length=30), nullable=False),
    sa.Column('count', sa.BigInteger(), nullable=False),
    sa.Column('last_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('provider', 'integration_id', 'outcome', name=op.f('pk_webhook_counts'))
    )


def downgrade() -> None:
    op.drop_table('webhook_counts')
    with op.batch_alter_table('push_due', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_push_due_integration_id'))
    op.drop_table('push_due')
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_events_received_at'))
    op.drop_table('webhook_events')
    with op.batch_alter_table('webhook_subscriptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_subscriptions_integration_id'))
        batch_op.drop_index('ix_webhook_subscriptions_account')
    op.drop_table('webhook_subscriptions')
