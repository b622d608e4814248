"""Layer files in and out against the hengqin demo: round trips, changes, refusals naming every
bad row, CRS and GCJ-02, HTTP roles and the command line."""

import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from pyproj import Geod
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from gridgis import spatial
from gridgis.errors import Conflict, InvalidInput, TooLarge
from gridgis.layers import export, files
from gridgis.layers.file_checks import ImportRefused
from gridgis.settings import get_settings
from tests.conftest import run_cli

FIXTURES = Path(__file__).parent / "fixtures" / "files"
GRID = "440402100001001"  # the first hengqin grid
COUNTED = ("building", "station", "shelter", "resident", "resident_event")


def counts(session: Session) -> dict[str, int]:
    return {t: session.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in COUNTED}


def row_of(session: Session, table: str, code: str) -> dict[str, object]:
    return dict(session.execute(text(f"SELECT * FROM {table} WHERE code = :code"),
                                {"code": code}).mappings().one())


def problems_of(refused: pytest.ExceptionInfo[ImportRefused]) -> dict[tuple[int, str], str]:
    return {(p.row, p.field): f"{p.code}: {p.reason}" for p in refused.value.problems}


# Round trips


@pytest.mark.parametrize(("layer", "suffix", "within"), [
    ("buildings", ".geojson", None), ("buildings", ".gpkg", None), ("buildings", ".zip", None),
    ("buildings", ".csv", None), ("stations", ".zip", None), ("shelters", ".gpkg", None),
    ("stations", ".csv", None), ("shelters", ".zip", None), ("shelters", ".csv", None),
    ("residents", ".csv", GRID), ("residents", ".zip", GRID),
])
def test_export_then_import_changes_nothing(session: Session, tmp_path: Path, layer: str,
                                            suffix: str, within: str | None) -> None:
    path = tmp_path / f"{layer}{suffix}"
    written = export.export_layer(session, layer, path, within=within)
    plan = files.plan_import(session, layer, path, retire_missing=within is None)
    assert written > 0 and plan.rows == written
    assert (plan.added, plan.changed, plan.retired) == ([], [], [])


@pytest.mark.parametrize("layer", ["grids", "admin-units"])
def test_boundaries_export_in_every_format(session: Session, tmp_path: Path,
                                           layer: str) -> None:
    for suffix in (".geojson", ".gpkg", ".zip"):
        path = tmp_path / f"{layer}{suffix}"
        written = export.export_layer(session, layer, path, within="440402100001")
        shapes = gpd.read_file(path)
        assert len(shapes) == written > 0 and shapes.crs.to_epsg() == 4326
        assert shapes.geometry.is_valid.all() and shapes["code"].str.startswith(
            "440402100001").all()
    export.export_layer(session, layer, tmp_path / f"{layer}.csv")
    assert "wkt" in pd.read_csv(tmp_path / f"{layer}.csv").columns


