"""hot-path indexes: fewer index writes per work item update; HOT updates of ledger rows

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint('work_items_job_id_contact_id_key', 'work_items', type_='unique')
    op.drop_index('ix_work_items_state', table_name='work_items')
    op.create_index('ix_work_items_in_flight', 'work_items', ['job_id', 'shard'], unique=False,
                    postgresql_where=sa.text("state = 'in_flight'"))
    op.execute("ALTER TABLE attempts SET (fillfactor = 50)")


def downgrade() -> None:
    op.execute("ALTER TABLE attempts RESET (fillfactor)")
    op.drop_index('ix_work_items_in_flight', table_name='work_items',
                  postgresql_where=sa.text("state = 'in_flight'"))
    op.create_index('ix_work_items_state', 'work_items', ['job_id', 'state'], unique=False)
    op.create_unique_constraint('work_items_job_id_contact_id_key', 'work_items', ['job_id', 'contact_id'])
