"""Hostile input (issue 9): every geometry, track and CAP message of the corpora in
``tests/hostile/``, sent to every endpoint that takes one, is refused with a 4xx whose
message says what is wrong, within TIME_LIMIT_S and MEMORY_LIMIT_MB, and nothing is written.
A clockwise ring is the one case accepted: it is stored turned round (RFC 7946).
"""

import json
import re
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from gridgis import auth
from tests.conftest import requests_in
from tests.hostile import cap, geometries, tracks
from tests.hostile.geometries import Case

TIME_LIMIT_S = 5.0
MEMORY_LIMIT_MB = 512
GRID = "440402100001001"  # the first hengqin grid; the corpus' square lies inside it
NEW_BUILDING = f"{GRID}-9901"
JSON = {"Content-Type": "application/json"}
CLEAR_REFS = Path("/proc/self/clear_refs")  # Linux: writing 5 resets the memory high-water mark
TRACEMALLOC_SLOWDOWN = 4  # where tracemalloc measures memory instead, it slows allocation so
# Known faults, (test, case) -> why: each marked a strict xfail, so a fix is noticed.
KNOWN: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Places:
    """Codes the requests name: one of the grid's buildings, free grid codes beside it."""

    building: str
    building_version: int
    free_grids: tuple[str, str]


@pytest.fixture(scope="module")
def app_client(engine: Engine) -> Iterator[TestClient]:
    """One app for the module. conftest's ``client`` makes one per test, and FastAPI's
    routers keep every app they were included in alive: some 300 of them would leave the
    garbage collector millions of objects to walk, and a test would take ten times longer."""
    from gridgis.main import create_app

    with TestClient(create_app()) as test_client:
        yield test_client


@pytest.fixture
def client(app_client: TestClient, session: Session) -> Iterator[TestClient]:
    """The module's app, every request using the test's rolled-back session (as conftest's)."""
    with requests_in(app_client.app, session):  # type: ignore[arg-type]
        yield app_client


@pytest.fixture(scope="module")
def admin(engine: Engine) -> Iterator[dict[str, str]]:
    """A bearer header of an admin (who may use every endpoint here), committed once for the
    module: conftest's ``login`` for each test would take two minutes (Argon2)."""
    with Session(engine) as session:
        user = auth.add_user(session, "hostile-admin", "admin", "correct horse battery", [])
        token, _ = auth.issue_token(session, user)
        session.commit()
        user_id = user.id
    yield {"Authorization": f"Bearer {token}"}
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM auth_token WHERE app_user_id = :u"), {"u": user_id})
        conn.execute(text("DELETE FROM app_user WHERE id = :u"), {"u": user_id})


@pytest.fixture(scope="module")
def places(engine: Engine) -> Places:
    with engine.connect() as conn:
        building, version = conn.execute(text(
            "SELECT b.code, b.version FROM building b JOIN grid g ON g.id = b.grid_id "
            "WHERE g.code = :g ORDER BY b.id LIMIT 1"), {"g": GRID}).one()
        last = conn.execute(text("SELECT max(code) FROM grid WHERE code LIKE :c || '___'"),
                            {"c": GRID[:12]}).scalar_one()
    return Places(building, version, (str(int(last) + 1), str(int(last) + 2)))


def writes(session: Session) -> dict[str, tuple[int, int, int]]:
    """Rows inserted, updated and deleted in each of our tables by the test's transaction so
    far, rolled-back savepoints included: stricter than counting rows, and instant."""
    return {table: (inserted, updated, deleted)
            for table, inserted, updated, deleted in session.execute(text(
                "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_xact_user_tables "
                "WHERE schemaname = 'public'"))}


Request = Callable[[], httpx.Response]  # a request ready to send


def reset_peak_memory() -> bool:
    """Reset the process's peak resident memory to what it holds now; False where Linux's
    /proc does not let it."""
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def memory_kb(field: str) -> int:
    """Return a figure of /proc/self/status (VmRSS: resident now, VmHWM: its peak), in kB."""
    line = next(line for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith(f"{field}:"))
    return int(line.split()[1])


def measured(send: Request) -> tuple[httpx.Response, float, float]:
    """Send; return the answer, the seconds it took and how far memory rose meanwhile (MB).

    On Linux, the process's resident memory: its high-water mark is reset first, so what
    GEOS, GDAL and numpy allocate counts with Python's. Elsewhere tracemalloc, which sees
    Python's allocations only and slows them (the time is scaled back by its slowdown)."""
    if reset_peak_memory():
        before_kb = memory_kb("VmRSS")
        started = time.perf_counter()
        answer = send()
        took_s = time.perf_counter() - started
        return answer, took_s, (memory_kb("VmHWM") - before_kb) / 1024
    tracemalloc.start()
    try:
        started = time.perf_counter()
        answer = send()
        took_s = (time.perf_counter() - started) / TRACEMALLOC_SLOWDOWN
        return answer, took_s, tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def assert_refused(session: Session, send: Request, reason: str,
                   status: int | None = None) -> None:
    """Send, and check the answer is a refusal saying ``reason`` (a regular expression),
    quick, small, and that nothing was written, not even for a while."""
    before = writes(session)
    answer, took_s, peak_mb = measured(send)
    assert 400 <= answer.status_code < 500, answer.text[:2000]
    if status is not None:
        assert answer.status_code == status, answer.text[:2000]
    body = answer.json()
    assert body.get("detail"), body
    said = json.dumps(body, ensure_ascii=False)
    assert re.search(reason, said), said[:2000]
    assert "root:" not in said  # nothing of /etc/passwd comes back
    assert took_s < TIME_LIMIT_S, f"{took_s:.1f} s"
    assert peak_mb < MEMORY_LIMIT_MB, f"{peak_mb:.0f} MB"
    assert writes(session) == before


