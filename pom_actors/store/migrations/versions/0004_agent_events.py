"""agent events: every agent transition, appended; the latest per agent rebuilds the Agent Manager

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('agent_events',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('from_state', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('to_state', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('event', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('job_id', sa.Integer(), nullable=True),
    sa.Column('call_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('pending', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('pending_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('wrap_until', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_agent_events_agent', 'agent_events', ['agent_id', 'id'], unique=False)
    op.create_index('ix_agent_events_at', 'agent_events', ['at'], unique=False, postgresql_using='brin')


def downgrade() -> None:
    op.drop_index('ix_agent_events_at', table_name='agent_events', postgresql_using='brin')
    op.drop_index('ix_agent_events_agent', table_name='agent_events')
    op.drop_table('agent_events')
