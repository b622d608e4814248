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
