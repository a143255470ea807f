"""file imports: import options and counts, chunk progress, rejected rows; contacts keep line
types and a DNC flag

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
import sqlmodel

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

COUNTS = ("rows_read", "rows_loaded", "rows_rejected", "duplicates", "dnc_flagged")


def upgrade() -> None:
    op.add_column('contacts', sa.Column('phone1_type', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.add_column('contacts', sa.Column('phone2_type', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.add_column('contacts', sa.Column('dnc', sa.Boolean(), server_default='false', nullable=False))
    op.add_column('import_jobs', sa.Column('options', postgresql.JSONB(astext_type=sa.Text()),
                                           server_default=sa.text("'{}'::jsonb"), nullable=False))
    op.add_column('import_jobs', sa.Column('path', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.add_column('import_jobs', sa.Column('message', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    for name in COUNTS:
        op.add_column('import_jobs', sa.Column(name, sa.BigInteger(), server_default='0', nullable=False))
    op.add_column('import_jobs', sa.Column('chunks', sa.Integer(), server_default='0', nullable=False))
    op.add_column('import_jobs', sa.Column('updated_at', sa.DateTime(timezone=True),
                                           server_default=sa.text('now()'), nullable=False))
    op.create_table('import_chunks',
    sa.Column('import_id', sa.Integer(), nullable=False),
    sa.Column('chunk', sa.Integer(), nullable=False),
    *[sa.Column(name, sa.Integer(), server_default='0', nullable=False) for name in COUNTS],
    sa.ForeignKeyConstraint(['import_id'], ['import_jobs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('import_id', 'chunk')
    )
    op.create_table('import_rejects',
    sa.Column('import_id', sa.Integer(), nullable=False),
    sa.Column('line', sa.BigInteger(), nullable=False),
    sa.Column('field', sqlmodel.sql.sqltypes.AutoString(), server_default='', nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('raw', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.ForeignKeyConstraint(['import_id'], ['import_jobs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('import_id', 'line')
    )


def downgrade() -> None:
    op.drop_table('import_rejects')
    op.drop_table('import_chunks')
    for name in ("updated_at", "chunks", *COUNTS, "message", "path", "options"):
        op.drop_column('import_jobs', name)
    for name in ("dnc", "phone2_type", "phone1_type"):
        op.drop_column('contacts', name)
