"""Warnings, their hazard areas, alerts per grid, the outbox; per-grid totals for targeting.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 19:25:31.251987

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = '0005'
down_revision: str | Sequence[str] | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Per-grid totals, kept by gridgis.layers.totals.refresh_totals() after bulk loads:
# targeting reads these instead of joining buildings and residents live.
GRID_TOTAL = """
CREATE MATERIALIZED VIEW grid_total AS
SELECT g.id AS grid_id,
       coalesce(b.buildings, 0) AS buildings,
       coalesce(b.risky, 0) AS risky_buildings,
       coalesce(r.residents, 0) AS residents,
       coalesce(r.vulnerable, 0) AS vulnerable
FROM grid g
LEFT JOIN (SELECT grid_id, count(*) AS buildings,
                  count(*) FILTER (WHERE risk_flags <> '{}') AS risky
           FROM building WHERE retired_at IS NULL GROUP BY grid_id) b ON b.grid_id = g.id
LEFT JOIN (SELECT bl.grid_id, count(*) AS residents,
                  count(*) FILTER (WHERE r.vulnerabilities <> '{}') AS vulnerable
           FROM resident r JOIN building bl ON bl.id = r.building_id
           WHERE r.moved_out_at IS NULL AND bl.retired_at IS NULL
           GROUP BY bl.grid_id) r ON r.grid_id = g.id
WITH DATA
"""


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('warning',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('identifier', sa.Text(), nullable=False),
    sa.Column('sender', sa.Text(), nullable=False),
    sa.Column('sent', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('msg_type', sa.Text(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('level', sa.Text(), nullable=False),
    sa.Column('level_rank', sa.Integer(), nullable=False),
    sa.Column('event', sa.Text(), nullable=False),
    sa.Column('headline', sa.Text(), nullable=True),
    sa.Column('references', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('follows_id', sa.Integer(), nullable=True),
    sa.Column('storm_id', sa.Text(), nullable=True),
    sa.Column('document', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('app_user_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("msg_type IN ('alert', 'update', 'cancel')", name=op.f('ck_warning_msg_type')),
    sa.CheckConstraint("source IN ('cap', 'advisory', 'drawn')", name=op.f('ck_warning_source')),
    sa.CheckConstraint("status IN ('actual', 'exercise', 'test')", name=op.f('ck_warning_status')),
    sa.CheckConstraint('level_rank BETWEEN 1 AND 4', name=op.f('ck_warning_level_rank')),
    sa.ForeignKeyConstraint(['app_user_id'], ['app_user.id'], name=op.f('fk_warning_app_user_id_app_user')),
    sa.ForeignKeyConstraint(['follows_id'], ['warning.id'], name=op.f('fk_warning_follows_id_warning')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_warning')),
    sa.UniqueConstraint('identifier', name=op.f('uq_warning_identifier'))
    )
    op.create_index(op.f('ix_warning_follows_id'), 'warning', ['follows_id'], unique=False)
    op.create_index(op.f('ix_warning_storm_id'), 'warning', ['storm_id'], unique=False)
    op.create_table('alert',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('warning_id', sa.Integer(), nullable=False),
    sa.Column('grid_id', sa.Integer(), nullable=False),
    sa.Column('tier', sa.Text(), nullable=False),
    sa.Column('state', sa.Text(), server_default='active', nullable=False),
    sa.Column('gale_eta', sa.DateTime(timezone=True), nullable=True),
    sa.Column('coverage', sa.Float(), nullable=False),
    sa.Column('buildings', sa.Integer(), server_default='0', nullable=False),
    sa.Column('risky_buildings', sa.Integer(), server_default='0', nullable=False),
    sa.Column('residents', sa.Integer(), server_default='0', nullable=False),
    sa.Column('vulnerable', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by', sa.Integer(), nullable=True),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.CheckConstraint("state IN ('active', 'stood_down')", name=op.f('ck_alert_state')),
    sa.CheckConstraint("tier IN ('area', 'gale', 'storm', 'hurricane')", name=op.f('ck_alert_tier')),
    sa.ForeignKeyConstraint(['acknowledged_by'], ['app_user.id'], name=op.f('fk_alert_acknowledged_by_app_user')),
    sa.ForeignKeyConstraint(['grid_id'], ['grid.id'], name=op.f('fk_alert_grid_id_grid')),
    sa.ForeignKeyConstraint(['warning_id'], ['warning.id'], name=op.f('fk_alert_warning_id_warning')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert')),
    sa.UniqueConstraint('warning_id', 'grid_id', name='uq_alert_warning_grid')
    )
    op.create_index(op.f('ix_alert_grid_id'), 'alert', ['grid_id'], unique=False)
    op.create_index(op.f('ix_alert_warning_id'), 'alert', ['warning_id'], unique=False)
    op.create_geospatial_table('warning_area',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('warning_id', sa.Integer(), nullable=False),
    sa.Column('tier', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('valid_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('area', Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.CheckConstraint("tier IN ('area', 'gale', 'storm', 'hurricane')", name=op.f('ck_warning_area_tier')),
    sa.CheckConstraint('ST_IsValid(area)', name=op.f('ck_warning_area_area_valid')),
    sa.ForeignKeyConstraint(['warning_id'], ['warning.id'], name=op.f('fk_warning_area_warning_id_warning'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_warning_area'))
    )
    op.create_geospatial_index('idx_warning_area_area', 'warning_area', ['area'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_warning_area_warning_id'), 'warning_area', ['warning_id'], unique=False)
    op.create_table('outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('alert_id', sa.Integer(), nullable=False),
    sa.Column('app_user_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.Text(), nullable=False),
    sa.Column('idempotency_key', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), server_default='alert', nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('state', sa.Text(), server_default='queued', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state IN ('queued', 'sending', 'sent', 'failed', 'dead')", name=op.f('ck_outbox_state')),
    sa.ForeignKeyConstraint(['alert_id'], ['alert.id'], name=op.f('fk_outbox_alert_id_alert')),
    sa.ForeignKeyConstraint(['app_user_id'], ['app_user.id'], name=op.f('fk_outbox_app_user_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_outbox_idempotency_key'))
    )
    op.create_index(op.f('ix_outbox_alert_id'), 'outbox', ['alert_id'], unique=False)
    op.create_index(op.f('ix_outbox_next_attempt_at'), 'outbox', ['next_attempt_at'], unique=False)
    op.execute(GRID_TOTAL)
    op.execute("CREATE UNIQUE INDEX ix_grid_total_grid_id ON grid_total (grid_id)")


def downgrade() -> None:
    """Downgrade schema."""
    op.execute("DROP MATERIALIZED VIEW IF EXISTS grid_total")
    op.drop_index(op.f('ix_outbox_next_attempt_at'), table_name='outbox')
    op.drop_index(op.f('ix_outbox_alert_id'), table_name='outbox')
    op.drop_table('outbox')
    op.drop_index(op.f('ix_warning_area_warning_id'), table_name='warning_area')
    op.drop_geospatial_index('idx_warning_area_area', table_name='warning_area', postgresql_using='gist', column_name='area')
    op.drop_geospatial_table('warning_area')
    op.drop_index(op.f('ix_alert_warning_id'), table_name='alert')
    op.drop_index(op.f('ix_alert_grid_id'), table_name='alert')
    op.drop_table('alert')
    op.drop_index(op.f('ix_warning_storm_id'), table_name='warning')
    op.drop_index(op.f('ix_warning_follows_id'), table_name='warning')
    op.drop_table('warning')
