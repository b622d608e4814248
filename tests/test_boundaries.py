"""Boundary files: a bad file stops the load with file, feature and reason; nothing written."""

from pathlib import Path

import pytest
from sqlalchemy import Engine

from gridgis.demo import load
from gridgis.errors import InvalidInput
from gridgis.layers import boundaries
from tests.conftest import layer_counts, run_cli

FIXTURES = Path(__file__).parent / "fixtures" / "boundaries"
ADMIN = FIXTURES / "admin_units.geojson"


@pytest.mark.parametrize(
    ("grids_file", "expected"),
    [
        ("grids_self_intersecting.geojson",
         "grids_self_intersecting.geojson: feature 2 (code 449901100001002): invalid geometry: "
         "Self-intersection"),
        ("grids_leaving_community.geojson",
         "grids_leaving_community.geojson: feature 2 (code 449901100001002): leaves its "
         "community 449901100001 by"),
        ("grids_duplicate_code.geojson",
         "grids_duplicate_code.geojson: feature 2 (code 449901100001001): duplicate code "
         "(as feature 1)"),
    ],
)
def test_bad_boundary_file_writes_nothing(empty_engine: Engine, grids_file: str,
                                          expected: str) -> None:
    before = layer_counts(empty_engine)
    with pytest.raises(InvalidInput) as refused:
        load.load_demo(empty_engine, "hengqin", admin_units_file=ADMIN,
                       grids_file=FIXTURES / grids_file)
    assert expected in str(refused.value)
    assert "nothing written" in str(refused.value)
    assert layer_counts(empty_engine) == before == dict.fromkeys(load.LAYER_TABLES, 0)


def test_bad_boundary_file_on_the_command_line(empty_database_url: str) -> None:
    result = run_cli("demo", "load", "--admin-units", str(ADMIN), "--grids",
                     str(FIXTURES / "grids_leaving_community.geojson"),
                     env={"GRIDGIS_DATABASE_URL": empty_database_url})
    assert result.returncode == 1
    assert "leaves its community 449901100001" in result.stderr
    assert "Traceback" not in result.stderr


def test_good_files_load_and_populate(empty_engine: Engine) -> None:
    report = load.load_demo(empty_engine, "hengqin", admin_units_file=ADMIN,
                            grids_file=FIXTURES / "grids.geojson")
    try:
        counts = layer_counts(empty_engine)
        assert counts["admin_unit"] == 3 and counts["grid"] == 2
        assert counts["building"] > 0 and counts["resident"] > 0
        assert "2 grids" in report
    finally:
        with empty_engine.begin() as conn:
            conn.exec_driver_sql(f"TRUNCATE {', '.join(load.LAYER_TABLES)} CASCADE")


def test_unreadable_file_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.geojson"
    broken.write_text('{"type": "FeatureCollection", "features": [')
    with pytest.raises(InvalidInput, match=r"broken\.geojson: cannot be read"):
        boundaries.read_layer(broken, boundaries.GRID_COLUMNS)


def test_file_without_required_columns_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="missing column"):
        boundaries.read_layer(ADMIN, ("code", "community_code"))


def test_swapped_coordinates_are_named() -> None:
    import shapely

    swapped = shapely.Polygon([(22.1, 113.5), (22.1, 113.6), (22.2, 113.6), (22.1, 113.5)])
    assert "swapped" in (boundaries.spatial.polygon_problem(swapped) or "")


def _variant(tmp_path: Path, change: str) -> Path:
    """Write the good grids file with one thing changed; return its path."""
    import geopandas as gpd
    import shapely

    grids = gpd.read_file(FIXTURES / "grids.geojson")
    if change == "3d":
        grids = grids.set_geometry(shapely.force_3d(grids.geometry.values, 5.0), crs=4326)
    elif change == "no name":
        grids.loc[1, "name"] = None
    elif change == "text households":
        grids["households"] = grids["households"].astype(object)
        grids.loc[1, "households"] = "many"
    elif change == "empty":
        grids = grids.iloc[0:0]
    path = tmp_path / f"grids_{change.replace(' ', '_')}.geojson"
    grids.to_file(path, driver="GeoJSON")
    return path


@pytest.mark.parametrize(("change", "reason"), [
    ("no name", "feature 2 (code 449901100001002): no name"),
    ("text households", "households 'many' is not a number of households"),
    ("empty", "no features"),
])
def test_bad_attributes_are_named(empty_engine: Engine, tmp_path: Path, change: str,
                                  reason: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        load.load_demo(empty_engine, "hengqin", admin_units_file=ADMIN,
                       grids_file=_variant(tmp_path, change))
    assert reason in str(refused.value)
    assert layer_counts(empty_engine) == dict.fromkeys(load.LAYER_TABLES, 0)


def test_3d_polygons_are_flattened(empty_engine: Engine, tmp_path: Path) -> None:
    try:
        load.load_demo(empty_engine, "hengqin", admin_units_file=ADMIN,
                       grids_file=_variant(tmp_path, "3d"))
        assert layer_counts(empty_engine)["grid"] == 2
    finally:
        with empty_engine.begin() as conn:
            conn.exec_driver_sql(f"TRUNCATE {', '.join(load.LAYER_TABLES)} CASCADE")


def test_one_boundary_file_alone_is_refused(empty_engine: Engine) -> None:
    with pytest.raises(InvalidInput, match="give both boundary files"):
        load.load_demo(empty_engine, "city", grids_file=FIXTURES / "grids.geojson")


def test_replace_keeps_users_grids(empty_engine: Engine) -> None:
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from gridgis import auth

    files = {"admin_units_file": ADMIN, "grids_file": FIXTURES / "grids.geojson"}
    try:
        load.load_demo(empty_engine, "hengqin", **files)
        with Session(empty_engine) as session:
            auth.add_user(session, "kept_head", "grid_head", "a long secret",
                          ["449901100001002"])
            session.commit()
        load.load_demo(empty_engine, "hengqin", replace=True, seed=99, **files)
        with empty_engine.connect() as conn:
            kept = conn.execute(text(
                "SELECT g.code FROM app_user u JOIN app_user_grid ug ON ug.app_user_id = u.id "
                "JOIN grid g ON g.id = ug.grid_id WHERE u.username = 'kept_head'")).scalars()
            assert list(kept) == ["449901100001002"]
    finally:
        with empty_engine.begin() as conn:
            conn.exec_driver_sql(f"TRUNCATE {', '.join(load.LAYER_TABLES)} CASCADE")
            conn.exec_driver_sql("DELETE FROM app_user")
