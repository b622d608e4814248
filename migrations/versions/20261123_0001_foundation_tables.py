"""Foundation tables: admin units, grids, buildings, stations, shelters, residents, users, audit.

Also creates PostGIS, and the trigger that keeps ``building.grid_id`` the grid containing the
building's point (assigned when not given, refused when wrong).

Revision ID: 0001
Revises:
Create Date: 2026-11-23 18:10:22.521095

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = '0001'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BUILDING_KEEPS_GRID = """
CREATE FUNCTION building_keep_grid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.grid_id IS NULL THEN
    SELECT g.id INTO NEW.grid_id FROM grid g
     WHERE g.retired_at IS NULL AND ST_Covers(g.boundary, NEW.location)
     ORDER BY g.id LIMIT 1;
    IF NEW.grid_id IS NULL THEN
      RAISE EXCEPTION 'building % lies in no grid', NEW.code
        USING ERRCODE = 'check_violation';
    END IF;
  ELSIF NOT EXISTS (SELECT 1 FROM grid g
                     WHERE g.id = NEW.grid_id AND ST_Covers(g.boundary, NEW.location)) THEN
    RAISE EXCEPTION 'building % does not lie in grid %', NEW.code, NEW.grid_id
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER building_keep_grid BEFORE INSERT OR UPDATE OF grid_id, location ON building
  FOR EACH ROW EXECUTE FUNCTION building_keep_grid();
