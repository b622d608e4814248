"""The migrations build the schema named in DESIGN.md, and go down and up again."""

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from gridgis import db
from gridgis.demo import load

GEOMETRY_COLUMNS = {
    ("admin_unit", "boundary", "MULTIPOLYGON"), ("grid", "boundary", "MULTIPOLYGON"),
    ("building", "footprint", "MULTIPOLYGON"), ("building", "location", "POINT"),
    ("station", "location", "POINT"), ("shelter", "location", "POINT"),
}


@pytest.fixture
def scratch_url(database_url: str) -> Iterator[str]:
    url = make_url(database_url).set(database=f"{make_url(database_url).database}_scratch")
    rendered = url.render_as_string(hide_password=False)
    db.ensure_database(rendered, recreate=True)
    yield rendered
    db.drop_database(rendered)


def test_schema_has_the_contract_names(engine: Engine) -> None:
    with engine.connect() as conn:
        columns = set(conn.execute(text(
            "SELECT f_table_name, f_geometry_column, type FROM geometry_columns "
            "WHERE srid = 4326")).all())
        gist = set(conn.execute(text(
            "SELECT t.relname, a.attname FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid "
            "JOIN pg_class ix ON ix.oid = i.indexrelid JOIN pg_am am ON am.oid = ix.relam "
            "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(i.indkey) "
            "WHERE am.amname = 'gist'")).all())
        tables = set(conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars())
    assert columns >= GEOMETRY_COLUMNS
    assert {(t, c) for t, c, _ in GEOMETRY_COLUMNS} <= gist
    assert {"admin_unit", "grid", "building", "station", "shelter", "resident", "app_user",
            "audit_log"} <= tables


def test_down_and_up_again(scratch_url: str) -> None:
    from alembic import command

    db.upgrade_database(scratch_url)
    engine = db.make_engine(scratch_url)
    try:
        assert db.current_revision(engine) is not None
        command.downgrade(db.alembic_config(scratch_url), "base")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT to_regclass('grid')")).scalar() is None
        db.upgrade_database(scratch_url)
        assert load.loaded_territory(engine.connect()) is None
    finally:
        engine.dispose()


def test_building_outside_its_grid_is_refused(engine: Engine) -> None:
    with engine.connect() as conn, conn.begin():
        grid_id = conn.execute(text("SELECT id FROM grid ORDER BY id LIMIT 1")).scalar_one()
        with pytest.raises(Exception, match="does not lie in grid"):
            conn.execute(text(
                "INSERT INTO building (code, grid_id, use, location) VALUES "
                "('X-1', :grid, 'residential', ST_SetSRID(ST_MakePoint(0, 0), 4326))"),
                {"grid": grid_id})


def test_building_without_grid_gets_the_containing_one(engine: Engine) -> None:
    with engine.connect() as conn:
        trans = conn.begin()
        expected, point = conn.execute(text(
            "SELECT id, ST_PointOnSurface(boundary) FROM grid ORDER BY id LIMIT 1")).one()
        got = conn.execute(text(
            "INSERT INTO building (code, use, location) VALUES ('X-2', 'residential', :p) "
            "RETURNING grid_id"), {"p": point}).scalar_one()
        trans.rollback()
    assert got == expected


def test_invalid_grid_geometry_is_refused_by_the_database(engine: Engine) -> None:
    with engine.connect() as conn, conn.begin():
        community = conn.execute(text(
            "SELECT id FROM admin_unit WHERE level = 'community' LIMIT 1")).scalar_one()
        with pytest.raises(Exception, match="ck_grid_boundary_valid"):
            conn.execute(text(
                "INSERT INTO grid (code, name, community_id, kind, boundary) VALUES "
                "('999', 'bow-tie', :c, 'residential', ST_Multi(ST_GeomFromText("
                "'POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))', 4326)))"), {"c": community})
