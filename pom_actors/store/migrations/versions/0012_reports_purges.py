"""reports and purges: the ledger indexed by job and time, purge runs, the retention config

`ix_attempts_job (job_id)` becomes `ix_attempts_job_at (job_id, created_at)`: the same one
index write per ledger row, and a job's rows in a time range (the reports, the purge's
batches) are one index range instead of every row of the job.

Revision ID: 0012
Revises: 0011
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
import sqlmodel

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_attempts_job_at', 'attempts', ['job_id', 'created_at'], unique=False)
    op.drop_index('ix_attempts_job', table_name='attempts')
    op.create_table('purge_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('trigger', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(), server_default='queued', nullable=False),
    sa.Column('requested_by', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('cutoffs', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"),
              nullable=False),
    sa.Column('counts', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"),
              nullable=False),
    sa.Column('batches', sa.Integer(), server_default='0', nullable=False),
    sa.Column('message', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_purge_runs_pending', 'purge_runs', ['id'], unique=False,
                    postgresql_where=sa.text("state IN ('queued', 'deferred', 'running')"))
    op.create_table('retention_config',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('config', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"),
              nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('retention_config')
    op.drop_index('ix_purge_runs_pending', table_name='purge_runs',
                  postgresql_where=sa.text("state IN ('queued', 'deferred', 'running')"))
    op.drop_table('purge_runs')
    op.create_index('ix_attempts_job', 'attempts', ['job_id'], unique=False)
    op.drop_index('ix_attempts_job_at', table_name='attempts')
