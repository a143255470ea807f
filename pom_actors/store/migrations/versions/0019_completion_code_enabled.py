"""completion_codes.enabled: a custom code can be disabled

A disabled code is kept (reports and past attempts name it, its strategy still routes on it)
but is no longer offered to agents nor accepted when an attempt's code is set.

Revision ID: 0019
Revises: 0020
"""
import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('completion_codes', sa.Column('enabled', sa.Boolean(), server_default='true', nullable=False))


def downgrade() -> None:
    op.drop_column('completion_codes', 'enabled')
