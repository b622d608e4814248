"""Boundary planning: changesets checked operation by operation, validated with the geometry
at fault, previewed, published in one transaction with history; stale and warned grids
refused; every version kept and readable as of any time."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import shapely
import shapely.ops
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from tests.checklist_helpers import drawn_over
from tests.conftest import run_cli

Login = Callable[..., dict[str, str]]


@pytest.fixture
def planner(login: Login) -> dict[str, str]:
    return login("pl-planner", "planner")


def neighbours(session: Session) -> Any:
    """Two grids of one community sharing an edge, the first with buildings."""
    return session.execute(text("""
        SELECT a.code AS a, b.code AS b, cu.code AS community
        FROM grid a JOIN grid b ON b.community_id = a.community_id AND b.code <> a.code
         AND ST_Length(ST_CollectionExtract(ST_Intersection(a.boundary, b.boundary), 2)) > 0
        JOIN admin_unit cu ON cu.id = a.community_id
        WHERE a.retired_at IS NULL AND b.retired_at IS NULL
          AND EXISTS (SELECT 1 FROM building x WHERE x.grid_id = a.id)
        ORDER BY a.code, b.code LIMIT 1""")).one()


def free_codes(session: Session, community: str, n: int) -> list[str]:
    last = session.execute(text(
        "SELECT max(CAST(substr(code, 13) AS int)) FROM grid WHERE code LIKE :c || '___'"),
        {"c": community}).scalar_one()
    return [f"{community}{last + k:03d}" for k in range(1, n + 1)]


def boundary(session: Session, code: str, buffer: float = 0.0) -> Any:
    return shapely.from_geojson(session.execute(text(
        "SELECT ST_AsGeoJSON(ST_Buffer(boundary, :b), 9) FROM grid WHERE code = :c"),
        {"c": code, "b": buffer}).scalar_one())


def open_with(client: TestClient, headers: dict[str, str], *ops: dict[str, Any]) -> int:
    opened = client.post("/api/changesets", json={"reason": "社区调整网格"}, headers=headers)
    assert opened.status_code == 201, opened.text
    changeset = int(opened.json()["id"])
    for op in ops:
        added = client.post(f"/api/changesets/{changeset}/operations", json=op, headers=headers)
        assert added.status_code == 201, added.text
    return changeset


def geojson(geometry: Any) -> dict[str, Any]:
    return json.loads(shapely.to_geojson(geometry))


def test_a_split_is_previewed_published_and_kept_in_history(
        client: TestClient, session: Session, planner: dict[str, str], login: Login) -> None:
    pair = neighbours(session)
    grid = boundary(session, pair.a)
    login("pl-head", "grid_head", [pair.a])
    centre = grid.centroid
    _, south, _, north = grid.bounds
    line = shapely.LineString([(centre.x, south - 0.01), (centre.x, north + 0.01)])
    parts = free_codes(session, pair.community, 2)
    before = session.execute(text(
        "SELECT count(*) FROM building b JOIN grid g ON g.id = b.grid_id WHERE g.code = :g"),
        {"g": pair.a}).scalar_one()
    changeset = open_with(client, planner, {"op": "split", "grid": pair.a,
                                            "geometry": geojson(line), "codes": parts})
    checked = client.post(f"/api/changesets/{changeset}/validate", headers=planner).json()
    assert checked["ok"], checked["findings"]
    preview = client.get(f"/api/changesets/{changeset}/preview", headers=planner).json()
    assert {m["from_grid"] for m in preview["moves"]} == {pair.a}
    assert {m["to_grid"] for m in preview["moves"]} <= set(parts)
    assert preview["totals"]["buildings"] == before
    assert {f["properties"]["grid"] for f in preview["map"]["features"]
            if "grid" in f["properties"]} == {pair.a, *parts}

    published = client.post(f"/api/changesets/{changeset}/publish", headers=planner)
    assert published.status_code == 200, published.text
    after = session.execute(text(
        "SELECT g.code, g.retired_at IS NOT NULL AS retired, count(b.id) AS buildings, "
        "(SELECT count(*) FROM app_user_grid ug JOIN app_user u ON u.id = ug.app_user_id "
        " WHERE ug.grid_id = g.id AND u.username = 'pl-head') AS head "
        "FROM grid g LEFT JOIN building b ON b.grid_id = g.id "
        "WHERE g.code = ANY(:c) GROUP BY g.id ORDER BY g.code"),
        {"c": [pair.a, *parts]}).all()
    assert [(r.code, r.retired) for r in after] == [(pair.a, True), (parts[0], False),
                                                    (parts[1], False)]
    assert sum(r.buildings for r in after) == before and after[0].buildings == 0
    assert [r.head for r in after] == [0, 1, 1]  # the team goes with the parts
    history = client.get(f"/api/grids/{parts[0]}/history", headers=planner).json()
    assert history[-1]["changeset"] == changeset and history[-1]["reason"] == "社区调整网格"
    assert history[-1]["author"] == "pl-planner"
    old = client.get(f"/api/grids/{pair.a}/history", headers=planner).json()
    assert old[-1]["valid_to"] is not None  # closed by the publish
    moment = old[-1]["valid_from"]
    as_of = client.get("/api/planning/grids", headers=planner,
                       params={"at": moment, "within": pair.community}).json()
    codes_then = {f["properties"]["code"] for f in as_of["features"]}
    assert pair.a in codes_then and not set(parts) & codes_then


def test_bad_operations_are_refused_with_the_geometry_at_fault(
        client: TestClient, session: Session, planner: dict[str, str]) -> None:
    pair = neighbours(session)
    changeset = open_with(client, planner)
    grid = boundary(session, pair.a)
    west, south, east, north = grid.bounds
    bowtie = shapely.Polygon([(west, south), (east, north), (east, south), (west, north)])
    other = session.execute(text(
        "SELECT g.code FROM grid g JOIN grid a ON a.code = :a "
        "WHERE g.community_id <> a.community_id AND ST_Touches(g.boundary, a.boundary) "
        "ORDER BY g.code LIMIT 1"), {"a": pair.a}).scalar()
    far = shapely.LineString([(west - 0.05, south - 0.05), (west - 0.04, south - 0.05)])
    refused = {
        "self-intersecting": ({"op": "modify", "grid": pair.a, "geometry": geojson(bowtie)},
                              "valid"),
        "split line outside": ({"op": "split", "grid": pair.a, "geometry": geojson(far),
                                "codes": free_codes(session, pair.community, 2)}, "split"),
        "code off the scheme": ({"op": "create", "grid": pair.community + "000",
                                 "geometry": geojson(grid)}, "code"),
        "code taken": ({"op": "create", "grid": pair.b, "geometry": geojson(grid)}, "code"),
        "unknown grid": ({"op": "retire", "grid": pair.community + "999"}, "grid"),
    }
    assert other, "the demo has neighbouring grids in different communities"
    refused["merge across communities"] = ({"op": "merge", "grid": pair.a, "with": [other]},
                                           "merge")
    refused["merge with itself"] = ({"op": "merge", "grid": pair.a, "with": [pair.a]}, "merge")
    line = shapely.LineString([(grid.centroid.x, south - 0.01), (grid.centroid.x, north + 0.01)])
    refused["split into twins"] = ({"op": "split", "grid": pair.a, "geometry": geojson(line),
                                    "codes": [pair.community + "901"] * 2}, "split")
    refused["restore what"] = ({"op": "restore", "grid": pair.a}, "restore")
    for why, (body, check) in refused.items():
        answer = client.post(f"/api/changesets/{changeset}/operations", json=body,
                             headers=planner)
        assert answer.status_code == 422, (why, answer.text)
        findings = answer.json()["findings"]
        assert findings and findings[0]["check"] == check, (why, findings)
        if check in ("valid", "split"):
            assert findings[0]["geometry"] is not None  # a map can show where
    kept = client.get(f"/api/changesets/{changeset}", headers=planner).json()
    assert kept["operations"] == []  # nothing of the refused operations stays
    repaired = client.post(f"/api/changesets/{changeset}/operations", headers=planner, json={
        "op": "modify", "grid": pair.a, "geometry": geojson(bowtie), "make_valid": True})
    assert repaired.status_code == 201, repaired.text
    checked = client.post(f"/api/changesets/{changeset}/validate", headers=planner).json()
    assert "made_valid" in {f["check"] for f in checked["findings"]}  # reported, not silent


def test_overlaps_gaps_and_the_community_line_stop_a_publish(
        client: TestClient, session: Session, planner: dict[str, str]) -> None:
    pair = neighbours(session)
    version = session.execute(text("SELECT version FROM grid WHERE code = :g"),
                              {"g": pair.a}).scalar_one()
    grown = open_with(client, planner, {"op": "modify", "grid": pair.a,
                                        "geometry": geojson(boundary(session, pair.a, 0.001))})
    refused = client.post(f"/api/changesets/{grown}/publish", headers=planner)
    assert refused.status_code == 422, refused.text
    checks = {f["check"]: f for f in refused.json()["findings"]}
    assert "overlap" in checks and pair.b in str(
        [f["message"] for f in refused.json()["findings"] if f["check"] == "overlap"])
    assert checks["overlap"]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    shrunk = open_with(client, planner, {"op": "modify", "grid": pair.a,
                                         "geometry": geojson(boundary(session, pair.a,
                                                                      -0.0005))})
    findings = client.post(f"/api/changesets/{shrunk}/validate", headers=planner).json()
    gap = [f for f in findings["findings"] if f["check"] == "gap"]
    assert gap and gap[0]["grid"] == pair.community and gap[0]["geometry"]
    assert client.post(f"/api/changesets/{shrunk}/publish",
                       headers=planner).status_code == 422
    assert session.execute(text("SELECT version FROM grid WHERE code = :g"),
                           {"g": pair.a}).scalar_one() == version  # nothing published


def test_a_stale_changeset_is_refused_with_what_changed(
        client: TestClient, session: Session, planner: dict[str, str]) -> None:
    pair = neighbours(session)
    first = open_with(client, planner, {"op": "modify", "grid": pair.a, "name": "东区一格"})
    second = open_with(client, planner, {"op": "modify", "grid": pair.a, "name": "东区二格"})
    assert client.post(f"/api/changesets/{first}/publish", headers=planner).status_code == 200
    stale = client.post(f"/api/changesets/{second}/publish", headers=planner)
    assert stale.status_code == 409, stale.text
    assert stale.json()["findings"][0]["grid"] == pair.a
    assert "based on version" in stale.json()["findings"][0]["message"]
    assert session.execute(text("SELECT name FROM grid WHERE code = :g"),
                           {"g": pair.a}).scalar_one() == "东区一格"


def test_an_active_warning_holds_publishing_until_the_command_centre_overrides(
        client: TestClient, session: Session, planner: dict[str, str], login: Login) -> None:
    from gridgis.alerts import flows

    pair = neighbours(session)
    incoming = drawn_over(session, pair.a)
    flows.issue(session, None, incoming)
    session.commit()
    alert = session.execute(text(
        "SELECT a.id, a.grid_version FROM alert a JOIN grid g ON g.id = a.grid_id "
        "JOIN warning w ON w.id = a.warning_id WHERE w.identifier = :w AND g.code = :g"),
        {"w": incoming.identifier, "g": pair.a}).one()
    changeset = open_with(client, planner, {"op": "modify", "grid": pair.a, "name": "改名"})
    preview = client.get(f"/api/changesets/{changeset}/preview", headers=planner).json()
    assert [a["warning"] for a in preview["alerts"]] == [incoming.identifier]
    held = client.post(f"/api/changesets/{changeset}/publish", headers=planner)
    assert held.status_code == 409 and "override" in held.json()["detail"]
    assert client.post(f"/api/changesets/{changeset}/override",
                       headers=planner).status_code == 403  # not the planner's to decide
    command = login("pl-command", "command")
    assert client.post(f"/api/changesets/{changeset}/override",
                       headers=command).status_code == 200
    assert client.post(f"/api/changesets/{changeset}/publish", headers=planner).status_code == 200
    kept = session.execute(text(
        "SELECT a.grid_version, g.version FROM alert a JOIN grid g ON g.id = a.grid_id "
        "WHERE a.id = :a"), {"a": alert.id}).one()
    assert kept.grid_version == alert.grid_version < kept.version  # made with the old one
    # Retired under the warning, the grid keeps its team until the warning ends.
    login("pl-warned-head", "grid_head", [pair.a])
    parts = free_codes(session, pair.community, 2)
    grid = boundary(session, pair.a)
    inside, (_, south, _, north) = grid.representative_point(), grid.bounds
    line = shapely.LineString([(inside.x, south - 0.01), (inside.x, north + 0.01)])
    pieces = len(shapely.ops.split(shapely.unary_union(grid), line).geoms)
    codes = [f"{parts[0][:12]}{int(parts[0][12:]) + k:03d}" for k in range(pieces)]
    split = open_with(client, planner, {"op": "split", "grid": pair.a,
                                        "geometry": geojson(line), "codes": codes})
    assert client.post(f"/api/changesets/{split}/override", headers=command).status_code == 200
    assert client.post(f"/api/changesets/{split}/publish", headers=planner).status_code == 200
    teams = session.execute(text(
        "SELECT g.code FROM app_user_grid ug JOIN app_user u ON u.id = ug.app_user_id "
        "JOIN grid g ON g.id = ug.grid_id WHERE u.username = 'pl-warned-head' ORDER BY g.code"
        )).scalars().all()
    assert teams == sorted([pair.a, *codes])  # the old grid (its checklist) and the parts


def test_an_earlier_version_is_restored_by_a_new_changeset(
        client: TestClient, session: Session, planner: dict[str, str]) -> None:
    pair = neighbours(session)
    original = session.execute(text("SELECT version, ST_AsEWKB(boundary) FROM grid "
                                     "WHERE code = :g"), {"g": pair.a}).one()
    original_name = session.execute(text("SELECT name FROM grid WHERE code = :g"),
                                    {"g": pair.a}).scalar_one()
    renamed = open_with(client, planner, {"op": "modify", "grid": pair.a, "name": "临时名"})
    assert client.post(f"/api/changesets/{renamed}/publish", headers=planner).status_code == 200
    back = open_with(client, planner, {"op": "restore", "grid": pair.a,
                                       "version": original.version})
    assert client.post(f"/api/changesets/{back}/publish", headers=planner).status_code == 200
    now = session.execute(text("SELECT name, version, ST_Equals(boundary, :b) FROM grid "
                               "WHERE code = :g"), {"g": pair.a, "b": original[1]}).one()
    assert now.version == original.version + 2 and now[2]
    assert now.name == original_name


def test_only_planners_change_grids(client: TestClient, session: Session,
                                   login: Login) -> None:
    pair = neighbours(session)
    head = login("pl-head2", "grid_head", [pair.a])
    answer = client.post("/api/changesets", json={"reason": "我想改"}, headers=head)
    assert answer.status_code == 403


def test_a_grids_file_becomes_a_changeset(session: Session, tmp_path: Path,
                                          login: Login) -> None:
    """``import grids FILE --changeset``: a file's grids as operations, validated, published."""
    from gridgis.planning import files

    pair = neighbours(session)
    login("pl-file-planner", "planner")
    feature = {"type": "Feature", "geometry": geojson(boundary(session, pair.a)),
               "properties": {"code": pair.a, "name": "文件里的新名字"}}
    path = tmp_path / "grids.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}),
                    encoding="utf-8")
    changeset, findings = files.changeset_from_file(session, "pl-file-planner", path,
                                                    "按文件更新", publish=True)
    assert not [f for f in findings if f["severity"] == "error"]
    assert changeset.state == "published"
    assert session.execute(text("SELECT name FROM grid WHERE code = :g"),
                           {"g": pair.a}).scalar_one() == "文件里的新名字"


