"""The demo territory in PostGIS: exact nesting, every building in one grid, plausible people."""

import pytest
from sqlalchemy import Connection, Engine, text

from gridgis.demo import load
from gridgis.errors import Conflict
from tests.conftest import layer_counts

# Tolerances in square metres (on geography): rounding of shared edges to 1e-7 degrees.
GAP_M2 = 1.0
OVERLAP_M2 = 1.0


def nesting_faults(conn: Connection, child_sql: str) -> list[tuple[str, float, float]]:
    """Return (parent, gap m², overlap m²) for each parent its children do not tile."""
    return list(conn.execute(text(f"""
        WITH child AS ({child_sql}),
        tiled AS (
            SELECT p.code, p.boundary AS parent, ST_Union(c.boundary) AS children,
                   sum(ST_Area(c.boundary::geography)) AS summed
            FROM admin_unit p JOIN child c ON c.parent_id = p.id GROUP BY p.code, p.boundary)
        SELECT code,
               ST_Area(ST_Difference(parent, children)::geography) AS gap,
               summed - ST_Area(children::geography) AS overlap
        FROM tiled
    """)).all())


@pytest.mark.parametrize(
    "child_sql",
    ["SELECT parent_id, boundary FROM admin_unit WHERE parent_id IS NOT NULL",
     "SELECT community_id AS parent_id, boundary FROM grid"],
    ids=["admin-units", "grids"],
)
def test_children_tile_their_parent(engine: Engine, child_sql: str) -> None:
    with engine.connect() as conn:
        faults = [(code, gap, overlap) for code, gap, overlap in nesting_faults(conn, child_sql)
                  if gap > GAP_M2 or abs(overlap) > OVERLAP_M2]
    assert faults == []


def test_every_building_lies_in_exactly_its_grid(engine: Engine) -> None:
    with engine.connect() as conn:
        wrong = conn.execute(text("""
            SELECT b.code, array_agg(g.id) FROM building b
            LEFT JOIN grid g ON ST_Covers(g.boundary, b.location)
            GROUP BY b.id, b.code, b.grid_id
            HAVING count(g.id) <> 1 OR NOT b.grid_id = ALL(array_agg(g.id))
            LIMIT 5""")).all()
        total = conn.execute(text("SELECT count(*) FROM building")).scalar_one()
    assert total > 1000
    assert wrong == []


def test_codes_follow_the_scheme(engine: Engine) -> None:
    with engine.connect() as conn:
        broken = conn.execute(text("""
            SELECT g.code FROM grid g JOIN admin_unit c ON c.id = g.community_id
            JOIN admin_unit s ON s.id = c.parent_id JOIN admin_unit d ON d.id = s.parent_id
            WHERE g.code !~ '^[0-9]{15}$' OR left(g.code, 12) <> c.code
               OR left(c.code, 9) <> s.code OR left(s.code, 6) <> d.code""")).scalars().all()
    assert broken == []


def test_hengqin_has_its_shape(engine: Engine) -> None:
    with engine.connect() as conn:
        levels = dict(conn.execute(text(
            "SELECT level, count(*) FROM admin_unit GROUP BY level")).all())
        grids = conn.execute(text("SELECT count(*) FROM grid")).scalar_one()
        stations = dict(conn.execute(text(
            "SELECT level, count(*) FROM station GROUP BY level")).all())
        residency = dict(conn.execute(text(
            "SELECT residency, count(*) FROM resident GROUP BY residency")).all())
        vulnerable = conn.execute(text(
            "SELECT count(*) FROM resident WHERE vulnerabilities <> '{}'")).scalar_one()
        shelters = conn.execute(text("SELECT count(*) FROM shelter")).scalar_one()
        teams = dict(conn.execute(text(
            "SELECT u.role || ':' || coalesce(u.residency, ''), count(*) FROM app_user u "
            "JOIN app_user_grid ug ON ug.app_user_id = u.id GROUP BY 1")).all())
    assert levels == {"district": 1, "street": 1, "community": 4}
    assert 30 <= grids <= 60
    assert stations["centre"] == 4 and stations["station"] >= 4 and stations["post"] >= 4
    total = sum(residency.values())
    assert 0.10 < residency["macau"] / total < 0.30  # Macau residents in the cooperation zone
    assert 0.25 < residency["migrant"] / total < 0.50
    assert 0.05 < vulnerable / total < 0.40
    assert shelters >= 4
    assert teams["grid_head:registered"] == grids  # one head per grid
    assert teams["grid_worker:macau"] >= 10  # Macau residents among the grid workers


def test_second_load_does_nothing(engine: Engine) -> None:
    before = layer_counts(engine)
    report = load.load_demo(engine, "hengqin")
    assert "already loaded" in report
    assert layer_counts(engine) == before


def test_other_territory_needs_replace(engine: Engine) -> None:
    with pytest.raises(Conflict, match="holds the hengqin territory"):
        load.load_demo(engine, "nansha")


def test_nansha_boundaries_have_the_seed_shape(empty_engine: Engine) -> None:
    units, grids = load.read_territory("nansha", 2024, None, None)
    with empty_engine.connect() as conn:
        trans = conn.begin()
        load.boundaries.insert_boundaries(conn, units, grids)
        levels = dict(conn.execute(text(
            "SELECT level, count(*) FROM admin_unit GROUP BY level")).all())
        grid_count = conn.execute(text("SELECT count(*) FROM grid")).scalar_one()
        faults = [f for f in nesting_faults(
            conn, "SELECT community_id AS parent_id, boundary FROM grid")
            if f[1] > GAP_M2 or abs(f[2]) > OVERLAP_M2]
        trans.rollback()
    assert levels == {"district": 1, "street": 9, "community": 158}
    assert grid_count == 1292
    assert faults == []


def test_generation_is_deterministic(empty_engine: Engine) -> None:
    from tests.test_boundaries import ADMIN, FIXTURES

    def fingerprint() -> tuple[object, ...]:
        with empty_engine.connect() as conn:
            return tuple(conn.execute(text(
                "SELECT count(*), md5(string_agg(code || ST_AsText(location), ',' ORDER BY code)) "
                "FROM building")).one()) + tuple(conn.execute(text(
                "SELECT md5(string_agg(name || id_number, ',' ORDER BY code)) FROM resident"
                )).one())

    try:
        load.load_demo(empty_engine, "hengqin", seed=7, admin_units_file=ADMIN,
                       grids_file=FIXTURES / "grids.geojson")
        first = fingerprint()
        load.load_demo(empty_engine, "hengqin", seed=7, replace=True, admin_units_file=ADMIN,
                       grids_file=FIXTURES / "grids.geojson")
        assert fingerprint() == first
        load.load_demo(empty_engine, "hengqin", seed=8, replace=True, admin_units_file=ADMIN,
                       grids_file=FIXTURES / "grids.geojson")
        assert fingerprint() != first
    finally:
        with empty_engine.begin() as conn:
            conn.exec_driver_sql(f"TRUNCATE {', '.join(load.LAYER_TABLES)} CASCADE")
