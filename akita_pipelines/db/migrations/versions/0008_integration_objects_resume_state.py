"""integration_objects.resume_state: how to continue an interrupted read that has no cursor order

A Salesforce history read through a Bulk API 2.0 query job returns rows in no modstamp order,
so a staged page's modstamps are no resume point; the job id and the next result-set locator
are. The connector hands them over with each page and the retriever stores them in the page's
transaction; a killed read continues from the next locator of the same job. Null when there is
nothing to continue (the read ended, or its checkpoint is the resume point).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 14:30:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('integration_objects', sa.Column('resume_state', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('integration_objects', schema=None) as batch_op:
        batch_op.drop_column('resume_state')
