"""The HTTP API: health, layers as GeoJSON with bbox and paging, log-in, guarded residents."""

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from gridgis import auth
from gridgis.models import AuditLog


@pytest.fixture
def reader(login: Callable[..., dict[str, str]]) -> dict[str, str]:
    """Bearer headers of a logged-in user who sees no personal data (a planner)."""
    return login("reader", "planner")


def test_layers_need_a_login(client: TestClient) -> None:
    answer = client.get("/api/grids")
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"


def test_health_reports_postgis(client: TestClient) -> None:
    answer = client.get("/health")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"
    assert answer.json()["postgis"].startswith("3.")


@pytest.mark.parametrize("layer", ["admin-units", "grids", "buildings", "stations", "shelters"])
def test_layers_are_feature_collections(client: TestClient, reader: dict[str, str],
                                        layer: str) -> None:
    answer = client.get(f"/api/{layer}", params={"limit": 5}, headers=reader)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/geo+json"
    body = answer.json()
    assert body["type"] == "FeatureCollection"
    assert body["numberReturned"] == len(body["features"]) == 5
    assert all(f["geometry"]["type"] for f in body["features"])


def test_paging_visits_every_grid_once(client: TestClient, session: Session,
                                       reader: dict[str, str]) -> None:
    total = session.execute(text("SELECT count(*) FROM grid")).scalar_one()
    seen: list[str] = []
    url: str | None = "/api/grids?limit=7"
    while url:
        body = client.get(url, headers=reader).json()
        seen += [f["id"] for f in body["features"]]
        url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
    assert len(seen) == len(set(seen)) == total


def test_bbox_selects_what_it_touches(client: TestClient, session: Session,
                                      reader: dict[str, str]) -> None:
    west, south, east, north = session.execute(text(
        "SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) FROM (SELECT ST_Expand("
        "ST_Envelope(boundary), -0.0001) b FROM grid ORDER BY id LIMIT 1) e")).one()
    expected = set(session.execute(text(
        "SELECT code FROM grid WHERE ST_Intersects(boundary, ST_MakeEnvelope(:w,:s,:e,:n,4326))"
    ), {"w": west, "s": south, "e": east, "n": north}).scalars())
    body = client.get("/api/grids", params={"bbox": f"{west},{south},{east},{north}",
                                            "limit": 5000}, headers=reader).json()
    assert {f["id"] for f in body["features"]} == expected
    assert 1 <= len(expected) < session.execute(text("SELECT count(*) FROM grid")).scalar_one()


def test_filters(client: TestClient, session: Session, reader: dict[str, str]) -> None:
    community = session.execute(text(
        "SELECT code FROM admin_unit WHERE level = 'community' ORDER BY code LIMIT 1")).scalar()
    grids = client.get("/api/grids", params={"within": community, "limit": 5000},
                       headers=reader).json()
    assert grids["features"] and all(
        f["properties"]["community_code"] == community for f in grids["features"])
    posts = client.get("/api/stations", params={"level": "post", "limit": 5000},
                       headers=reader).json()
    assert posts["features"] and {f["properties"]["level"] for f in posts["features"]} == {"post"}


@pytest.mark.parametrize(
    ("query", "reason"),
    [("bbox=1,2,3", "four numbers"), ("bbox=22.1,113.5,22.2,113.6", "swapped"),
     ("bbox=5,5,1,1", "west <= east"), ("limit=100000", "at most"),
     ("cursor=abc", "cursor"), ("bbox=nan,1,2,3", "four numbers"),
     ("cursor=99999999999", "cursor"), ("within=%00", "pattern"), ("kind=%27--", "pattern")],
)
def test_bad_parameters_are_named(client: TestClient, reader: dict[str, str], query: str,
                                  reason: str) -> None:
    answer = client.get(f"/api/grids?{query}", headers=reader)
    assert answer.status_code == 422
    assert reason in str(answer.json()["detail"])


def test_nul_in_a_resident_code_is_refused(client: TestClient, session: Session) -> None:
    headers = _token(client, session, "nul_admin", "admin")
    assert client.get("/api/residents/R%00", headers=headers).status_code == 422


def _token(client: TestClient, session: Session, name: str, role: str,
           grids: list[str] | None = None) -> dict[str, str]:
    auth.add_user(session, name, role, "correct horse battery", grids or [])
    session.commit()
    answer = client.post("/api/auth/token",
                         data={"username": name, "password": "correct horse battery"})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def test_wrong_password_is_refused(client: TestClient, session: Session) -> None:
    _token(client, session, "someone", "admin")
    answer = client.post("/api/auth/token", data={"username": "someone", "password": "nope"})
    assert answer.status_code == 401


def test_residents_need_a_login(client: TestClient) -> None:
    assert client.get("/api/residents").status_code == 401
    bogus = {"Authorization": "Bearer not-a-token"}
    assert client.get("/api/residents", headers=bogus).status_code == 401


