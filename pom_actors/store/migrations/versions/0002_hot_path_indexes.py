"""hot path: attempt intents on the work item, an append-only ledger, fewer index writes

The intent of an attempt in flight moves from an `attempts` row (updated at settlement) to
the work item the claim already writes; the ledger row is appended once, complete. Work item
updates no longer rewrite an index on state or the (job, contact) constraint (one item per
contact holds by construction), and the ledger's time index is BRIN.

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
    op.add_column('work_items', sa.Column('in_flight_gateway', sa.String(), nullable=True))
    op.add_column('work_items', sa.Column('in_flight_at', sa.DateTime(timezone=True), nullable=True))
    # Intents written before this revision: carry them over to their items, then drop them
    # (their outcomes are settled into a fresh, complete ledger row).
    op.execute("""
        UPDATE work_items w SET in_flight_gateway = a.gateway, in_flight_at = a.created_at
        FROM attempts a
        WHERE w.state = 'in_flight' AND a.work_item_id = w.id AND a.attempt_no = w.attempts""")
    op.execute("DELETE FROM attempts WHERE code IS NULL")
    op.drop_constraint('work_items_job_id_contact_id_key', 'work_items', type_='unique')
    op.drop_index('ix_work_items_state', table_name='work_items')
    op.create_index('ix_work_items_in_flight', 'work_items', ['job_id', 'shard'], unique=False,
                    postgresql_where=sa.text("state = 'in_flight'"))
    op.drop_index('ix_attempts_address_at', table_name='attempts')
    op.create_index('ix_attempts_created_at', 'attempts', ['created_at'], unique=False,
                    postgresql_using='brin')


def downgrade() -> None:
    op.drop_index('ix_attempts_created_at', table_name='attempts', postgresql_using='brin')
    op.create_index('ix_attempts_address_at', 'attempts', ['address', 'created_at'], unique=False)
    op.drop_index('ix_work_items_in_flight', table_name='work_items',
                  postgresql_where=sa.text("state = 'in_flight'"))
    op.create_index('ix_work_items_state', 'work_items', ['job_id', 'state'], unique=False)
    op.create_unique_constraint('work_items_job_id_contact_id_key', 'work_items', ['job_id', 'contact_id'])
    op.drop_column('work_items', 'in_flight_at')
    op.drop_column('work_items', 'in_flight_gateway')
