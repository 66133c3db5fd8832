"""Steward decisions and entity history

``match_decisions`` keeps what a steward decided (accept or reject a review, merge two
entities, unmerge, detach a record) as must-link / cannot-link pairs of interactions, which
survive re-matches (entity ids do not); the matcher enforces them. ``entity_history`` lists
every steward action and automatic merge with who, when and why.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 10:45:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('match_decisions',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('customer_id', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('link', sa.String(length=10), nullable=False),
    sa.Column('interaction_id', BIG_ID, nullable=False),
    sa.Column('other_interaction_id', BIG_ID, nullable=False),
    sa.Column('review_id', sa.BigInteger(), nullable=True),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_by', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_match_decisions_customer_id_customers')),
    sa.ForeignKeyConstraint(['interaction_id'], ['interactions.id'], name=op.f('fk_match_decisions_interaction_id_interactions')),
    sa.ForeignKeyConstraint(['other_interaction_id'], ['interactions.id'], name=op.f('fk_match_decisions_other_interaction_id_interactions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_match_decisions'))
    )
    with op.batch_alter_table('match_decisions', schema=None) as batch_op:
        batch_op.create_index('ix_match_decisions_customer', ['customer_id', 'kind'], unique=False)
        batch_op.create_index('ix_match_decisions_interaction', ['kind', 'interaction_id'], unique=False)
        batch_op.create_index('ix_match_decisions_other', ['kind', 'other_interaction_id'], unique=False)

    op.create_table('entity_history',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('customer_id', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('entity_id', sa.BigInteger(), nullable=True),
    sa.Column('other_entity_id', sa.BigInteger(), nullable=True),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('interaction_id', sa.BigInteger(), nullable=True),
    sa.Column('other_interaction_id', sa.BigInteger(), nullable=True),
    sa.Column('decision_id', sa.BigInteger(), nullable=True),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_entity_history_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_entity_history'))
    )
    with op.batch_alter_table('entity_history', schema=None) as batch_op:
        batch_op.create_index('ix_entity_history_entity', ['customer_id', 'kind', 'entity_id'], unique=False)
        batch_op.create_index('ix_entity_history_interaction', ['kind', 'interaction_id'], unique=False)
        batch_op.create_index('ix_entity_history_other', ['kind', 'other_interaction_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('entity_history', schema=None) as batch_op:
        batch_op.drop_index('ix_entity_history_other')
        batch_op.drop_index('ix_entity_history_interaction')
        batch_op.drop_index('ix_entity_history_entity')
    op.drop_table('entity_history')
    with op.batch_alter_table('match_decisions', schema=None) as batch_op:
        batch_op.drop_index('ix_match_decisions_other')
        batch_op.drop_index('ix_match_decisions_interaction')
        batch_op.drop_index('ix_match_decisions_customer')
    op.drop_table('match_decisions')
