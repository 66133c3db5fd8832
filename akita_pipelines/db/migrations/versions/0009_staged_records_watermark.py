"""staged_records: a staging sequence and a processed watermark instead of a pending flag

The processor used to mark every staged row processed (``pending = false``) after storing
it: an UPDATE of each row, which PostgreSQL writes as a new row version with new entries in
every index, costing about as much as staging the row did. Now each Integration Object draws
a sequence number for every row it stages with new content (``staged_seq``), the processor
reads rows above its watermark in sequence order and moves the watermark once per batch
(``processed_seq``). A row re-staged with unchanged content keeps its number and costs no
processing.

Existing rows keep their order (their ids become their numbers). The watermark of an object
with pending rows sits just below its first pending row, so nothing pending is skipped (a
processed row above it is processed again, which stores the same result).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 13:40:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('integration_objects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('staged_seq', sa.BigInteger(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('processed_seq', sa.BigInteger(), nullable=False,
                                      server_default='0'))
    op.add_column('staged_records', sa.Column('seq', sa.BigInteger(), nullable=True))
    op.execute('UPDATE staged_records SET seq = id')
    op.execute(
        'UPDATE integration_objects SET '
        'staged_seq = COALESCE((SELECT MAX(s.id) FROM staged_records s '
        '                       WHERE s.integration_object_id = integration_objects.id), 0), '
        'processed_seq = COALESCE((SELECT MIN(s.id) - 1 FROM staged_records s '
        '                          WHERE s.integration_object_id = integration_objects.id '
        '                          AND s.pending), '
        '                         (SELECT MAX(s.id) FROM staged_records s '
        '                          WHERE s.integration_object_id = integration_objects.id), 0)')
    op.drop_index('ix_staged_records_pending', table_name='staged_records')
    with op.batch_alter_table('staged_records', schema=None) as batch_op:
        batch_op.alter_column('seq', existing_type=sa.BigInteger(), nullable=False)
        batch_op.drop_column('pending')
        batch_op.create_index('ix_staged_records_seq', ['integration_object_id', 'seq'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('staged_records', schema=None) as batch_op:
        batch_op.drop_index('ix_staged_records_seq')
        batch_op.add_column(sa.Column('pending', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    op.execute('UPDATE staged_records SET pending = true WHERE seq > '
               '(SELECT o.processed_seq FROM integration_objects o '
               ' WHERE o.id = staged_records.integration_object_id)')
    with op.batch_alter_table('staged_records', schema=None) as batch_op:
        batch_op.drop_column('seq')
    op.create_index('ix_staged_records_pending', 'staged_records', ['integration_object_id', 'id'],
                    unique=False, postgresql_where=sa.text('pending'),
                    sqlite_where=sa.text('pending = 1'))
    with op.batch_alter_table('integration_objects', schema=None) as batch_op:
        batch_op.drop_column('processed_seq')
        batch_op.drop_column('staged_seq')
