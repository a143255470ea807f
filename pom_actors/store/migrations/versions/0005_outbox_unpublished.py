"""outbox: a partial index on the rows the relay has not published

The relay reads the oldest unpublished rows at every batch; without it that read walks every
row ever published first.

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_event_outbox_unpublished', 'event_outbox', ['id'], unique=False,
                    postgresql_where=sa.text('published_at IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_event_outbox_unpublished', table_name='event_outbox',
                  postgresql_where=sa.text('published_at IS NULL'))
