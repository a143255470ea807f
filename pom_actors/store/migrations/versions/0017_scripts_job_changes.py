"""agent_scripts; a job's run-time priority and pacing

Agent scripts (core/scripts.py) become rows a strategy's handler names (`script: {name: ...}`),
managed through the API, instead of text only inline in a strategy. A job keeps the
run-time changes made to it through the API: its own priority (NULL: its campaign's) and each
handler's pacing as changed (`{handler: pacing}`; empty: the strategy's).

Revision ID: 0017
Revises: 0018
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0017'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'agent_scripts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('description', sa.String(), server_default='', nullable=False),
        sa.Column('enabled', sa.Boolean(), server_default='true', nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.CheckConstraint("kind IN ('text', 'url')", name='ck_agent_scripts_kind'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name'))
    op.add_column('jobs', sa.Column('priority', sa.Integer(), nullable=True))
    op.add_column('jobs', sa.Column('pacing', postgresql.JSONB(astext_type=sa.Text()),
                                    server_default=sa.text("'{}'::jsonb"), nullable=False))


def downgrade() -> None:
    op.drop_column('jobs', 'pacing')
    op.drop_column('jobs', 'priority')
    op.drop_table('agent_scripts')