"""


def upgrade() -> None:
    """Upgrade schema."""
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_geospatial_table('admin_unit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('name_en', sa.Text(), nullable=True),
    sa.Column('level', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('boundary', Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("(level = 'district') = (parent_id IS NULL)", name=op.f('ck_admin_unit_parent_by_level')),
    sa.CheckConstraint("kind IN ('district', 'street', 'town', 'community', 'village')", name=op.f('ck_admin_unit_kind')),
    sa.CheckConstraint("level IN ('district', 'street', 'community')", name=op.f('ck_admin_unit_level')),
    sa.CheckConstraint('ST_IsValid(boundary) AND NOT ST_IsEmpty(boundary)', name=op.f('ck_admin_unit_boundary_valid')),
    sa.ForeignKeyConstraint(['parent_id'], ['admin_unit.id'], name=op.f('fk_admin_unit_parent_id_admin_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_admin_unit')),
    sa.UniqueConstraint('code', name=op.f('uq_admin_unit_code'))
    )
    op.create_geospatial_index('idx_admin_unit_boundary', 'admin_unit', ['boundary'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_admin_unit_parent_id'), 'admin_unit', ['parent_id'], unique=False)
    op.create_table('app_user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.Text(), nullable=False),
    sa.Column('display_name', sa.Text(), nullable=True),
    sa.Column('role', sa.Text(), nullable=False),
    sa.Column('password_hash', sa.Text(), nullable=False),
    sa.Column('phone', sa.Text(), nullable=True),
    sa.Column('email', sa.Text(), nullable=True),
    sa.Column('active', sa.Boolean(), server_default='true', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("role IN ('command', 'grid_head', 'grid_worker', 'planner', 'admin')", name=op.f('ck_app_user_role')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_app_user')),
    sa.UniqueConstraint('username', name=op.f('uq_app_user_username'))
    )
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('app_user_id', sa.Integer(), nullable=True),
    sa.Column('username', sa.Text(), nullable=True),
    sa.Column('action', sa.Text(), nullable=False),
    sa.Column('entity', sa.Text(), nullable=False),
    sa.Column('entity_id', sa.Text(), nullable=True),
    sa.Column('detail', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.ForeignKeyConstraint(['app_user_id'], ['app_user.id'], name=op.f('fk_audit_log_app_user_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    op.create_index(op.f('ix_audit_log_app_user_id'), 'audit_log', ['app_user_id'], unique=False)
    op.create_index(op.f('ix_audit_log_at'), 'audit_log', ['at'], unique=False)
    op.create_geospatial_table('grid',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('households', sa.Integer(), server_default='0', nullable=False),
    sa.Column('boundary', Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('residential', 'village', 'commercial', 'industrial', 'mixed', 'port', 'ecological')", name=op.f('ck_grid_kind')),
    sa.CheckConstraint('ST_IsValid(boundary) AND NOT ST_IsEmpty(boundary)', name=op.f('ck_grid_boundary_valid')),
    sa.CheckConstraint('households >= 0', name=op.f('ck_grid_households')),
    sa.ForeignKeyConstraint(['community_id'], ['admin_unit.id'], name=op.f('fk_grid_community_id_admin_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_grid')),
    sa.UniqueConstraint('code', name=op.f('uq_grid_code'))
    )
    op.create_geospatial_index('idx_grid_boundary', 'grid', ['boundary'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_grid_community_id'), 'grid', ['community_id'], unique=False)
    op.create_geospatial_table('shelter',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('address', sa.Text(), nullable=True),
    sa.Column('community_id', sa.Integer(), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('occupancy', sa.Integer(), server_default='0', nullable=False),
    sa.Column('wheelchair_access', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('medical', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('location', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('school', 'gymnasium', 'community_centre', 'purpose_built', 'hotel', 'other')", name=op.f('ck_shelter_kind')),
    sa.CheckConstraint('capacity > 0', name=op.f('ck_shelter_capacity')),
    sa.CheckConstraint('occupancy >= 0', name=op.f('ck_shelter_occupancy')),
    sa.ForeignKeyConstraint(['community_id'], ['admin_unit.id'], name=op.f('fk_shelter_community_id_admin_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shelter')),
    sa.UniqueConstraint('code', name=op.f('uq_shelter_code'))
    )
    op.create_geospatial_index('idx_shelter_location', 'shelter', ['location'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_shelter_community_id'), 'shelter', ['community_id'], unique=False)
    op.create_table('app_user_grid',
    sa.Column('app_user_id', sa.Integer(), nullable=False),
    sa.Column('grid_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['app_user_id'], ['app_user.id'], name=op.f('fk_app_user_grid_app_user_id_app_user'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['grid_id'], ['grid.id'], name=op.f('fk_app_user_grid_grid_id_grid')),
    sa.PrimaryKeyConstraint('app_user_id', 'grid_id', name=op.f('pk_app_user_grid')),
    comment='The grids a grid head or grid worker answers for.'
    )
    op.create_index(op.f('ix_app_user_grid_grid_id'), 'app_user_grid', ['grid_id'], unique=False)
    op.create_geospatial_table('building',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('address', sa.Text(), nullable=True),
    sa.Column('grid_id', sa.Integer(), nullable=False),
    sa.Column('use', sa.Text(), nullable=False),
    sa.Column('floors', sa.Integer(), server_default='1', nullable=False),
    sa.Column('households', sa.Integer(), server_default='0', nullable=False),
    sa.Column('risk_flags', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('footprint', Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry'), nullable=True),
    sa.Column('location', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("risk_flags <@ ARRAY['dilapidated', 'work_shed', 'temporary', 'low_lying', 'coastal', 'geohazard']::text[]", name=op.f('ck_building_risk_flags')),
    sa.CheckConstraint("use IN ('residential', 'commercial', 'industrial', 'public', 'school', 'hospital', 'mixed')", name=op.f('ck_building_use')),
    sa.CheckConstraint('NOT ST_IsEmpty(location)', name=op.f('ck_building_location_valid')),
    sa.CheckConstraint('floors >= 1', name=op.f('ck_building_floors')),
    sa.CheckConstraint('footprint IS NULL OR (ST_IsValid(footprint) AND NOT ST_IsEmpty(footprint))', name=op.f('ck_building_footprint_valid')),
    sa.ForeignKeyConstraint(['grid_id'], ['grid.id'], name=op.f('fk_building_grid_id_grid')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_building')),
    sa.UniqueConstraint('code', name=op.f('uq_building_code'))
    )
    op.create_geospatial_index('idx_building_footprint', 'building', ['footprint'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_geospatial_index('idx_building_location', 'building', ['location'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_building_grid_id'), 'building', ['grid_id'], unique=False)
    op.create_table('resident',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('building_id', sa.Integer(), nullable=False),
    sa.Column('household_code', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('gender', sa.Text(), nullable=True),
    sa.Column('birth_year', sa.Integer(), nullable=True),
    sa.Column('id_number', sa.Text(), nullable=True),
    sa.Column('phone', sa.Text(), nullable=True),
    sa.Column('residency', sa.Text(), nullable=False),
    sa.Column('vulnerabilities', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('registered_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('moved_out_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.CheckConstraint("residency IN ('registered', 'migrant', 'macau', 'hongkong', 'foreign')", name=op.f('ck_resident_residency')),
    sa.CheckConstraint("vulnerabilities <@ ARRAY['elderly_alone', 'disabled', 'bedridden', 'pregnant', 'child', 'chronic_ill']::text[]", name=op.f('ck_resident_vulnerabilities')),
    sa.CheckConstraint('moved_out_at IS NULL OR moved_out_at >= registered_at', name=op.f('ck_resident_moved_out')),
    sa.ForeignKeyConstraint(['building_id'], ['building.id'], name=op.f('fk_resident_building_id_building')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_resident')),
    sa.UniqueConstraint('code', name=op.f('uq_resident_code'))
    )
    op.create_index(op.f('ix_resident_building_id'), 'resident', ['building_id'], unique=False)
    op.create_index(op.f('ix_resident_household_code'), 'resident', ['household_code'], unique=False)
    op.create_geospatial_table('station',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('level', sa.Text(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=False),
    sa.Column('building_id', sa.Integer(), nullable=True),
    sa.Column('contact_name', sa.Text(), nullable=True),
    sa.Column('contact_phone', sa.Text(), nullable=True),
    sa.Column('location', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("level <> 'post' OR building_id IS NOT NULL", name=op.f('ck_station_post_in_building')),
    sa.CheckConstraint("level IN ('centre', 'station', 'post')", name=op.f('ck_station_level')),
    sa.ForeignKeyConstraint(['building_id'], ['building.id'], name=op.f('fk_station_building_id_building')),
    sa.ForeignKeyConstraint(['community_id'], ['admin_unit.id'], name=op.f('fk_station_community_id_admin_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_station')),
    sa.UniqueConstraint('code', name=op.f('uq_station_code'))
    )
    op.create_geospatial_index('idx_station_location', 'station', ['location'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_station_building_id'), 'station', ['building_id'], unique=False)
    op.create_index(op.f('ix_station_community_id'), 'station', ['community_id'], unique=False)
    op.create_index('ix_building_risk_flags', 'building', ['risk_flags'], postgresql_using='gin')
    op.create_index('ix_resident_vulnerabilities', 'resident', ['vulnerabilities'],
                    postgresql_using='gin')
    op.execute(BUILDING_KEEPS_GRID)


def downgrade() -> None:
    """Downgrade schema."""
    op.execute("DROP TRIGGER IF EXISTS building_keep_grid ON building")
    op.execute("DROP FUNCTION IF EXISTS building_keep_grid()")
    op.drop_index('ix_resident_vulnerabilities', table_name='resident')
    op.drop_index('ix_building_risk_flags', table_name='building')
    op.drop_index(op.f('ix_station_community_id'), table_name='station')
    op.drop_index(op.f('ix_station_building_id'), table_name='station')
    op.drop_geospatial_index('idx_station_location', table_name='station', postgresql_using='gist', column_name='location')
    op.drop_geospatial_table('station')
    op.drop_index(op.f('ix_resident_household_code'), table_name='resident')
    op.drop_index(op.f('ix_resident_building_id'), table_name='resident')
    op.drop_table('resident')
    op.drop_index(op.f('ix_building_grid_id'), table_name='building')
    op.drop_geospatial_index('idx_building_location', table_name='building', postgresql_using='gist', column_name='location')
    op.drop_geospatial_index('idx_building_footprint', table_name='building', postgresql_using='gist', column_name='footprint')
    op.drop_geospatial_table('building')
    op.drop_index(op.f('ix_app_user_grid_grid_id'), table_name='app_user_grid')
    op.drop_table('app_user_grid')
    op.drop_index(op.f('ix_shelter_community_id'), table_name='shelter')
    op.drop_geospatial_index('idx_shelter_location', table_name='shelter', postgresql_using='gist', column_name='location')
    op.drop_geospatial_table('shelter')
    op.drop_index(op.f('ix_grid_community_id'), table_name='grid')
    op.drop_geospatial_index('idx_grid_boundary', table_name='grid', postgresql_using='gist', column_name='boundary')
    op.drop_geospatial_table('grid')
    op.drop_index(op.f('ix_audit_log_at'), table_name='audit_log')
    op.drop_index(op.f('ix_audit_log_app_user_id'), table_name='audit_log')
    op.drop_table('audit_log')
    op.drop_table('app_user')
    op.drop_index(op.f('ix_admin_unit_parent_id'), table_name='admin_unit')
    op.drop_geospatial_index('idx_admin_unit_boundary', table_name='admin_unit', postgresql_using='gist', column_name='boundary')
    op.drop_geospatial_table('admin_unit')
