"""One row at a time: ETag/If-Match, roles and grid scope, retiring, residents' lifecycle."""

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

Login = Callable[..., dict[str, str]]


def first(session: Session, sql: str, **params: object) -> str:
    return str(session.execute(text(sql), params).scalar_one())


@pytest.fixture
def two_grids(session: Session) -> tuple[str, str]:
    """Two neighbouring grids (their codes)."""
    row = session.execute(text(
        "SELECT a.code, b.code FROM grid a JOIN grid b ON a.id < b.id "
        "AND ST_Touches(a.boundary, b.boundary) AND "
        "ST_Length(ST_Intersection(a.boundary, b.boundary)::geography) > 200 "
        "ORDER BY a.id, b.id LIMIT 1")).one()
    return str(row[0]), str(row[1])


def empty_building(session: Session, grid: str) -> str:
    return first(session, "SELECT b.code FROM building b JOIN grid g ON g.id = b.grid_id "
                 "WHERE g.code = :g AND NOT EXISTS (SELECT 1 FROM resident r WHERE "
                 "r.building_id = b.id) AND NOT EXISTS (SELECT 1 FROM station s WHERE "
                 "s.building_id = b.id) ORDER BY b.id LIMIT 1", g=grid)


def test_stale_version_is_refused_with_the_current_row(client: TestClient, session: Session,
                                                       login: Login) -> None:
    planner = login("p1", "planner")
    code = first(session, "SELECT code FROM building ORDER BY id LIMIT 1")
    read = client.get(f"/api/buildings/{code}", headers=planner)
    assert read.status_code == 200 and read.headers["ETag"] == '"1"'
    first_edit = client.patch(f"/api/buildings/{code}", json={"floors": 12},
                              headers={**planner, "If-Match": read.headers["ETag"]})
    assert first_edit.status_code == 200 and first_edit.headers["ETag"] == '"2"'
    stale = client.patch(f"/api/buildings/{code}", json={"floors": 3},
                         headers={**planner, "If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.json()["current"]["properties"]["floors"] == 12
    assert client.patch(f"/api/buildings/{code}", json={"floors": 3},
                        headers=planner).status_code == 428
    assert first(session, "SELECT floors FROM building WHERE code = :c", c=code) == "12"


@pytest.mark.parametrize(("layer", "body", "allowed"), [
    ("admin-units", {"name_en": "Renamed"}, {"admin"}),
    ("grids", {"households": 321}, {"admin", "planner"}),
    ("buildings", {"floors": 7}, {"admin", "planner", "grid_head", "grid_worker"}),
    ("stations", {"contact_phone": "13800000000"}, {"admin", "planner"}),
    ("shelters", {"capacity": 555}, {"admin", "planner", "command"}),
])
@pytest.mark.parametrize("role", ["admin", "planner", "command", "grid_head", "grid_worker"])
def test_who_may_change_what(client: TestClient, session: Session, login: Login, layer: str,
                             body: dict[str, object], allowed: set[str], role: str) -> None:
    table = {"admin-units": "admin_unit"}.get(layer, layer.rstrip("s"))
    code = first(session, f"SELECT code FROM {table} ORDER BY id LIMIT 1")
    own_grid = first(session, "SELECT g.code FROM grid g JOIN building b ON b.grid_id = g.id "
                     "WHERE b.code = :c UNION ALL SELECT min(code) FROM grid LIMIT 1", c=code)
    headers = login(f"{role}_{layer}", role, [own_grid] if role.startswith("grid_") else [])
    answer = client.patch(f"/api/{layer}/{code}", json=body,
                          headers={**headers, "If-Match": '"1"'})
    assert answer.status_code == (200 if role in allowed else 403), answer.text
    assert client.patch(f"/api/{layer}/{code}", json=body,
                        headers={"If-Match": '"1"'}).status_code == 401


def test_grid_head_cannot_move_a_building_out_of_their_grid(
        client: TestClient, session: Session, login: Login, two_grids: tuple[str, str]) -> None:
    mine, theirs = two_grids
    head = login("head_mine", "grid_head", [mine])
    code = empty_building(session, mine)
    elsewhere = session.execute(text(
        "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(boundary) p FROM grid "
        "WHERE code = :g) s"), {"g": theirs}).one()
    moved = client.patch(f"/api/buildings/{code}", headers={**head, "If-Match": '"1"'},
                         json={"location": {"type": "Point", "coordinates": list(elsewhere)},
                               "footprint": None})
    assert moved.status_code == 403
    assert first(session, "SELECT g.code FROM building b JOIN grid g ON g.id = b.grid_id "
                 "WHERE b.code = :c", c=code) == mine
    other = login("head_theirs", "grid_head", [theirs])
    assert client.patch(f"/api/buildings/{code}", json={"floors": 2},
                        headers={**other, "If-Match": '"1"'}).status_code == 403


def test_footprint_across_a_boundary_goes_to_the_bigger_share(
        client: TestClient, session: Session, login: Login, two_grids: tuple[str, str]) -> None:
    a, b = two_grids
    footprint = session.execute(text("""
        WITH e AS (SELECT ST_LineInterpolatePoint(ST_LineMerge(ST_Intersection(ga.boundary,
                     gb.boundary)), 0.5) p, ga.boundary ba, gb.boundary bb
                   FROM grid ga, grid gb WHERE ga.code = :a AND gb.code = :b)
        SELECT ST_AsGeoJSON(ST_Union(ST_Intersection(ST_Buffer(p, 0.0003), bb),
                                     ST_Intersection(ST_Buffer(p, 0.0001), ba))) FROM e"""),
        {"a": a, "b": b}).scalar_one()
    import json

    created = client.post("/api/buildings", headers=login("p2", "planner"), json={
        "code": "NEW-1", "use": "residential", "floors": 3, "footprint": json.loads(footprint)})
    assert created.status_code == 201, created.text
    planner = login("p3", "planner")
    feature = client.get("/api/buildings/NEW-1", headers=planner).json()
    assert feature["properties"]["grid_code"] == b
    inside_a = session.execute(text(
        "SELECT ST_AsGeoJSON(ST_Buffer(ST_PointOnSurface(boundary), 0.0001, 4)) FROM grid "
        "WHERE code = :a"), {"a": a}).scalar_one()
    moved = client.patch("/api/buildings/NEW-1", json={"footprint": json.loads(inside_a)},
                         headers={**planner, "If-Match": '"1"'})
    assert moved.status_code == 200, moved.text
    feature = client.get("/api/buildings/NEW-1", headers=planner).json()
    assert feature["properties"]["grid_code"] == a


@pytest.mark.parametrize(("body", "reason"), [
    ({"code": "X-1", "use": "residential"}, "needs a location"),
    ({"code": "X-2", "use": "castle", "location": {"type": "Point", "coordinates": [113.5, 22.1]}},
     "use"),
    ({"code": "X-3", "use": "residential",
      "location": {"type": "Point", "coordinates": [22.12, 113.52]}}, "lat -90..90"),
    ({"code": "X-4", "use": "residential",
      "location": {"type": "Point", "coordinates": [100.0, 10.0]}}, "lies in no grid"),
    ({"code": "X-5", "use": "residential", "footprint": {"type": "Polygon", "coordinates": [
        [[113.5, 22.1], [113.51, 22.11], [113.51, 22.1], [113.5, 22.11], [113.5, 22.1]]]}},
     "Self-intersection"),
])
def test_bad_buildings_are_refused(client: TestClient, session: Session, login: Login,
                                   body: dict[str, object], reason: str) -> None:
    before = first(session, "SELECT count(*) FROM building")
    answer = client.post("/api/buildings", json=body, headers=login("p4", "planner"))
    assert answer.status_code == 422
    assert reason in answer.text
    assert first(session, "SELECT count(*) FROM building") == before


def test_retire_keeps_the_row_and_refuses_while_people_live_there(
        client: TestClient, session: Session, login: Login) -> None:
    planner = login("p5", "planner")
    grid = first(session, "SELECT code FROM grid ORDER BY id LIMIT 1")
    lived_in = first(session, "SELECT b.code FROM building b JOIN resident r ON "
                     "r.building_id = b.id WHERE r.moved_out_at IS NULL LIMIT 1")
    refused = client.post(f"/api/buildings/{lived_in}/retire",
                          headers={**planner, "If-Match": '"1"'})
    assert refused.status_code == 409 and "residents" in refused.text
    empty = empty_building(session, grid)
    assert client.post(f"/api/buildings/{empty}/retire",
                       headers={**planner, "If-Match": '"1"'}).status_code == 200
    assert client.get(f"/api/buildings/{empty}", headers=planner).status_code == 404
    assert first(session, "SELECT retired_at IS NOT NULL FROM building WHERE code = :c",
                 c=empty) == "True"


def test_residents_lifecycle_keeps_history(client: TestClient, session: Session,
                                           login: Login, two_grids: tuple[str, str]) -> None:
    mine, theirs = two_grids
    head = login("head_life", "grid_head", [mine])
    home = first(session, "SELECT b.code FROM building b JOIN grid g ON g.id = b.grid_id "
                 "WHERE g.code = :g ORDER BY b.id LIMIT 1", g=mine)
    other_home = first(session, "SELECT b.code FROM building b JOIN grid g ON g.id = b.grid_id "
                       "WHERE g.code = :g ORDER BY b.id DESC LIMIT 1", g=mine)
    registered = client.post("/api/residents", headers=head, json={
        "building_code": home, "name": "陈新来", "residency": "migrant", "birth_year": 1990,
        "phone": "13912345678", "vulnerabilities": ["pregnant"]})
    assert registered.status_code == 201, registered.text
    code = registered.json()["code"]
    version = {"If-Match": registered.headers["ETag"]}
    updated = client.patch(f"/api/residents/{code}", headers={**head, **version},
                           json={"phone": "13900000000"})
    assert updated.status_code == 200
    out = client.post(f"/api/residents/{code}/move-out",
                      headers={**head, "If-Match": updated.headers["ETag"]})
    assert out.status_code == 200
    listed = client.get("/api/residents", params={"within": mine, "limit": 5000},
                        headers=head).json()
    assert code not in {f["id"] for f in listed["features"]}
    wrong_grid = first(session, "SELECT b.code FROM building b JOIN grid g ON g.id = b.grid_id "
                       "WHERE g.code = :g LIMIT 1", g=theirs)
    assert client.post(f"/api/residents/{code}/move-in", json={"building_code": wrong_grid},
                       headers={**head, "If-Match": out.headers["ETag"]}).status_code == 403
    back = client.post(f"/api/residents/{code}/move-in", json={"building_code": other_home},
                       headers={**head, "If-Match": out.headers["ETag"]})
    assert back.status_code == 200, back.text
    events = client.get(f"/api/residents/{code}/history", headers=head).json()
    assert [e["kind"] for e in events] == ["registered", "updated", "moved_out", "moved_in"]
    assert events[-1]["building_code"] == other_home and events[0]["by"] == "head_life"
    assert first(session, "SELECT count(*) FROM resident WHERE code = :c", c=code) == "1"


def test_residents_writes_are_scoped(client: TestClient, session: Session, login: Login,
                                     two_grids: tuple[str, str]) -> None:
    mine, theirs = two_grids
    resident = first(session, "SELECT r.code FROM resident r JOIN building b ON "
                     "b.id = r.building_id JOIN grid g ON g.id = b.grid_id WHERE g.code = :g "
                     "AND r.moved_out_at IS NULL LIMIT 1", g=theirs)
    head = login("head_scope", "grid_head", [mine])
    assert client.patch(f"/api/residents/{resident}", json={"phone": "13800000000"},
                        headers={**head, "If-Match": '"1"'}).status_code == 404
    command = login("cmd_scope", "command")
    assert client.patch(f"/api/residents/{resident}", json={"phone": "13800000000"},
                        headers={**command, "If-Match": '"1"'}).status_code == 403
    building = first(session, "SELECT b.code FROM building b JOIN grid g ON g.id = b.grid_id "
                     "WHERE g.code = :g LIMIT 1", g=theirs)
    assert client.post("/api/residents", headers=head, json={
        "building_code": building, "name": "越权", "residency": "registered"}).status_code == 403


def test_summaries_match_the_counts(client: TestClient, session: Session, login: Login) -> None:
    reader = login("cmd_sum", "command")
    grid = first(session, "SELECT code FROM grid ORDER BY id LIMIT 1")
    body = client.get(f"/api/grids/{grid}/summary", headers=reader).json()
    residents = session.execute(text(
        "SELECT r.residency, count(*) FROM resident r JOIN building b ON b.id = r.building_id "
        "JOIN grid g ON g.id = b.grid_id WHERE g.code = :g AND r.moved_out_at IS NULL "
        "GROUP BY 1"), {"g": grid}).all()
    assert body["residents_by_residency"] == {k: v for k, v in residents}
    district = first(session, "SELECT code FROM admin_unit WHERE level = 'district'")
    whole = client.get(f"/api/admin-units/{district}/summary", headers=reader).json()
    assert whole["grids"] == int(first(session, "SELECT count(*) FROM grid"))
    assert sum(whole["stations_by_level"].values()) == int(
        first(session, "SELECT count(*) FROM station"))
    assert whole["shelter_capacity"] == int(first(session, "SELECT sum(capacity) FROM shelter"))
    assert client.get("/api/grids/999999999999999/summary", headers=reader).status_code == 404