def test_reprojected_and_cgcs2000_files_match(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "buildings.geojson"
    export.export_layer(session, "buildings", path, within=GRID)
    shapes = gpd.read_file(path)
    shapes.to_crs(3857).to_file(tmp_path / "mercator.gpkg")
    shapes.set_crs(4490, allow_override=True).to_file(tmp_path / "cgcs2000.gpkg")
    for name in ("mercator.gpkg", "cgcs2000.gpkg"):
        plan = files.plan_import(session, "buildings", tmp_path / name)
        assert plan.rows == len(shapes) and (plan.added, plan.changed) == ([], [])


# Changes


def test_import_adds_one_building_and_changes_another(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "buildings.geojson"
    export.export_layer(session, "buildings", path, within=GRID)
    shapes = gpd.read_file(path)
    changed = shapes.loc[0, "code"]
    shapes.loc[0, "floors"] = int(shapes.loc[0, "floors"]) + 1
    new = shapes.iloc[[1]].copy()
    new["code"] = f"{GRID}-9100"
    new["version"] = None
    new = new.set_geometry([new.geometry.iloc[0].buffer(0.0001, quad_segs=2)], crs=4326)
    pd.concat([shapes, new]).to_file(path)
    before, old = counts(session), row_of(session, "building", changed)

    plan = files.apply_import(session, "buildings", path)

    assert (plan.added, plan.changed, plan.retired) == ([f"{GRID}-9100"], [changed], [])
    assert counts(session) == {**before, "building": before["building"] + 1}
    now = row_of(session, "building", changed)
    assert now["floors"] == old["floors"] + 1 and now["version"] == old["version"] + 1
    assert now["updated_at"] > old["updated_at"] and now["grid_id"] == old["grid_id"]
    placed = session.execute(text(
        "SELECT g.code, ST_Covers(b.footprint, b.location) FROM building b JOIN grid g "
        "ON g.id = b.grid_id WHERE b.code = :code"), {"code": f"{GRID}-9100"}).one()
    assert tuple(placed) == (GRID, True)  # the trigger's grid, the point inside the footprint
    assert session.execute(text("SELECT count(*) FROM building WHERE version > 1")).scalar() == 1
    assert files.plan_import(session, "buildings", path).changed == []  # stale version now


def test_a_row_changed_since_the_export_is_refused(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "shelters.geojson"
    export.export_layer(session, "shelters", path)
    shapes = gpd.read_file(path)
    code = shapes.loc[0, "code"]
    session.execute(text("UPDATE shelter SET occupancy = 5, version = version + 1 "
                         "WHERE code = :code"), {"code": code})
    shapes.loc[0, "capacity"] = int(shapes.loc[0, "capacity"]) + 100
    shapes.to_file(path)
    with pytest.raises(ImportRefused) as refused:
        files.apply_import(session, "shelters", path)
    assert "changed in the database since this file was made (version 1 here, 2 there)" in \
        problems_of(refused)[(1, "version")]


def test_retire_missing_retires_and_never_deletes(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "shelters.csv"
    export.export_layer(session, "shelters", path)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    gone = table.loc[0, "code"]
    table.to_csv(path.with_name("all.csv"), index=False)
    table.iloc[1:].to_csv(path, index=False)
    before = counts(session)
    plan = files.apply_import(session, "shelters", path, retire_missing=True)
    assert (plan.added, plan.changed, plan.retired) == ([], [], [gone])
    assert counts(session) == before
    retired = row_of(session, "shelter", gone)
    assert retired["retired_at"] is not None and retired["version"] == 2
    with pytest.raises(ImportRefused, match="version 1 here, 2 there"):
        files.plan_import(session, "shelters", path.with_name("all.csv"))  # the old file
    table.drop(columns="version").to_csv(path, index=False)  # back in a file: live again
    assert files.apply_import(session, "shelters", path).changed == [gone]
    assert row_of(session, "shelter", gone)["retired_at"] is None


def test_retire_missing_keeps_buildings_people_live_in(session: Session,
                                                       tmp_path: Path) -> None:
    path = tmp_path / "buildings.gpkg"
    export.export_layer(session, "buildings", path, within=GRID)
    with pytest.raises(Conflict, match="would strand the residents or stations of"):
        files.plan_import(session, "buildings", path, retire_missing=True)


def test_residents_import_keeps_their_history(session: Session, tmp_path: Path,
                                              login: Callable[..., dict[str, str]]) -> None:
    from gridgis.models import AppUser

    login("files_admin", "admin")
    admin = session.query(AppUser).filter_by(username="files_admin").one()
    path = tmp_path / "residents.csv"
    export.export_layer(session, "residents", path, within=GRID)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    changed = table.loc[0, "code"]
    table.loc[0, "phone"] = "13900000000"
    new = table.iloc[[0]].assign(code="R900000001", version="")
    pd.concat([table, new]).to_csv(path, index=False)
    plan = files.apply_import(session, "residents", path, user=admin)
    assert (plan.added, plan.changed) == (["R900000001"], [changed])
    events = session.execute(text(
        "SELECT r.code, e.kind, e.app_user_id FROM resident_event e JOIN resident r "
        "ON r.id = e.resident_id ORDER BY e.id DESC LIMIT 2")).all()
    assert sorted(map(tuple, events)) == [(changed, "updated", admin.id),
                                          ("R900000001", "registered", admin.id)]


def test_residents_who_left_are_moved_out(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "residents.csv"
    export.export_layer(session, "residents", path)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    gone = table.loc[5, "code"]
    table.drop(index=5).to_csv(path, index=False)
    before = counts(session)
    plan = files.apply_import(session, "residents", path, retire_missing=True)
    assert (plan.added, plan.changed, plan.retired) == ([], [], [gone])
    assert counts(session) == {**before, "resident_event": before["resident_event"] + 1}
    assert row_of(session, "resident", gone)["moved_out_at"] is not None
    assert session.execute(text(
        "SELECT e.kind FROM resident_event e JOIN resident r ON r.id = e.resident_id "
        "WHERE r.code = :code ORDER BY e.id DESC LIMIT 1"), {"code": gone}).scalar() == \
        "moved_out"


# Refusals


BAD_BUILDINGS = [
    (2, "geometry", "no geometry (missing, or malformed in the file)"),
    (3, "geometry", "invalid geometry: Self-intersection"),
    (4, "geometry", "a polygon ring is not closed"),
    (5, "geometry", "coordinates outside lon -180..180 / lat -90..90"),
    (6, "geometry", "lat/lon swapped"),
    (7, "use", "unknown use 'palace'; allowed: residential"),
    (8, "risk_flags", "unknown risk_flags 'haunted'"),
    (9, "floors", "'many' is not a number"),
    (10, "code", "duplicate code (as row 1)"),
    (11, "geometry", "lies in no grid"),
    (12, "geometry", "a LineString where a point belongs"),
]


def test_every_bad_building_is_named_and_nothing_written(session: Session) -> None:
    before = counts(session)
    with pytest.raises(ImportRefused) as refused:
        files.apply_import(session, "buildings", FIXTURES / "buildings_bad.geojson")
    found = problems_of(refused)
    for row, field, reason in BAD_BUILDINGS:
        assert reason in found[(row, field)], (row, field, found.get((row, field)))
    assert len(found) == len(BAD_BUILDINGS)  # row 1 is good
    assert found[(7, "use")].startswith("440402100001001-9007: ")
    assert str(refused.value).startswith("buildings_bad.geojson: import refused, nothing "
                                         "written (11 bad rows):")
    assert counts(session) == before


@pytest.mark.parametrize(("layer", "name", "expected"), [
    ("residents", "residents_bad.csv", {
        (2, "building_code"): "unknown building code '440402100001001-9999'",
        (3, "birth_year"): "'nineteen-ninety' is not a number",
        (4, "residency"): "unknown residency 'martian'",
        (5, "name"): "no name",
        (5, "vulnerabilities"): "unknown vulnerabilities 'vampire'"}),
    ("stations", "stations_bad.csv", {
        (2, "level"): "unknown level 'palace'; allowed: centre, station, post",
        (3, "building_code"): "a post sits in a building: give its building_code",
        (4, "geometry"): "lies in no community",
        (5, "building_code"): "unknown building code '440402100001001-9999'"}),
    ("shelters", "shelters_text_capacity.csv", {
        (2, "capacity"): "'lots' is not a number",
        (3, "kind"): "unknown kind 'castle'",
        (3, "lon"): "'abc' is not a number"}),
])
def test_bad_csv_rows_are_named(session: Session, layer: str, name: str,
                                expected: dict[tuple[int, str], str]) -> None:
    before = counts(session)
    with pytest.raises(ImportRefused) as refused:
        files.apply_import(session, layer, FIXTURES / name)
    found = problems_of(refused)
    assert found.keys() == expected.keys()
    for key, reason in expected.items():
        assert reason in found[key]
    assert counts(session) == before


def _zipped(tmp_path: Path, session: Session, keep: Callable[[str], bool],
            prj: str | None = None) -> Path:
    """Return a zipped Shapefile of one grid's buildings holding the parts ``keep`` allows."""
    source = tmp_path / "export.zip"
    export.export_layer(session, "buildings", source, within=GRID)
    path = tmp_path / "buildings.zip"
    with zipfile.ZipFile(source) as given, zipfile.ZipFile(path, "w") as made:
        for name in given.namelist():
            if keep(name):
                made.writestr(name, prj if name.endswith(".prj") and prj else given.read(name))
    return path


def test_shapefile_without_prj_is_refused(session: Session, tmp_path: Path) -> None:
    path = _zipped(tmp_path, session, lambda name: not name.endswith(".prj"))
    with pytest.raises(InvalidInput, match=r"buildings\.zip: the Shapefile has no \.prj; "
                                           r"without its \.prj its coordinate reference"):
        files.plan_import(session, "buildings", path)


def test_unknown_crs_is_refused(session: Session, tmp_path: Path) -> None:
    garbled = _zipped(tmp_path, session, lambda name: True, prj="not a CRS at all")
    with pytest.raises(InvalidInput, match="unknown coordinate reference system"):
        files.plan_import(session, "buildings", garbled)
    local = _zipped(tmp_path, session, lambda name: True, prj='LOCAL_CS["site",UNIT["m",1]]')
    with pytest.raises(InvalidInput, match="cannot be converted to WGS 84"):
        files.plan_import(session, "buildings", local)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("broken.geojson", '{"type": "FeatureCollection", "features": [', "cannot be read"),
    ("places.kml", "<kml/>", "unknown file type '.kml'"),
    ("empty.csv", "", "cannot be read as CSV"),
    ("nocode.csv", "name,use,lon,lat\nA,school,113.52,22.13\n", "missing column(s) code"),
    ("nolonlat.csv", "code,use\nA,school\n", "needs lon and lat columns"),
])
def test_unreadable_files_are_refused(session: Session, tmp_path: Path, name: str,
                                      content: str, message: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        files.plan_import(session, "buildings", tmp_path / name)


def test_a_file_over_the_limit_is_refused(session: Session) -> None:
    with pytest.raises(TooLarge, match=r"more than the import limit of 0\.001 MB"):
        files.plan_import(session, "buildings", FIXTURES / "buildings_bad.geojson",
                          max_mb=0.001)


# GCJ-02

# (WGS 84 lat, lon, GCJ-02 lat, lon): the pairs GCJ-02 libraries are checked against.
GCJ_PAIRS = [(31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),
             (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),
             (39.911954, 116.377817, 39.91334545536069, 116.38404722455657)]


def test_gcj02_matches_known_pairs_and_inverts() -> None:
    wgs_lat, wgs_lon, gcj_lat, gcj_lon = map(np.array, zip(*GCJ_PAIRS, strict=True))
    lon, lat = spatial.wgs84_to_gcj02(wgs_lon, wgs_lat)
    assert np.allclose(lon, gcj_lon, atol=1e-9) and np.allclose(lat, gcj_lat, atol=1e-9)
    back_lon, back_lat = spatial.gcj02_to_wgs84(gcj_lon, gcj_lat)
    _, _, error_m = Geod(ellps="WGS84").inv(back_lon, back_lat, wgs_lon, wgs_lat)
    assert np.max(error_m) < 0.001  # the brief asks < 0.5 m
    outside = spatial.gcj02_to_wgs84(np.array([2.35]), np.array([48.85]))  # Paris
    assert (outside[0][0], outside[1][0]) == (2.35, 48.85)


def test_gcj02_import_lands_on_the_wgs84_points(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "stations.csv"
    export.export_layer(session, "stations", path)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    lon, lat = table["lon"].astype(float).to_numpy(), table["lat"].astype(float).to_numpy()
    gcj_lon, gcj_lat = spatial.wgs84_to_gcj02(lon, lat)
    _, _, moved_m = Geod(ellps="WGS84").inv(lon, lat, gcj_lon, gcj_lat)
    assert moved_m.min() > 200 and moved_m.max() < 800  # "a few hundred metres" off
    table["lon"], table["lat"] = map(lambda values: [repr(float(v)) for v in values],
                                     (gcj_lon, gcj_lat))
    table.to_csv(path, index=False)
    plan = files.plan_import(session, "stations", path, gcj02=True)
    assert (plan.added, plan.changed) == ([], [])


# HTTP


@pytest.fixture
def files_client(client: TestClient) -> TestClient:
    """The app on the test's rolled-back session."""
    return client


def _one_change(session: Session, tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "buildings.geojson"
    export.export_layer(session, "buildings", path, within=GRID)
    shapes = gpd.read_file(path)
    shapes.loc[0, "use"] = "school" if shapes.loc[0, "use"] != "school" else "public"
    shapes.to_file(path)
    return path, str(shapes.loc[0, "code"])


def test_http_import_for_planners_not_grid_heads(session: Session, tmp_path: Path,
                                                 files_client: TestClient,
                                                 login: Callable[..., dict[str, str]]) -> None:
    path, code = _one_change(session, tmp_path)
    planner = login("files_planner", "planner")
    upload = {"file": (path.name, path.read_bytes(), "application/geo+json")}
    planned = files_client.post("/api/import/buildings", headers=planner, files=upload,
                                data={"dry_run": "true"})
    assert planned.status_code == 200, planned.text
    assert planned.json() | {"source": ""} == {
        "layer": "buildings", "source": "", "rows": planned.json()["rows"], "applied": False,
        "added": 0, "changed": 1, "retired": 0, "added_codes": [], "changed_codes": [code],
        "retired_codes": []}
    assert row_of(session, "building", code)["version"] == 1
    applied = files_client.post("/api/import/buildings", headers=planner, files=upload)
    assert applied.status_code == 200 and applied.json()["applied"] is True
    assert row_of(session, "building", code)["version"] == 2
    head = login("files_head", "grid_head", [GRID])
    assert files_client.post("/api/import/buildings", headers=head,
                             files=upload).status_code == 403
    residents = {"file": ("r.csv", b"code\n", "text/csv")}
    assert files_client.post("/api/import/residents", headers=planner,
                             files=residents).status_code == 403


def test_http_refusals_carry_every_row(files_client: TestClient,
                                       login: Callable[..., dict[str, str]],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    admin = login("files_admin", "admin")
    bad = FIXTURES / "buildings_bad.geojson"
    upload = {"file": (bad.name, bad.read_bytes(), "application/geo+json")}
    refused = files_client.post("/api/import/buildings", headers=admin, files=upload)
    assert refused.status_code == 422
    rows = {(p["row"], p["field"]) for p in refused.json()["problems"]}
    assert rows == {(row, field) for row, field, _ in BAD_BUILDINGS}
    monkeypatch.setenv("GRIDGIS_IMPORT_MAX_MB", "0.001")  # the setting, as an operator sets it
    get_settings.cache_clear()
    try:
        too_large = files_client.post("/api/import/buildings", headers=admin, files=upload)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert too_large.status_code == 413
    assert "more than the import limit" in too_large.json()["detail"]


def test_http_residents_export_admin_only_and_audited(session: Session,
                                                      files_client: TestClient,
                                                      login: Callable[..., dict[str, str]]
                                                      ) -> None:
    audits = "SELECT action FROM audit_log WHERE entity = 'resident' ORDER BY id DESC LIMIT 1"
    admin = login("files_admin", "admin")
    answer = files_client.get(f"/api/export/residents?format=csv&within={GRID}", headers=admin)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert 'filename="residents.csv"' in answer.headers["content-disposition"]
    lines = answer.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("code,name,") and len(lines) > 10
    assert session.execute(text(audits)).scalar() == "export"
    command = login("files_command", "command")
    denied = files_client.get("/api/export/residents", headers=command)
    assert denied.status_code == 403
    assert session.execute(text(audits)).scalar() == "export-denied"
    shapes = files_client.get("/api/export/shelters?format=gpkg", headers=command)
    assert shapes.status_code == 200
    # GeoPackage's registered media type (the file format is SQLite's), not a database
    assert shapes.headers["content-type"] == "application/geopackage+sqlite3"


# The command line


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``gridgis ARGS`` as a user would."""
    return run_cli(*args)


def test_cli_dry_run_prints_the_plan_and_writes_nothing(engine: Engine,
                                                        tmp_path: Path) -> None:
    with Session(engine) as session:
        path, code = _one_change(session, tmp_path)
        before = row_of(session, "building", code)
    result = cli("import", "buildings", str(path), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "dry run, nothing written: 0 added, 1 changed, 0 retired" in result.stdout
    assert f"changed: {code}" in result.stdout
    with Session(engine) as session:
        assert row_of(session, "building", code) == before


def test_cli_bad_file_is_one_line_and_the_rows(engine: Engine) -> None:
    result = cli("import", "buildings", str(FIXTURES / "buildings_bad.geojson"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0] == ("gridgis: buildings_bad.geojson: import refused, nothing written "
                        "(11 bad rows):")
    assert len(lines) == 12 and "Traceback" not in result.stderr
    assert "row 7 (code 440402100001001-9007), use: unknown use 'palace'" in result.stderr


def test_cli_export_residents_is_audited(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "people.gpkg"
    result = cli("export", "residents", str(path), "--within", GRID)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("wrote ") and len(gpd.read_file(path)) > 0
    with engine.connect() as conn:
        audited = conn.execute(text(
            "SELECT action, username, detail->>'within' FROM audit_log WHERE entity = "
            "'resident' ORDER BY id DESC LIMIT 1")).one()
    assert tuple(audited) == ("export", None, GRID)
