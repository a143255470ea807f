"""zones: states up/down/maintenance ('active' became 'up'), failover to an existing zone,
the default zone; a campaign's zone, a job's zone and the zone it is placed in

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE zones SET state = 'up' WHERE state = 'active'")
    op.alter_column('zones', 'state', server_default='up')
    op.alter_column('zones', 'failover_zone', type_=sa.String(length=100))
    op.add_column('zones', sa.Column('reason', sa.String(), server_default='', nullable=False))
    op.add_column('zones', sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                                     nullable=False))
    op.create_check_constraint('ck_zones_state', 'zones', "state IN ('up', 'down', 'maintenance')")
    op.execute("INSERT INTO zones (name) VALUES ('default') ON CONFLICT (name) DO NOTHING")
    # a failover to a zone that was never created: to none
    op.execute("UPDATE zones SET failover_zone = NULL WHERE failover_zone NOT IN (SELECT name FROM zones)")
    op.create_foreign_key('zones_failover_zone_fkey', 'zones', 'zones', ['failover_zone'], ['name'],
                          onupdate='CASCADE')
    op.add_column('campaigns', sa.Column('zone', sa.String(length=100), nullable=True))
    op.create_foreign_key('campaigns_zone_fkey', 'campaigns', 'zones', ['zone'], ['name'], onupdate='CASCADE')
    op.add_column('jobs', sa.Column('zone', sa.String(length=100), server_default='default', nullable=False))
    op.add_column('jobs', sa.Column('placed_zone', sa.String(length=100), nullable=True))


def downgrade() -> None:
    op.drop_column('jobs', 'placed_zone')
    op.drop_column('jobs', 'zone')
    op.drop_constraint('campaigns_zone_fkey', 'campaigns', type_='foreignkey')
    op.drop_column('campaigns', 'zone')
    op.drop_constraint('zones_failover_zone_fkey', 'zones', type_='foreignkey')
    op.drop_constraint('ck_zones_state', 'zones', type_='check')
    op.drop_column('zones', 'updated_at')
    op.drop_column('zones', 'reason')
    op.alter_column('zones', 'failover_zone', type_=sa.String())
    op.execute("UPDATE zones SET state = 'active' WHERE state = 'up'")
    op.alter_column('zones', 'state', server_default='active')
