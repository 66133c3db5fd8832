"""match_keys: no surname-and-initial block keys (``b:l:``)

A contact was indexed under two name blocks: its surname with its first initial (``b:l:``)
and its surname's letters in any order with the same initial (``b:lai:``). The second holds
everyone the first does, so the first found no pair the second did not, and cost an index
entry a contact on every batch (a sixth of the match keys, written to random index pages).
The processor no longer writes or looks up ``b:l:`` keys; this removes the stored ones.
Contacts stored through the processor never had birth dates, so each of them has its
``b:lai:`` key already. Downgrade cannot bring the rows back: ``akita rematch`` rebuilds the
keys of the code that runs.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 17:10:00
"""
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ':' is no LIKE wildcard: 'b:la:' and 'b:lai:' keys do not match 'b:l:%'.
    op.execute("DELETE FROM match_keys WHERE kind = 'contacts' AND key LIKE 'b:l:%'")


def downgrade() -> None:
    pass
