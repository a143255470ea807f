"""filter templates: named filter expressions, a campaign's template, a job's filter in force

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('filter_templates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('expression', sa.Text(), nullable=False),
    sa.Column('description', sa.String(), server_default='', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.add_column('campaigns', sa.Column('filter_id', sa.Integer(), nullable=True))
    op.create_foreign_key('campaigns_filter_id_fkey', 'campaigns', 'filter_templates', ['filter_id'], ['id'])
    op.add_column('jobs', sa.Column('filter', sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column('jobs', 'filter')
    op.drop_constraint('campaigns_filter_id_fkey', 'campaigns', type_='foreignkey')
    op.drop_column('campaigns', 'filter_id')
    op.drop_table('filter_templates')