def test_a_bad_grids_file_is_refused_on_the_command_line(
        engine: Engine, tmp_path: Path) -> None:
    """A grid reaching into the next community: exit 1, the reason, nothing written."""
    from gridgis import auth

    with Session(engine) as session:
        pair = neighbours(session)
        auth.add_user(session, "pl-cli-planner", "planner", "correct horse battery", [])
        session.commit()
        grown = boundary(session, pair.a, 0.01)
        counts = session.execute(text(
            "SELECT (SELECT count(*) FROM changeset), (SELECT max(version) FROM grid "
            "WHERE code = :g)"), {"g": pair.a}).one()
    path = tmp_path / "grids.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": geojson(grown), "properties": {"code": pair.a}}]}),
        encoding="utf-8")
    done = run_cli("import", "grids", str(path), "--changeset", "--planner", "pl-cli-planner",
                   "--reason", "扩大网格", "--publish")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "outside community" in done.stderr
    without = run_cli("import", "grids", str(path))
    assert without.returncode == 1 and "--changeset" in without.stderr
    dry = run_cli("import", "grids", str(path), "--changeset", "--planner", "pl-cli-planner",
                  "--reason", "试试", "--publish", "--dry-run")
    assert dry.returncode == 1 and "--dry-run" in dry.stderr
    with Session(engine) as session:
        assert session.execute(text(
            "SELECT (SELECT count(*) FROM changeset), (SELECT max(version) FROM grid "
            "WHERE code = :g)"), {"g": pair.a}).one() == counts