# Endpoints: each prepares the request that sends a geometry's JSON text where it belongs.
Prepare = Callable[[TestClient, dict[str, str], Places, str], Request]


@dataclass(frozen=True)
class Endpoint:
    name: str
    prepare: Prepare
    stored: str = ""  # SQL: is what it stored counter-clockwise? (:new or :building edited)
    reads_files: bool = False  # GDAL reads the geometry (see ``Case.in_file``)


def with_geometry(fields: dict[str, Any], key: str, geometry: str) -> str:
    """JSON text of ``fields`` and ``key``: the geometry's JSON text, spliced in as it is."""
    head = json.dumps(fields)[1:-1]
    return "{" + (f"{head}, " if head else "") + f'"{key}": {geometry}' + "}"


def post(url: str, fields: dict[str, Any], key: str) -> Prepare:
    return lambda client, headers, places, geometry: lambda: client.post(
        url, content=with_geometry(fields, key, geometry), headers={**headers, **JSON})


def edit_building(key: str) -> Prepare:
    return lambda client, headers, places, geometry: lambda: client.patch(
        f"/api/buildings/{places.building}", content=with_geometry({}, key, geometry),
        headers={**headers, **JSON, "If-Match": f'"{places.building_version}"'})


def operation(op: str) -> Prepare:
    """Open a changeset (before the request) and add one operation to it."""
    def prepare(client: TestClient, headers: dict[str, str], places: Places,
                geometry: str) -> Request:
        opened = client.post("/api/changesets", json={"reason": "hostile input"},
                             headers=headers)
        assert opened.status_code == 201, opened.text
        fields: dict[str, Any] = {
            "create": {"op": "create", "grid": places.free_grids[0]},
            "modify": {"op": "modify", "grid": GRID},
            "split": {"op": "split", "grid": GRID, "codes": list(places.free_grids)}}[op]
        return lambda: client.post(f"/api/changesets/{opened.json()['id']}/operations",
                                   content=with_geometry(fields, "geometry", geometry),
                                   headers={**headers, **JSON})
    return prepare


def upload(layer: str, properties: dict[str, Any]) -> Prepare:
    """Import a GeoJSON file of one feature."""
    def prepare(client: TestClient, headers: dict[str, str], places: Places,
                geometry: str) -> Request:
        feature = with_geometry({"type": "Feature", "properties": properties}, "geometry",
                                geometry)
        content = ('{"type": "FeatureCollection", "features": [' + feature + "]}").encode()
        return lambda: client.post(f"/api/import/{layer}", headers=headers, files={
            "file": (f"{layer}.geojson", content, "application/geo+json")})
    return prepare


NEW_BUILDING_CCW = "SELECT ST_IsPolygonCCW(footprint) FROM building WHERE code = :new"
LAST_OPERATION_CCW = ("SELECT ST_IsPolygonCCW(geometry) FROM changeset_operation "
                      "ORDER BY id DESC LIMIT 1")
AREA_ENDPOINTS = [
    Endpoint("drawn warning", post("/api/warnings", {"level": "orange"}, "area"),
             "SELECT ST_IsPolygonCCW(area) FROM warning_area ORDER BY id DESC LIMIT 1"),
    Endpoint("new building", post("/api/buildings", {"code": NEW_BUILDING,
                                                     "use": "residential"}, "footprint"),
             NEW_BUILDING_CCW),
    Endpoint("building footprint", edit_building("footprint"),
             "SELECT ST_IsPolygonCCW(footprint) FROM building WHERE code = :building"),
    Endpoint("grid create", operation("create"), LAST_OPERATION_CCW),
    Endpoint("grid modify", operation("modify"), LAST_OPERATION_CCW),
    Endpoint("building import", upload("buildings", {"code": NEW_BUILDING,
                                                     "use": "residential"}),
             NEW_BUILDING_CCW, reads_files=True),
]
POINT_ENDPOINTS = [
    Endpoint("new shelter", post("/api/shelters", {
        "code": "SH-HOSTILE", "name": "避护场所", "kind": "school", "capacity": 100},
        "location")),
    Endpoint("new station", post("/api/stations", {"code": "ST-HOSTILE", "name": "服务站",
                                                   "level": "post"}, "location")),
    Endpoint("building location", edit_building("location")),
    Endpoint("shelter import", upload("shelters", {"code": "SH-HOSTILE", "name": "避护场所",
                                                   "kind": "school", "capacity": 100}),
             reads_files=True),
]
LINE_ENDPOINTS = [Endpoint("grid split", operation("split"))]


