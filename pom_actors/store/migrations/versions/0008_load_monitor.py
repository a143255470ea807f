"""load monitor: alarm details and one active alarm per source, the latest readings per
server, the load configuration

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
import sqlmodel

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('alarms', sa.Column('details', postgresql.JSONB(astext_type=sa.Text()),
                                      server_default=sa.text("'{}'::jsonb"), nullable=False))
    op.create_index('ux_alarms_active', 'alarms', ['source'], unique=True,
                    postgresql_where=sa.text('cleared_at IS NULL'))
    op.create_index('ix_alarms_created_at', 'alarms', ['created_at'], unique=False)
    op.create_table('load_readings',
    sa.Column('server', sa.String(length=64), nullable=False),
    sa.Column('node_id', sqlmodel.sql.sqltypes.AutoString(), server_default='', nullable=False),
    sa.Column('leader', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('readings', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"),
              nullable=False),
    sa.Column('sampled_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('server')
    )
    op.create_table('load_config',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('config', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"),
              nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('load_config')
    op.drop_table('load_readings')
    op.drop_index('ix_alarms_created_at', table_name='alarms')
    op.drop_index('ux_alarms_active', table_name='alarms', postgresql_where=sa.text('cleared_at IS NULL'))
    op.drop_column('alarms', 'details')