def test_grid_head_sees_own_grid_only_and_is_audited(client: TestClient,
                                                     session: Session) -> None:
    grid_a, grid_b = session.execute(text("SELECT code FROM grid ORDER BY id LIMIT 2")).scalars()
    headers = _token(client, session, "head_a", "grid_head", [grid_a])
    body = client.get("/api/residents", params={"limit": 5000}, headers=headers).json()
    assert body["features"]
    assert {f["properties"]["grid_code"] for f in body["features"]} == {grid_a}
    assert "*" not in body["features"][0]["properties"]["name"]
    other = session.execute(text(
        "SELECT r.code FROM resident r JOIN building b ON b.id = r.building_id "
        "JOIN grid g ON g.id = b.grid_id WHERE g.code = :g LIMIT 1"), {"g": grid_b}).scalar()
    assert client.get(f"/api/residents/{other}", headers=headers).status_code == 404
    own = body["features"][0]["id"]
    assert client.get(f"/api/residents/{own}", headers=headers).status_code == 200
    audits = session.query(AuditLog).filter(AuditLog.username == "head_a").order_by(
        AuditLog.id).all()
    assert [(a.action, a.entity_id) for a in audits] == [
        ("read", None), ("read-not-found", other), ("read", own)]
    assert audits[0].detail is not None
    assert audits[0].detail["codes"] == [f["id"] for f in body["features"]]


def test_command_sees_masked_planner_sees_nothing(client: TestClient, session: Session) -> None:
    command = _token(client, session, "duty_officer", "command")
    feature = client.get("/api/residents", params={"limit": 1}, headers=command).json()[
        "features"][0]["properties"]
    assert feature["name"][1:] == "*" * (len(feature["name"]) - 1)
    assert feature["id_number"][4:8] == "****"
    planner = _token(client, session, "planner_1", "planner")
    assert client.get("/api/residents", headers=planner).status_code == 403
    denied = session.query(AuditLog).filter(AuditLog.username == "planner_1").one()
    assert (denied.action, denied.entity_id) == ("access-denied", "GET /api/residents")


def test_short_values_are_masked_all_but_one(client: TestClient, session: Session) -> None:
    command = _token(client, session, "duty_officer_2", "command")
    features = client.get("/api/residents", params={"residency": "foreign", "limit": 50},
                          headers=command).json()["features"]
    assert features
    for feature in features:
        passport = feature["properties"]["id_number"]  # E + 8 digits
        assert passport[0] == "E" and set(passport[1:]) == {"*"}


def test_docs_are_served_locally(client: TestClient) -> None:
    page = client.get("/docs").text
    assert "/static/vendor/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert "cdn." not in page
    assert client.get("/static/vendor/swagger-ui-dist/swagger-ui-bundle.js").status_code == 200
    assert client.get("/openapi.json").json()["info"]["title"] == "gridgis"


def test_buildings_by_risk_flag(client: TestClient, session: Session,
                                reader: dict[str, str]) -> None:
    expected = session.execute(text(
        "SELECT count(*) FROM building WHERE 'coastal' = ANY(risk_flags)")).scalar_one()
    body = client.get("/api/buildings", params={"risk": "coastal", "limit": 5000},
                      headers=reader).json()
    assert expected > 0 and body["numberReturned"] == expected
    assert all("coastal" in f["properties"]["risk_flags"] for f in body["features"])


@pytest.mark.parametrize(("role", "status", "masked", "own_only"), [
    ("admin", 200, False, False), ("grid_head", 200, False, True),
    ("grid_worker", 200, False, True), ("command", 200, True, False),
    ("planner", 403, None, None),
])
def test_residents_read_matrix(client: TestClient, session: Session,
                               login: Callable[..., dict[str, str]], role: str, status: int,
                               masked: bool | None, own_only: bool | None) -> None:
    grid = session.execute(text("SELECT code FROM grid ORDER BY id LIMIT 1")).scalar_one()
    headers = login(f"matrix_{role}", role, [grid] if role.startswith("grid_") else [])
    answer = client.get("/api/residents", params={"limit": 3000}, headers=headers)
    assert answer.status_code == status
    if status != 200:
        return
    features = answer.json()["features"]
    assert features
    assert all(("*" in f["properties"]["name"]) == masked for f in features)
    grids = {f["properties"]["grid_code"] for f in features}
    assert (grids == {grid}) if own_only else len(grids) > 1
    audit = session.execute(text(
        "SELECT detail->>'returned' FROM audit_log WHERE username = :u AND action = 'read'"),
        {"u": f"matrix_{role}"}).scalar_one()
    assert int(audit) == len(features)


def test_log_in_is_slowed_after_repeated_failures(client: TestClient, session: Session) -> None:
    """Five wrong passwords for a user in 15 minutes: the sixth attempt is refused (429)
    even with the right one; every failure is in the audit log; others log in as usual."""
    from gridgis import auth

    auth.add_user(session, "guessed", "command", "correct horse battery", [])
    auth.add_user(session, "bystander", "command", "correct horse battery", [])
    session.commit()
    for _ in range(5):
        wrong = client.post("/api/auth/token", data={"username": "guessed", "password": "x"})
        assert wrong.status_code == 401
    right = client.post("/api/auth/token",
                        data={"username": "guessed", "password": "correct horse battery"})
    assert right.status_code == 429 and right.headers["retry-after"] == "900"
    form = client.post("/login", data={"username": "guessed", "password": "x"})
    assert form.status_code == 429 and "too many failed log-ins" in form.text  # the form too
    assert session.execute(text(
        "SELECT count(*) FROM audit_log WHERE action = 'login_failed' "
        "AND entity_id = 'guessed'")).scalar_one() == 5
    other = client.post("/api/auth/token",
                        data={"username": "bystander", "password": "correct horse battery"})
    assert other.status_code == 200
