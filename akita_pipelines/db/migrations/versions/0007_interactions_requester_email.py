"""interactions.requester_email: who a linked record comes from, by email, as a typed column

A ticket, deal or task links to the Contact whose email names its requester. The processor
used to look for that email in the record's raw ``fields`` under five names; the streams now
fill ``requester_email`` on the typed record, and the processor reads only that. Stored rows
keep their ``fields`` as they came, so this backfills the column from them by the same five
names in the same order (the first string holding an ``@``) for every record that is not an
account or contact: ``akita rematch`` then links them exactly as before. Payloads without an
``@`` are passed over in SQL; the rest are decided in Python, the same way on both databases.
PostgreSQL keeps no planner statistics for the column (no query filters on it; see 0004).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 14:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

REQUESTER_FIELDS = ('requester_email', 'RequesterEmail', 'SuppliedEmail', 'from_email', 'email')
MATCHED_TYPES = ('accounts', 'contacts')
BATCH = 5000

interactions = sa.table(
    'interactions',
    sa.column('id', sa.BigInteger()),
    sa.column('interaction_type', sa.String()),
    sa.column('fields', sa.JSON()),
    sa.column('requester_email', sa.String()),
)


def _requester(fields: dict) -> str | None:
    for key in REQUESTER_FIELDS:
        value = fields.get(key)
        if isinstance(value, str) and '@' in value:
            return value
    return None


def _backfill(bind: sa.Connection) -> None:
    t = interactions.c
    candidates = (sa.select(t.id, t.fields)
                  .where(t.interaction_type.not_in(MATCHED_TYPES),
                         sa.cast(t.fields, sa.Text()).like('%@%'))
                  .order_by(t.id).limit(BATCH))
    fill = (sa.update(interactions).where(t.id == sa.bindparam('row_id'))
            .values(requester_email=sa.bindparam('found')))
    after = 0
    while True:
        rows = bind.execute(candidates.where(t.id > after)).all()
        if not rows:
            return
        after = rows[-1].id
        found = [{'row_id': row.id, 'found': email} for row in rows
                 if isinstance(row.fields, dict) and (email := _requester(row.fields))]
        if found:
            bind.execute(fill, found)


def upgrade() -> None:
    op.add_column('interactions', sa.Column('requester_email', sa.String(length=320),
                                            nullable=True))
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        op.execute('ALTER TABLE "interactions" ALTER COLUMN "requester_email" SET STATISTICS 0')
    _backfill(bind)


def downgrade() -> None:
    with op.batch_alter_table('interactions', schema=None) as batch_op:
        batch_op.drop_column('requester_email')
