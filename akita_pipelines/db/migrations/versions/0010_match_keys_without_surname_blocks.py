"""match_keys: no surname-and-initial block keys (``b:l:``), each rewritten as a letters key

A contact was indexed under two name blocks: its surname with its first initial (``b:l:``)
and its surname's letters in any order with the same initial (``b:lai:``). The second holds
everyone the first does, so the first found no pair the second did not, and cost an index
entry a contact on every batch (a sixth of the match keys, written to random index pages).
The processor no longer writes or looks up ``b:l:`` keys.

Contacts indexed before 2 December 2026 (2739c09) have a ``b:l:`` key and no ``b:lai:`` one,
and an entity that later records join by email never gets new block keys: deleting their
``b:l:`` rows would leave them in no surname block at all. So each ``b:l:<surname>|<initial>``
row is rewritten as ``b:lai:<the surname's letters, sorted>|<initial>`` (inserted where the
entity lacks it), a batch at a time, then the ``b:l:`` rows go. Downgrade does not bring them
back: ``akita rematch`` rebuilds the keys of the code that runs.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 17:10:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

BATCH = 5000

match_keys = sa.table(
    'match_keys',
    sa.column('customer_id', sa.String()),
    sa.column('kind', sa.String()),
    sa.column('key', sa.String()),
    sa.column('entity_id', sa.BigInteger()),
)


def letters_key(key: str) -> str:
    """``b:l:<surname>|<initial>`` → ``b:lai:<the surname's letters, sorted>|<initial>``."""
    surname, _, initial = key[len('b:l:'):].rpartition('|')
    return 'b:lai:' + ''.join(sorted(surname)) + '|' + initial


def upgrade() -> None:
    bind = op.get_bind()
    m = match_keys.c
    dialect = postgresql if bind.dialect.name == 'postgresql' else sqlite
    # 'b:l:' keys sort from 'b:l:' up to 'b:l;' (';' follows ':'): a range of the primary key
    # (customer, kind, key, entity) for each customer, read a batch at a time in key order.
    customers = bind.execute(sa.select(m.customer_id).distinct()).scalars().all()
    for customer in customers:
        old = sa.and_(m.customer_id == customer, m.kind == 'contacts',
                      m.key >= 'b:l:', m.key < 'b:l;')
        after: tuple[str, int] = ('', -1)
        while True:
            rows = bind.execute(
                sa.select(m.key, m.entity_id)
                .where(old, sa.tuple_(m.key, m.entity_id) > sa.tuple_(*after))
                .order_by(m.key, m.entity_id).limit(BATCH)).all()
            if not rows:
                break
            after = (rows[-1][0], rows[-1][1])
            new = {(letters_key(key), entity_id) for key, entity_id in rows}
            bind.execute(dialect.insert(match_keys).on_conflict_do_nothing(), [
                {'customer_id': customer, 'kind': 'contacts', 'key': key, 'entity_id': entity}
                for key, entity in sorted(new) if len(key) <= 400])
        bind.execute(sa.delete(match_keys).where(old))


def downgrade() -> None:
    pass
