"""staged_records: the pending index holds only pending rows, in id order

The processor reads pending rows of one object in id order, a batch at a time. The old index
on (integration_object_id, pending) returned every pending row of the object for each batch,
to be sorted by id (quadratic in the backlog); it also indexed the processed rows, so marking a
batch processed wrote a third index entry per row. The partial index on
(integration_object_id, id) WHERE pending serves the batch read in order and drops out of the
processed rows.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 01:45:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_staged_records_pending', table_name='staged_records')
    # SQLAlchemy writes the boolean test as "pending" on PostgreSQL and "pending = 1" on
    # SQLite; each database uses a partial index only for a query that states its predicate.
    op.create_index('ix_staged_records_pending', 'staged_records', ['integration_object_id', 'id'],
                    unique=False, postgresql_where=sa.text('pending'),
                    sqlite_where=sa.text('pending = 1'))


def downgrade() -> None:
    op.drop_index('ix_staged_records_pending', table_name='staged_records')
    op.create_index('ix_staged_records_pending', 'staged_records',
                    ['integration_object_id', 'pending'], unique=False)
