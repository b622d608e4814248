"""What the tiles of grids, buildings and admin units are made of, and when it last changed:
``tile_source`` holds, per table, the id of the last transaction that wrote it (set by a
statement trigger on ``admin_unit``, ``grid`` and ``building``, whatever writes them). A
server keeps the tiles it rendered with those ids, and renders a tile again only when one of
its tables has been written since (``gridgis.layers.tiles``).

A transaction id is never used twice in a cluster, and a restored backup brings back the id
its data was written under, so an id names one state of a table's data: a kept tile is never
served for data it was not made from (the server adds the database and the cluster's start
to it). The trigger runs as the owner, also for sessions that turn triggers off; the
application may only read ``tile_source``. Writers of one table wait for each other on its row
until they commit (planning edits and imports: rare; shelters and stations, whose occupancy
and staffing change during an emergency, are not kept and have no trigger).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29 03:00:00

"""
from collections.abc import Sequence

from alembic import op

revision: str = '0015'
down_revision: str | Sequence[str] | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("admin_unit", "grid", "building")
ROLE = "gridgis_app"  # migration 0013


def upgrade() -> None:
    op.execute("""
CREATE TABLE tile_source (
    name text PRIMARY KEY,
    written_by bigint NOT NULL  -- the last writing transaction's id
)""")
    op.execute("INSERT INTO tile_source (name, written_by) SELECT t, "
               "pg_current_xact_id()::text::bigint FROM unnest(ARRAY["
               + ", ".join(f"'{table}'" for table in TABLES) + "]) AS t")
    # The application reads the states; only the trigger (as the owner) writes them, so no
    # bug or misuse can set one back to a state a kept tile was made from.
    op.execute(f"REVOKE ALL ON tile_source FROM {ROLE}")
    op.execute(f"GRANT SELECT ON tile_source TO {ROLE}")
    op.execute("""
CREATE FUNCTION tile_source_written() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  UPDATE tile_source SET written_by = pg_current_xact_id()::text::bigint
  WHERE name = TG_TABLE_NAME;
  RETURN NULL;
END $$""")
    op.execute("REVOKE ALL ON FUNCTION tile_source_written() FROM PUBLIC")
    for table in TABLES:
        op.execute(f"CREATE TRIGGER {table}_tile_source AFTER INSERT OR UPDATE OR DELETE "
                   f"OR TRUNCATE ON {table} FOR EACH STATEMENT "
                   f"EXECUTE FUNCTION tile_source_written()")
        # Also when triggers are off for a session (session_replication_role = replica:
        # bulk loads, replication): a write is a write.
        op.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_tile_source")


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER {table}_tile_source ON {table}")
    op.execute("DROP FUNCTION tile_source_written()")
    op.execute("DROP TABLE tile_source")
