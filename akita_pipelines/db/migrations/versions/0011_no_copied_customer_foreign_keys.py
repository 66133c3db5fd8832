"""interactions, account_links, contact_links: no foreign key on their copied customer_id

Each of these rows carries its customer for the look-ups by customer, and each already
references a row that belongs to that customer through a foreign key of its own (an
interaction its integration, a link its account or contact). The second check proved
nothing the first did not, and PostgreSQL runs every referential check as a query per row:
the three were about a tenth of a 10k-contact sync's server time (pg_stat_statements:
1,063 → 873 ms and 905 → 843 ms of statement time in two paired runs). As 0002 did for
match_keys.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 17:20:00
"""
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

TABLES = ('interactions', 'account_links', 'contact_links')


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(op.f(f'fk_{table}_customer_id_customers'),
                                     type_='foreignkey')


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_foreign_key(op.f(f'fk_{table}_customer_id_customers'), 'customers',
                                        ['customer_id'], ['id'])
