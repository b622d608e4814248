"""Boundary planning: changesets and their operations, every grid's versions (kept by a
trigger on ``grid``, whatever writes it), and the grid version an alert was made with.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 19:30:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision: str = '0009'
down_revision: str | Sequence[str] | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A grid's history: each change of its boundary, name, code, community, kind or retirement
# closes the version in force and opens the next. A publish says which changeset, author
# and reason through transaction-local settings (gridgis.changeset, .author, .reason).
GRID_HISTORY = """
CREATE FUNCTION grid_keep_history() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  changeset integer := nullif(current_setting('gridgis.changeset', true), '')::integer;
  author integer := nullif(current_setting('gridgis.author', true), '')::integer;
  why text := nullif(current_setting('gridgis.reason', true), '');
BEGIN
  IF TG_OP = 'UPDATE' THEN
    IF NEW.boundary = OLD.boundary AND NEW.name = OLD.name AND NEW.code = OLD.code
       AND NEW.community_id = OLD.community_id AND NEW.kind = OLD.kind
       AND NEW.retired_at IS NOT DISTINCT FROM OLD.retired_at THEN
      RETURN NEW;
    END IF;
    UPDATE grid_version SET valid_to = now() WHERE grid_id = OLD.id AND valid_to IS NULL;
  END IF;
  IF NEW.retired_at IS NULL THEN
    INSERT INTO grid_version (grid_id, code, version, name, community_id, kind, boundary,
                              valid_from, changeset_id, app_user_id, reason)
    VALUES (NEW.id, NEW.code, NEW.version, NEW.name, NEW.community_id, NEW.kind,
            NEW.boundary, now(), changeset, author, why);
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER grid_keep_history AFTER INSERT OR UPDATE ON grid
  FOR EACH ROW EXECUTE FUNCTION grid_keep_history();
-- A change to what the history keeps is a new version, bumped by whoever forgot to.
CREATE FUNCTION grid_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.version = OLD.version AND NOT (
       NEW.boundary = OLD.boundary AND NEW.name = OLD.name AND NEW.code = OLD.code
       AND NEW.community_id = OLD.community_id AND NEW.kind = OLD.kind
       AND NEW.retired_at IS NOT DISTINCT FROM OLD.retired_at) THEN
    NEW.version := OLD.version + 1;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER grid_bump_version BEFORE UPDATE ON grid
  FOR EACH ROW EXECUTE FUNCTION grid_bump_version();
"""


def upgrade() -> None:
    op.create_table(
        'changeset',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('app_user_id', sa.Integer(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('state', sa.Text(), server_default='open', nullable=False),
        sa.Column('findings', postgresql.JSONB(astext_type=sa.Text())),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.Column('published_at', sa.DateTime(timezone=True)),
        sa.Column('override_by', sa.Integer()),
        sa.CheckConstraint("state IN ('open', 'published', 'abandoned')",
                           name=op.f('ck_changeset_state')),
        sa.ForeignKeyConstraint(['app_user_id'], ['app_user.id'],
                                name=op.f('fk_changeset_app_user_id_app_user')),
        sa.ForeignKeyConstraint(['override_by'], ['app_user.id'],
                                name=op.f('fk_changeset_override_by_app_user')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_changeset')),
    )
    op.create_table(
        'changeset_operation',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('changeset_id', sa.Integer(), nullable=False),
        sa.Column('op', sa.Text(), nullable=False),
        sa.Column('grid', sa.Text(), nullable=False),
        sa.Column('base_version', sa.Integer()),
        sa.Column('params', postgresql.JSONB(astext_type=sa.Text()), server_default='{}',
                  nullable=False),
        sa.Column('geometry', Geometry(srid=4326, spatial_index=False)),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.CheckConstraint("op IN ('create', 'modify', 'split', 'merge', 'retire', 'restore')",
                           name=op.f('ck_changeset_operation_op')),
        sa.ForeignKeyConstraint(['changeset_id'], ['changeset.id'], ondelete='CASCADE',
                                name=op.f('fk_changeset_operation_changeset_id_changeset')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_changeset_operation')),
    )
    op.create_index('ix_changeset_operation_changeset_id', 'changeset_operation',
                    ['changeset_id'])
    op.create_table(
        'grid_version',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('grid_id', sa.Integer(), nullable=False),
        sa.Column('code', sa.Text(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('name', sa.Text(), nullable=False),
        sa.Column('community_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.Text(), nullable=False),
        sa.Column('boundary', Geometry('MULTIPOLYGON', srid=4326, spatial_index=False),
                  nullable=False),
        sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
        sa.Column('valid_to', sa.DateTime(timezone=True)),
        sa.Column('changeset_id', sa.Integer()),
        sa.Column('app_user_id', sa.Integer()),
        sa.Column('reason', sa.Text()),
        sa.ForeignKeyConstraint(['grid_id'], ['grid.id'],
                                name=op.f('fk_grid_version_grid_id_grid')),
        sa.ForeignKeyConstraint(['changeset_id'], ['changeset.id'],
                                name=op.f('fk_grid_version_changeset_id_changeset')),
        sa.ForeignKeyConstraint(['app_user_id'], ['app_user.id'],
                                name=op.f('fk_grid_version_app_user_id_app_user')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_grid_version')),
    )
    op.create_index('ix_grid_version_grid_id', 'grid_version', ['grid_id', 'valid_from'])
    op.create_index('uq_grid_version_grid_version', 'grid_version', ['grid_id', 'version'],
                    unique=True)
    op.create_index('ix_grid_version_boundary', 'grid_version', ['boundary'],
                    postgresql_using='gist')
    op.execute("""
        INSERT INTO grid_version (grid_id, code, version, name, community_id, kind, boundary,
                                  valid_from, valid_to, reason)
        SELECT id, code, version, name, community_id, kind, boundary, created_at, retired_at,
               'before planning'
        FROM grid
    """)
    op.execute(GRID_HISTORY)
    op.add_column('alert', sa.Column('grid_version', sa.Integer()))
    op.execute("UPDATE alert a SET grid_version = g.version FROM grid g WHERE g.id = a.grid_id")


def downgrade() -> None:
    op.drop_column('alert', 'grid_version')
    op.execute("DROP TRIGGER grid_bump_version ON grid; DROP FUNCTION grid_bump_version()")
    op.execute("DROP TRIGGER grid_keep_history ON grid; DROP FUNCTION grid_keep_history()")
    op.drop_table('grid_version')
    op.drop_table('changeset_operation')
    op.drop_table('changeset')
