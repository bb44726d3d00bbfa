"""runs record who owns them and when their owner was last seen alive

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 13:40:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A daemon replica that takes the writer lease closed every "running" run, a manual `crmsync sync`
    # beside it too. Now a run names its process (owner), the lease it ran under (daemon cycles), and a
    # heartbeat its process renews: takeover closes only the lost lease's runs, anyone closes a run whose
    # owner stopped beating. Runs from before have none of these: their heartbeat is unknown, so stale.
    with op.batch_alter_table('run', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('lease', sa.String(length=160), nullable=True))
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_run_status', ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('run', schema=None) as batch_op:
        batch_op.drop_index('ix_run_status')
        batch_op.drop_column('heartbeat_at')
        batch_op.drop_column('lease')
        batch_op.drop_column('owner')
