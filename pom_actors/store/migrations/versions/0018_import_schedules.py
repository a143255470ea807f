"""imports from a SQL query and import schedules

`import_jobs.query`: the source of an import whose rows come from a SELECT on another
PostgreSQL database (core/imports/query.py; a password only by reference, never stored);
`import_jobs.schedule_id`: the schedule that made it. `import_schedules`: such imports run
by the director at the due times of a cron schedule, `last_run_at` the due time last served
(set in the transaction that creates the import, so a due time runs once).

Revision ID: 0018
Revises: 0016
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0018'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('import_schedules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('list_id', sa.Integer(), nullable=False),
    sa.Column('schedule', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"),
              nullable=False),
    sa.Column('source', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"),
              nullable=False),
    sa.Column('options', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"),
              nullable=False),
    sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_import_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['list_id'], ['contact_lists.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.add_column('import_jobs', sa.Column('query', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column('import_jobs', sa.Column('schedule_id', sa.Integer(), nullable=True))
    op.create_foreign_key('import_jobs_schedule_id_fkey', 'import_jobs', 'import_schedules', ['schedule_id'],
                          ['id'], ondelete='SET NULL')


def downgrade() -> None:
    op.drop_constraint('import_jobs_schedule_id_fkey', 'import_jobs', type_='foreignkey')
    op.drop_column('import_jobs', 'schedule_id')
    op.drop_column('import_jobs', 'query')
    op.drop_table('import_schedules')
