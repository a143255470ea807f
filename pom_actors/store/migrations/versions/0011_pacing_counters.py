"""pacing counters: per-campaign buckets of call outcomes, the persisted window of the nuisance
rule and the recent statistics a new job's pacer starts from (core/pacing/window.py)

Revision ID: 0011
Revises: 0010
"""
from alembic import op
import sqlalchemy as sa

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pacing_counters',
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('bucket', sa.DateTime(timezone=True), nullable=False),
    sa.Column('dials', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('live', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('abandoned', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('machine', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('answer_s', sa.Float(), server_default='0', nullable=False),
    sa.Column('talk_s', sa.Float(), server_default='0', nullable=False),
    sa.Column('talked', sa.BigInteger(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', 'bucket')
    )


def downgrade() -> None:
    op.drop_table('pacing_counters')
