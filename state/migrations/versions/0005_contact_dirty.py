"""contacts say whether a provider may be behind them, so a push asks only those

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 22:10:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every contact starts dirty: the first cycle after the upgrade asks each of them once (as every cycle
    # did before), and settles the ones no provider is behind on.
    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dirty', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column('touched', sa.Integer(), nullable=False, server_default='0'))
        batch_op.create_index('ix_contact_dirty', ['dirty', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.drop_index('ix_contact_dirty')
        batch_op.drop_column('touched')
        batch_op.drop_column('dirty')
