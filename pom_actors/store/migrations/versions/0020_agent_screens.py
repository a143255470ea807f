"""agents.screen: the screen pop of the call an agent holds

Written with the agent's row at each flush, so that a restarted Agent Manager pops it again on
the agent's desktop (a pop pushed just before a crash could be lost with it) and checks the
disposition's code against the call's codes.

Revision ID: 0020
Revises: 0017
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0020'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('agents', sa.Column('screen', postgresql.JSONB(astext_type=sa.Text()), nullable=True))


def downgrade() -> None:
    op.drop_column('agents', 'screen')
