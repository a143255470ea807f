"""DNC lists: named lists of entries (list 1, 'system', applies to every campaign and takes
the entries that were there before), attached to campaigns; DNC import jobs

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dnc_lists',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(), server_default='', nullable=False),
    sa.Column('all_campaigns', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.execute("INSERT INTO dnc_lists (id, name, description, all_campaigns) VALUES "
               "(1, 'system', 'applies to every campaign', true)")
    op.execute("SELECT setval(pg_get_serial_sequence('dnc_lists', 'id'), 1)")
    op.add_column('dnc_entries', sa.Column('list_id', sa.Integer(), server_default='1', nullable=False))
    op.create_foreign_key('dnc_entries_list_id_fkey', 'dnc_entries', 'dnc_lists', ['list_id'], ['id'],
                          ondelete='CASCADE')
    # entries were a bag: keep one of each address and of each contact before they become unique
    op.execute("DELETE FROM dnc_entries d USING dnc_entries o WHERE o.id < d.id AND o.list_id = d.list_id "
               "AND (o.address = d.address OR o.contact_id = d.contact_id)")
    op.create_unique_constraint('dnc_entries_list_id_address_key', 'dnc_entries', ['list_id', 'address'])
    op.create_unique_constraint('dnc_entries_list_id_contact_id_key', 'dnc_entries', ['list_id', 'contact_id'])
    op.create_table('campaign_dnc_lists',
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('dnc_list_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['dnc_list_id'], ['dnc_lists.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', 'dnc_list_id')
    )
    op.alter_column('import_jobs', 'list_id', existing_type=sa.Integer(), nullable=True)
    op.add_column('import_jobs', sa.Column('dnc_list_id', sa.Integer(), nullable=True))
    op.create_foreign_key('import_jobs_dnc_list_id_fkey', 'import_jobs', 'dnc_lists', ['dnc_list_id'], ['id'],
                          ondelete='CASCADE')
    op.create_check_constraint('ck_import_jobs_target', 'import_jobs',
                               "(kind = 'dnc') = (dnc_list_id IS NOT NULL) AND (kind = 'dnc') = (list_id IS NULL)")


def downgrade() -> None:
    op.execute("DELETE FROM import_jobs WHERE kind = 'dnc'")
    op.drop_constraint('ck_import_jobs_target', 'import_jobs', type_='check')
    op.drop_constraint('import_jobs_dnc_list_id_fkey', 'import_jobs', type_='foreignkey')
    op.drop_column('import_jobs', 'dnc_list_id')
    op.alter_column('import_jobs', 'list_id', existing_type=sa.Integer(), nullable=False)
    op.drop_table('campaign_dnc_lists')
    op.drop_constraint('dnc_entries_list_id_contact_id_key', 'dnc_entries', type_='unique')
    op.drop_constraint('dnc_entries_list_id_address_key', 'dnc_entries', type_='unique')
    op.drop_constraint('dnc_entries_list_id_fkey', 'dnc_entries', type_='foreignkey')
    op.drop_column('dnc_entries', 'list_id')
    op.drop_table('dnc_lists')
