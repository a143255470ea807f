"""agent_dispositions: agents' dispositions acknowledged, not yet in the ledger

An agent's disposition (its code, call-back time) is written by the Agent Manager with the
`dispose` transition, in the same flush, before the desktop is answered; the transaction that
sets the attempt's code (a Campaign Manager's, or the Agent Manager's for a job no longer
running) deletes it. A restarted Agent Manager reads the rows back, so a disposition made just
before it died is still handed to the job's manager, and written once.

Revision ID: 0022
Revises: 0021
"""
import sqlalchemy as sa
from alembic import op

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'agent_dispositions',
        sa.Column('call_id', sa.String(length=40), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=False),
        sa.Column('agent_id', sa.Integer(), nullable=False),
        sa.Column('code', sa.Text(), nullable=False),
        sa.Column('callback_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('talk_s', sa.Float(), nullable=True),
        sa.Column('wrap_s', sa.Float(), nullable=True),
        sa.Column('written_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.PrimaryKeyConstraint('call_id'))


def downgrade() -> None:
    op.drop_table('agent_dispositions')