def test_a_new_grid_with_households_needs_its_team(
        client: TestClient, session: Session, planner: dict[str, str], login: Login) -> None:
    """Replacing a grid by a new one: without naming a grid team its households would have
    no grid head, which blocks the publish; named, it goes through."""
    pair = neighbours(session)
    [code] = free_codes(session, pair.community, 1)
    area = geojson(boundary(session, pair.a))
    orphaned = open_with(client, planner, {"op": "retire", "grid": pair.a},
                         {"op": "create", "grid": code, "name": "新网格", "geometry": area})
    checked = client.post(f"/api/changesets/{orphaned}/validate", headers=planner).json()
    assert [f["grid"] for f in checked["findings"] if f["check"] == "team"] == [code]
    assert not checked["ok"]
    login("pl-new-head", "grid_head", [pair.b])
    staffed = open_with(client, planner, {"op": "retire", "grid": pair.a},
                        {"op": "create", "grid": code, "name": "新网格", "geometry": area,
                         "heads": ["pl-new-head"]})
    heads = {h["user"]: h["residents"] for h in client.get(
        f"/api/changesets/{staffed}/preview", headers=planner).json()["heads"]}
    assert heads["pl-new-head"] > 0 and heads[f"head-{pair.a}"] == -heads["pl-new-head"]
    published = client.post(f"/api/changesets/{staffed}/publish", headers=planner)
    assert published.status_code == 200, published.text
    assert session.execute(text(
        "SELECT u.username FROM app_user_grid ug JOIN app_user u ON u.id = ug.app_user_id "
        "JOIN grid g ON g.id = ug.grid_id WHERE g.code = :c"), {"c": code}).scalars().all() \
        == ["pl-new-head"]


