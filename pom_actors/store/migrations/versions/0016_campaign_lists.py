"""campaign_lists, list priorities and sort orders; a job's dialling order; ranked work items

A campaign dials several contact lists, each with a priority and a sort order
(core/dialling.py); every existing campaign keeps its one list, at the default priority.
A job keeps a copy of its lists and its dialling order (changed while it runs). A work item
carries its `rank` (list priority, then place in the list's sort order) and whether it is a
priority contact; the due index splits in two so a claim reads each kind in its own order —
items never attempted by rank, items attempted before by due time — with no more index
writes per item than before (an item is in one of them at most).

Revision ID: 0016
Revises: 0015
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

DEFAULT_ORDER = '\'["priority", "retries", "regular"]\'::jsonb'


def upgrade() -> None:
    op.create_table(
        'campaign_lists',
        sa.Column('campaign_id', sa.Integer(), nullable=False),
        sa.Column('list_id', sa.Integer(), nullable=False),
        sa.Column('priority', sa.Integer(), server_default='5', nullable=False),
        sa.Column('sort', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"),
                  nullable=False),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['list_id'], ['contact_lists.id']),
        sa.PrimaryKeyConstraint('campaign_id', 'list_id'))
    op.create_index('ix_campaign_lists_list_id', 'campaign_lists', ['list_id'], unique=False)
    op.execute("INSERT INTO campaign_lists (campaign_id, list_id) SELECT id, list_id FROM campaigns")
    op.add_column('jobs', sa.Column('dialling_order', postgresql.JSONB(astext_type=sa.Text()),
                                    server_default=sa.text(DEFAULT_ORDER), nullable=False))
    op.add_column('jobs', sa.Column('lists', postgresql.JSONB(astext_type=sa.Text()),
                                    server_default=sa.text("'[]'::jsonb"), nullable=False))
    op.execute("UPDATE jobs j SET lists = jsonb_build_array(jsonb_build_object("
               "'list_id', c.list_id, 'priority', 5, 'sort', '[]'::jsonb)) FROM campaigns c WHERE c.id = j.campaign_id")
    op.add_column('work_items', sa.Column('priority', sa.Boolean(), server_default='false', nullable=False))
    op.add_column('work_items', sa.Column('rank', sa.BigInteger(), server_default='0', nullable=False))
    op.drop_index('ix_work_items_due', table_name='work_items')
    op.create_index('ix_work_items_ready', 'work_items', ['job_id', 'priority', 'rank'], unique=False,
                    postgresql_where=sa.text("state = 'ready'"))
    op.create_index('ix_work_items_scheduled', 'work_items', ['job_id', 'next_at'], unique=False,
                    postgresql_where=sa.text("state = 'scheduled'"))


def downgrade() -> None:
    op.drop_index('ix_work_items_scheduled', table_name='work_items', postgresql_where=sa.text("state = 'scheduled'"))
    op.drop_index('ix_work_items_ready', table_name='work_items', postgresql_where=sa.text("state = 'ready'"))
    op.create_index('ix_work_items_due', 'work_items', ['job_id', 'shard', 'next_at'], unique=False,
                    postgresql_where=sa.text("state IN ('ready', 'scheduled')"))
    op.drop_column('work_items', 'rank')
    op.drop_column('work_items', 'priority')
    op.drop_column('jobs', 'lists')
    op.drop_column('jobs', 'dialling_order')
    op.drop_index('ix_campaign_lists_list_id', table_name='campaign_lists')
    op.drop_table('campaign_lists')
