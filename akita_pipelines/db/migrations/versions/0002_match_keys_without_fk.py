"""match_keys without a foreign key to customers

A derived index written about six rows per entity; PostgreSQL's per-row referential check cost
a quarter of its upsert.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 00:40:00
"""
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('match_keys', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('fk_match_keys_customer_id_customers'), type_='foreignkey')


def downgrade() -> None:
    with op.batch_alter_table('match_keys', schema=None) as batch_op:
        batch_op.create_foreign_key(op.f('fk_match_keys_customer_id_customers'), 'customers',
                                    ['customer_id'], ['id'])
