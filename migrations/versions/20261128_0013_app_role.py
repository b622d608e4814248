"""The application's database role, ``gridgis_app``: not a superuser, not the owner of the
tables. gridgis's server and dispatcher work as it (``SET ROLE``, setting
``GRIDGIS_DATABASE_ROLE``); migrations, backups and demo loads work as the owner.

It may read and write the data (tables created by later migrations included, through
default privileges), but only append to ``audit_log``: no UPDATE, DELETE or TRUNCATE, so no
bug and no misused endpoint can rewrite who read whose data. The one owner-only operation
the app needs, refreshing the grid totals, is the SECURITY DEFINER function
``refresh_grid_total(keep_reading)``.

The role is cluster-wide and shared by every gridgis database on the server; the owner must
be a superuser or a member of it (``GRANT gridgis_app TO <owner>``) to take it on.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-28 22:10:00

"""
from collections.abc import Sequence

from alembic import op

revision: str = '0013'
down_revision: str | Sequence[str] | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLE = "gridgis_app"
UPGRADE = f"""
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
        CREATE ROLE {ROLE} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
    END IF;
END $$;
GRANT USAGE ON SCHEMA public TO {ROLE};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ROLE};
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {ROLE};
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {ROLE};
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {ROLE};
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM {ROLE};
CREATE FUNCTION refresh_grid_total(keep_reading boolean) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF keep_reading THEN
        REFRESH MATERIALIZED VIEW CONCURRENTLY grid_total;
    ELSE
        REFRESH MATERIALIZED VIEW grid_total;
    END IF;
END $$;
REVOKE ALL ON FUNCTION refresh_grid_total(boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION refresh_grid_total(boolean) TO {ROLE};
"""
DOWNGRADE = f"""
DROP FUNCTION refresh_grid_total(boolean);
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM {ROLE};
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE USAGE, SELECT, UPDATE ON SEQUENCES FROM {ROLE};
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {ROLE};
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {ROLE};
REVOKE USAGE ON SCHEMA public FROM {ROLE};
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)  # the role stays: other gridgis databases may use it
