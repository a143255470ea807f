"""import_chunks.targets: a split import's counts per target list, per chunk

An import with a splitter (core/imports/splitter.py) merges each chunk into several lists; the
chunk's row records, beside its totals, `{"<list_id>": {"rows_loaded", "duplicates",
"dnc_flagged"}}` in the chunk's one transaction, so the sums stay exact across a resume.

Revision ID: 0015
Revises: 0014
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('import_chunks', sa.Column('targets', postgresql.JSONB(astext_type=sa.Text()), nullable=True))


def downgrade() -> None:
    op.drop_column('import_chunks', 'targets')
