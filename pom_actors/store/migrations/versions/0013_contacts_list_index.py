"""contacts: drop ix_contacts_list_id, redundant with the unique (list_id, external_id) index

Every statement that picks a list's contacts by list_id alone (a job's work items, filter
previews and selections, the merge's existence checks) uses the unique index's leading column
as well, and so does the foreign key's check when a list goes; the second index only cost
each imported row one more index insertion and its WAL.

Revision ID: 0013
Revises: 0012
"""
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_contacts_list_id', table_name='contacts')


def downgrade() -> None:
    op.create_index('ix_contacts_list_id', 'contacts', ['list_id'], unique=False)
