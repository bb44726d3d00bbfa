"""index of links with an observation waiting, by contact

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 08:40:00.000000
"""

from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every cycle asks which contacts have observations to reconcile; without this index that question
    # reads every link, so an idle cycle's cost grew with the size of the hub.
    with op.batch_alter_table('link', schema=None) as batch_op:
        batch_op.create_index('ix_link_waiting', ['has_observation', 'contact_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('link', schema=None) as batch_op:
        batch_op.drop_index('ix_link_waiting')
