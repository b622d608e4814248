"""Warnings from a drawn area: targeting in PostGIS, alerts and outbox in one transaction."""

import json
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

Login = Callable[..., dict[str, str]]
WRITTEN = ("warning", "warning_area", "alert", "outbox")


def counts(session: Session) -> dict[str, int]:
    return {t: session.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in WRITTEN}


def area_of(session: Session, sql: str, **params: object) -> dict[str, object]:
    return json.loads(session.execute(text(sql), params).scalar_one())


@pytest.fixture
def three_grids(session: Session) -> tuple[list[str], dict[str, object]]:
    """Three grids of one community and a drawn area just inside their union."""
    codes = list(session.execute(text(
        "SELECT code FROM grid ORDER BY id LIMIT 3")).scalars())
    area = area_of(session, "SELECT ST_AsGeoJSON(ST_Buffer(ST_Union(boundary), -0.0002, 2), 7) "
                   "FROM grid WHERE code = ANY(:c)", c=codes)
    return codes, area


def test_dry_run_names_the_grids_and_writes_nothing(client: TestClient, session: Session,
                                                    login: Login, three_grids: tuple) -> None:
    codes, area = three_grids
    before = counts(session)
    answer = client.post("/api/warnings?dry_run=true", headers=login("duty", "command"),
                         json={"area": area, "level": "orange", "headline": "演练"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["dry_run"] and body["identifier"] is None
    assert sorted(t["code"] for t in body["targets"]) == sorted(codes)
    assert counts(session) == before


def test_issue_writes_alerts_and_outbox_together(client: TestClient, session: Session,
                                                 login: Login, three_grids: tuple) -> None:
    codes, area = three_grids
    body = client.post("/api/warnings", headers=login("duty2", "command"),
                       json={"area": area, "level": "signal 8"}).json()
    assert body["grids"] == 3
    alerts = session.execute(text(
        "SELECT g.code, a.tier, a.coverage, a.residents, t.residents, a.vulnerable, "
        "t.vulnerable FROM alert a JOIN warning w ON w.id = a.warning_id "
        "JOIN grid g ON g.id = a.grid_id JOIN grid_total t ON t.grid_id = a.grid_id "
        "WHERE w.identifier = :i"), {"i": body["identifier"]}).all()
    assert sorted(a[0] for a in alerts) == sorted(codes)
    assert all(a[1] == "area" and 0.9 < a[2] <= 1.0 for a in alerts)
    assert all(a[3] == a[4] and a[5] == a[6] for a in alerts)  # the kept totals
    assert sum(a[3] for a in alerts) == body["residents"] > 0
    expected = session.execute(text(
        "SELECT count(*) + count(u.phone) + count(u.email) FROM app_user u JOIN app_user_grid "
        "ug ON ug.app_user_id = u.id JOIN grid g ON g.id = ug.grid_id WHERE g.code = ANY(:c) "
        "AND u.active"), {"c": codes}).scalar_one()
    outbox = session.execute(text(
        "SELECT count(*), count(DISTINCT o.idempotency_key), min(o.state), max(o.state) "
        "FROM outbox o "
        "JOIN alert a ON a.id = o.alert_id JOIN warning w ON w.id = a.warning_id "
        "WHERE w.identifier = :i"), {"i": body["identifier"]}).one()
    assert outbox == (expected, expected, "queued", "queued")
    level = session.execute(text("SELECT level, level_rank FROM warning WHERE identifier = :i"),
                            {"i": body["identifier"]}).one()
    assert level[1] == 3


def test_inclusion_rule_by_share(client: TestClient, session: Session, login: Login) -> None:
    code = session.execute(text("SELECT code FROM grid ORDER BY id LIMIT 1")).scalar_one()
    half = area_of(session, """
        SELECT ST_AsGeoJSON(ST_Intersection(boundary, ST_MakeEnvelope(ST_XMin(boundary) - 1,
            ST_YMin(boundary) - 1, (ST_XMin(boundary) + ST_XMax(boundary)) / 2,
            ST_YMax(boundary) + 1, 4326)), 7) FROM grid WHERE code = :c""", c=code)
    headers = login("duty3", "command")
    share = next(t["share"] for t in client.post(
        "/api/warnings?dry_run=true", headers=headers,
        json={"area": half, "level": "yellow"}).json()["targets"] if t["code"] == code)
    assert 0.1 < share < 0.9
    above = client.post(f"/api/warnings?dry_run=true&min_share={share + 0.05}",
                        headers=headers, json={"area": half, "level": "yellow"}).json()
    assert code not in {t["code"] for t in above["targets"]}


def test_area_outside_the_territory_reaches_nobody(client: TestClient, login: Login) -> None:
    far = {"type": "Polygon", "coordinates": [[[120, 30], [120.1, 30], [120.1, 30.1],
                                                [120, 30.1], [120, 30]]]}
    body = client.post("/api/warnings", headers=login("duty4", "command"),
                       json={"area": far, "level": "blue"}).json()
    assert body["grids"] == 0 and "outside the territory" in body["message"]
    assert body["identifier"]  # accepted all the same


@pytest.mark.parametrize(("area", "level", "reason"), [
    ({"type": "Polygon", "coordinates": [[[113.5, 22.1], [113.51, 22.11], [113.51, 22.1],
                                          [113.5, 22.11], [113.5, 22.1]]]}, "red",
     "Self-intersection"),
    ({"type": "Polygon", "coordinates": [[[113.5, 22.1], [113.51, 22.1], [113.5, 22.1]]]},
     "red", "area"),
    ({"type": "Polygon", "coordinates": [[[22.1, 113.5], [22.2, 113.5], [22.2, 113.6],
                                          [22.1, 113.5]]]}, "red", "swapped"),
    ({"type": "Polygon", "coordinates": [[[113.5, 22.1], [113.51, 22.1], [113.51, 22.11],
                                          [113.5, 22.1]]]}, "purple", "level"),
])
def test_bad_warnings_write_nothing(client: TestClient, session: Session, login: Login,
                                    area: dict[str, object], level: str, reason: str) -> None:
    before = counts(session)
    answer = client.post("/api/warnings", headers=login("duty5", "command"),
                         json={"area": area, "level": level})
    assert answer.status_code == 422
    assert reason in answer.text
    assert counts(session) == before


def test_only_the_command_centre_issues(client: TestClient, login: Login,
                                        three_grids: tuple) -> None:
    _, area = three_grids
    assert client.post("/api/warnings", headers=login("pl", "planner"),
                       json={"area": area, "level": "red"}).status_code == 403
    assert client.post("/api/warnings", json={"area": area, "level": "red"}).status_code == 401
