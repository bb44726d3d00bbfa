"""daemon leases and inbox drain index

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 17:45:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('daemon_lease',
    sa.Column('name', sa.String(length=160), nullable=False),
    sa.Column('holder', sa.String(length=128), nullable=True),
    sa.Column('acquired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_done_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('name')
    )
    with op.batch_alter_table('webhook_inbox', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_inbox_drain', ['status', 'received_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('webhook_inbox', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_inbox_drain')
    op.drop_table('daemon_lease')