def param(test: str, name: str, *values: Any) -> Any:
    """One case of ``test``, named; expected to fail (strictly) while KNOWN lists it."""
    known = KNOWN.get((test, name))
    marks = [pytest.mark.xfail(strict=True, reason=known)] if known else []
    return pytest.param(*values, id=name, marks=marks)


def named(test: str, items: list[Any]) -> list[Any]:
    return [param(test, item.name, item) for item in items]


def pairs(*groups: tuple[list[Endpoint], list[Case]]) -> Iterator[Any]:
    """Each endpoint with each case of its kind, and the reason its refusal must give."""
    for endpoints, cases in groups:
        for endpoint in endpoints:
            for case in cases:
                reason = case.in_file if endpoint.reads_files else case.reason
                if reason is not None:  # else a file may hold it
                    yield param("geometry", f"{endpoint.name}-{case.name}", endpoint, case,
                                reason or case.reason)


@pytest.mark.parametrize(("endpoint", "case", "reason"), list(pairs(
    (AREA_ENDPOINTS, geometries.AREAS), (POINT_ENDPOINTS, geometries.POINTS),
    (LINE_ENDPOINTS, geometries.LINES))))
def test_hostile_geometry_is_refused(client: TestClient, session: Session,
                                     admin: dict[str, str], places: Places, endpoint: Endpoint,
                                     case: Case, reason: str) -> None:
    request = endpoint.prepare(client, admin, places, case.text())
    assert_refused(session, request, reason)


@pytest.mark.parametrize("case", named("box", geometries.BOXES))
@pytest.mark.parametrize("url", ["/api/grids", "/ogc/collections/grids/items"])
def test_hostile_box_is_refused(client: TestClient, session: Session, admin: dict[str, str],
                                url: str, case: Case) -> None:
    assert_refused(session, lambda: client.get(url, params={"bbox": case.geometry},
                                               headers=admin), case.reason)


@pytest.mark.parametrize("endpoint", named("clockwise", AREA_ENDPOINTS))
def test_clockwise_ring_is_accepted_and_stored_counter_clockwise(
        client: TestClient, session: Session, admin: dict[str, str], places: Places,
        endpoint: Endpoint) -> None:
    before = writes(session)
    answer = endpoint.prepare(client, admin, places, geometries.CLOCKWISE.text())()
    assert 200 <= answer.status_code < 300, answer.text
    stored = session.execute(text(endpoint.stored), {"new": NEW_BUILDING,
                                                     "building": places.building})
    assert stored.scalar_one() is True
    assert writes(session) != before  # what the refusals are checked by sees a write


def test_a_refused_body_is_not_sent_back(client: TestClient, admin: dict[str, str]) -> None:
    junk = "x" * 100_000
    answer = client.post("/api/buildings", headers=admin, json={
        "code": NEW_BUILDING, "use": "residential", "junk": junk})
    assert answer.status_code == 422
    assert junk not in answer.text


@pytest.mark.parametrize("track", named("advisory", tracks.TRACKS))
def test_hostile_advisory_is_refused(client: TestClient, session: Session,
                                     admin: dict[str, str], track: tracks.Track) -> None:
    document = track.text()
    assert_refused(session, lambda: client.post(
        "/api/warnings", content=document, headers={**admin, **JSON}), track.reason)


@pytest.mark.parametrize("message", named("cap", cap.MESSAGES))
def test_hostile_cap_message_is_refused(client: TestClient, session: Session,
                                        admin: dict[str, str], message: cap.Message) -> None:
    body = message.body()
    assert_refused(session, lambda: client.post(
        "/api/warnings", content=body,
        headers={**admin, "Content-Type": "application/cap+xml"}), message.reason,
        message.status)


def test_the_corpus_base_is_accepted(client: TestClient, admin: dict[str, str]) -> None:
    """The corpora break good input: unbroken, it goes through (dry runs)."""
    square = json.dumps(geometries.polygon(geometries.SQUARE))
    drawn = client.post("/api/warnings?dry_run=true", headers={**admin, **JSON},
                        content=with_geometry({"level": "orange"}, "area", square))
    assert drawn.status_code == 200 and drawn.json()["grids"] >= 1, drawn.text
    advisory = client.post("/api/warnings?dry_run=true", headers={**admin, **JSON},
                           content=json.dumps(tracks.ADVISORY))
    assert advisory.status_code == 200, advisory.text
    message = client.post("/api/warnings?dry_run=true", content=cap.alert(),
                          headers={**admin, "Content-Type": "application/cap+xml"})
    assert message.status_code == 200 and message.json()["grids"] >= 1, message.text
