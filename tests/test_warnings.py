"""Warnings in from CAP 1.2 and typhoon advisories; updates and cancels along the chain."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

Login = Callable[..., dict[str, str]]
CAP = Path(__file__).parent / "fixtures" / "cap"
XML = {"Content-Type": "application/cap+xml"}
ADVISORY = {
    "storm": {"id": "2411", "name": "Yagi", "name_zh": "摩羯"},
    "source": "CMA", "issued": "2024-09-05T09:00:00Z", "level": "red",
    "points": [
        {"time": "2024-09-05T09:00:00Z", "lon": 114.7, "lat": 19.3, "pressure_hpa": 915,
         "wind_ms": 58, "forecast": False,
         "radii_km": {"7": {"ne": 380, "se": 300, "sw": 260, "nw": 350},
                      "10": {"ne": 200, "se": 130, "sw": 100, "nw": 180},
                      "12": {"ne": 120, "se": 90, "sw": 60, "nw": 110}}},
        {"time": "2024-09-06T09:00:00Z", "lon": 110.8, "lat": 19.9, "forecast": True,
         "radii_km": {"7": {"ne": 350, "se": 300, "sw": 250, "nw": 320}}},
    ],
}


def cap_xml(identifier: str, msg_type: str, polygons: list[str], references: str = "",
            level: str = "橙色") -> bytes:
    """A small CAP 1.2 message with one area of some polygons (CAP's lat,lon pairs)."""
    refs = f"<references>{references}</references>" if references else ""
    shapes = "".join(f"<polygon>{p}</polygon>" for p in polygons)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier><sender>test@gridgis</sender>
  <sent>2024-09-05T16:00:00+08:00</sent><status>Actual</status><msgType>{msg_type}</msgType>
  <scope>Public</scope>{refs}
  <info><language>zh-CN</language><category>Met</category><event>台风</event>
    <urgency>Expected</urgency><severity>Severe</severity><certainty>Likely</certainty>
    <parameter><valueName>颜色</valueName><value>{level}</value></parameter>
    <area><areaDesc>test</areaDesc>{shapes}</area>
  </info></alert>""".encode()


def inside(session: Session, code: str) -> str:
    """CAP lat,lon pairs of a polygon just inside one grid (reaching that grid only)."""
    ring = session.execute(text(
        "SELECT ST_AsGeoJSON(ST_ExteriorRing(ST_GeometryN(ST_Buffer(boundary, -0.0003, 2), "
        "1)), 7) FROM grid WHERE code = :c"), {"c": code}).scalar_one()
    return " ".join(f"{lat},{lon}" for lon, lat in json.loads(ring)["coordinates"])


def alerts_of(session: Session, identifier: str) -> dict[str, tuple[int, str, object]]:
    rows = session.execute(text(
        "SELECT g.code, a.id, a.state, a.acknowledged_at FROM alert a JOIN warning w "
        "ON w.id = a.warning_id JOIN grid g ON g.id = a.grid_id WHERE w.identifier = :i"),
        {"i": identifier}).all()
    return {code: (alert_id, state, acked) for code, alert_id, state, acked in rows}


def test_cap_alert_reaches_the_territory(client: TestClient, session: Session,
                                         login: Login) -> None:
    body = client.post("/api/warnings", content=(CAP / "typhoon_alert.xml").read_bytes(),
                       headers={**XML, **login("cc1", "command")})
    assert body.status_code == 200, body.text
    grids = session.execute(text("SELECT count(*) FROM grid")).scalar_one()
    assert body.json()["grids"] == grids  # the geocode 440402 is the whole territory
    level = session.execute(text("SELECT level, level_rank, status FROM warning WHERE "
                                 "identifier = 'CN-GD-ZH-20240905-TY2411-001'")).one()
    assert tuple(level) == ("orange", 3, "actual")


def test_exercise_is_marked_all_the_way(client: TestClient, session: Session,
                                        login: Login) -> None:
    body = client.post("/api/warnings", headers={**XML, **login("cc2", "command")},
                       content=(CAP / "typhoon_exercise_prefixed.xml").read_bytes())
    assert body.status_code == 200, body.text
    flags = set(session.execute(text(
        "SELECT o.payload->>'exercise' FROM outbox o JOIN alert a ON a.id = o.alert_id "
        "JOIN warning w ON w.id = a.warning_id WHERE w.status = 'exercise'")).scalars())
    assert flags == {"true"}


def test_update_adds_keeps_and_stands_down(client: TestClient, session: Session,
                                           login: Login) -> None:
    headers = {**XML, **login("cc3", "command")}
    a, b = session.execute(text("SELECT code FROM grid ORDER BY code LIMIT 2")).scalars()
    refs = "test@gridgis,{},2024-09-05T16:00:00+08:00"
    first = client.post("/api/warnings", headers=headers,
                        content=cap_xml("T-1", "Alert", [inside(session, a)])).json()
    assert first["grids"] == 1
    alert_a = alerts_of(session, "T-1")[a][0]
    session.execute(text("UPDATE alert SET acknowledged_at = now() WHERE id = :i"),
                    {"i": alert_a})
    grown = client.post("/api/warnings", headers=headers, content=cap_xml(
        "T-2", "Update", [inside(session, a), inside(session, b)], refs.format("T-1"))).json()
    assert (grown["added"], grown["unchanged"], grown["stood_down"]) == (1, 1, 0)
    now = alerts_of(session, "T-2")
    assert now[a][0] == alert_a and now[a][2] is not None  # same row, still acknowledged
    raised = client.post("/api/warnings", headers=headers, content=cap_xml(
        "T-3", "Update", [inside(session, b)], refs.format("T-2"), level="红色")).json()
    assert (raised["added"], raised["changed"], raised["stood_down"]) == (0, 1, 1)
    assert alerts_of(session, "T-3")[a][1] == "stood_down"
    kinds = dict(session.execute(text(
        "SELECT kind, count(DISTINCT alert_id) FROM outbox WHERE payload->>'warning' = 'T-3' "
        "GROUP BY kind")).all())
    assert kinds == {"update": 1, "stand_down": 1}
    cancelled = client.post("/api/warnings", headers=headers, content=cap_xml(
        "T-4", "Cancel", [inside(session, b)], refs.format("T-3"))).json()
    assert cancelled["grids"] == 0 and cancelled["stood_down"] == 1
    assert {state for _, state, _ in alerts_of(session, "T-4").values()} == {"stood_down"}


def test_update_of_an_unknown_warning_writes_nothing(client: TestClient, session: Session,
                                                     login: Login) -> None:
    before = session.execute(text("SELECT count(*) FROM warning")).scalar_one()
    stray = cap_xml("T-9", "Update", ["22.1,113.5 22.1,113.6 22.2,113.6 22.1,113.5"],
                    references="test@gridgis,NOPE,2024-09-05T16:00:00+08:00")
    answer = client.post("/api/warnings", content=stray,
                         headers={**XML, **login("cc4", "command")})
    assert answer.status_code == 422 and "unknown warning" in answer.text
    assert session.execute(text("SELECT count(*) FROM warning")).scalar_one() == before


def test_the_same_identifier_twice_is_refused(client: TestClient, login: Login) -> None:
    headers = {**XML, **login("cc5", "command")}
    body = (CAP / "typhoon_alert.xml").read_bytes()
    assert client.post("/api/warnings", content=body, headers=headers).status_code == 200
    again = client.post("/api/warnings", content=body, headers=headers)
    assert again.status_code == 409 and "received already" in again.text


@pytest.mark.parametrize("name", ["bad_billion_laughs.xml", "bad_external_entity.xml",
                                  "bad_polygon_not_closed.xml", "bad_malformed.xml"])
def test_bad_cap_is_refused(client: TestClient, login: Login, name: str) -> None:
    answer = client.post("/api/warnings", content=(CAP / name).read_bytes(),
                         headers={**XML, **login("cc6", "command")})
    assert answer.status_code == 422


def test_advisory_reaches_hengqin_with_a_gale_eta(client: TestClient, session: Session,
                                                  login: Login) -> None:
    answer = client.post("/api/warnings", json=ADVISORY, headers=login("cc7", "command"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["grids"] > 0
    assert {t["tier"] for t in body["targets"]} == {"gale"}  # R10/R12 stay far south
    etas = [t["gale_eta"] for t in body["targets"]]
    assert all(etas) and min(etas).replace("+00:00", "Z") >= "2024-09-05T09:00:00Z"
    tiers = set(session.execute(text(
        "SELECT DISTINCT tier FROM warning_area wa JOIN warning w ON w.id = wa.warning_id "
        "WHERE w.storm_id = '2411'")).scalars())
    assert tiers == {"gale", "storm", "hurricane"}
    later = json.loads(json.dumps(ADVISORY))
    later["issued"] = "2024-09-05T12:00:00Z"
    follow = client.post("/api/warnings", json=later, headers=login("cc8", "command")).json()
    assert follow["added"] == 0 and follow["unchanged"] + follow["changed"] == body["grids"]
