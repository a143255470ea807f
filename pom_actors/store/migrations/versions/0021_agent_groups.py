"""agents.groups: the agent groups an agent belongs to

A job's strategy may name agent groups (agents.groups); only their members are attached to it.

Revision ID: 0021
Revises: 0019
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = '0021'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('agents', sa.Column('groups', JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False))


def downgrade() -> None:
    op.drop_column('agents', 'groups')