def test_stale_drawings_and_late_additions_are_caught(
        client: TestClient, session: Session, planner: dict[str, str], login: Login) -> None:
    """An operation drawn on an old version is refused as it is added (409); an operation
    added after the command centre's override needs a new override; a rename moves no
    building."""
    from gridgis.alerts import flows

    pair = neighbours(session)
    version = session.execute(text("SELECT version FROM grid WHERE code = :g"),
                              {"g": pair.a}).scalar_one()
    changeset = open_with(client, planner)
    old = client.post(f"/api/changesets/{changeset}/operations", headers=planner, json={
        "op": "modify", "grid": pair.a, "name": "旧图上的名字", "base_version": version - 1})
    assert old.status_code == 409 and old.json()["findings"][0]["check"] == "stale"
    flows.issue(session, None, drawn_over(session, pair.a))
    flows.issue(session, None, drawn_over(session, pair.b))
    session.commit()
    command = login("pl-command2", "command")
    client.post(f"/api/changesets/{changeset}/operations", headers=planner, json={
        "op": "modify", "grid": pair.a, "name": "新名字", "base_version": version})
    assert client.post(f"/api/changesets/{changeset}/override",
                       headers=command).status_code == 200
    client.post(f"/api/changesets/{changeset}/operations", headers=planner, json={
        "op": "modify", "grid": pair.b, "name": "也改"})
    held = client.post(f"/api/changesets/{changeset}/publish", headers=planner)
    assert held.status_code == 409 and "override" in held.json()["detail"]
    before = session.execute(text("SELECT id, grid_id FROM building ORDER BY id")).all()
    assert client.post(f"/api/changesets/{changeset}/override",
                       headers=command).status_code == 200
    assert client.post(f"/api/changesets/{changeset}/publish", headers=planner).status_code == 200
    assert session.execute(text("SELECT id, grid_id FROM building ORDER BY id")).all() == before


def test_grids_retire_only_through_planning_and_edits_are_in_the_history(
        client: TestClient, session: Session, login: Login) -> None:
    pair = neighbours(session)
    admin = login("pl-admin", "admin")
    version = client.get(f"/api/grids/{pair.a}", headers=admin).headers["etag"]
    retire = client.post(f"/api/grids/{pair.a}/retire", headers={**admin, "If-Match": version})
    assert retire.status_code == 409 and "planning" in retire.json()["detail"]
    renamed = client.patch(f"/api/grids/{pair.a}", json={"name": "管理员改名"},
                           headers={**admin, "If-Match": version})
    assert renamed.status_code == 200, renamed.text
    last = client.get(f"/api/grids/{pair.a}/history", headers=admin).json()[-1]
    assert (last["name"], last["author"], last["changeset"]) == ("管理员改名", "pl-admin", None)
