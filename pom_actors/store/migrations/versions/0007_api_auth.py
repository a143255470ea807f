"""auth: API tokens get a prefix (to tell them apart) and an agent (an agent token's agent);
the audit log of every change made through the API

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
import sqlmodel

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('api_tokens', sa.Column('prefix', sa.String(length=16), server_default='', nullable=False))
    op.add_column('api_tokens', sa.Column('agent_id', sa.Integer(), nullable=True))
    op.create_foreign_key('api_tokens_agent_id_fkey', 'api_tokens', 'agents', ['agent_id'], ['id'])
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('token_id', sa.Integer(), nullable=True),
    sa.Column('token_name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('method', sa.String(length=10), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('route', sa.Text(), nullable=False),
    sa.Column('resource', sqlmodel.sql.sqltypes.AutoString(), server_default='', nullable=False),
    sa.Column('resource_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('summary', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"),
              nullable=False),
    sa.ForeignKeyConstraint(['token_id'], ['api_tokens.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_audit_log_at', 'audit_log', ['at'], unique=False)
    op.create_index('ix_audit_log_token', 'audit_log', ['token_id', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_audit_log_token', table_name='audit_log')
    op.drop_index('ix_audit_log_at', table_name='audit_log')
    op.drop_table('audit_log')
    op.drop_constraint('api_tokens_agent_id_fkey', 'api_tokens', type_='foreignkey')
    op.drop_column('api_tokens', 'agent_id')
    op.drop_column('api_tokens', 'prefix')
