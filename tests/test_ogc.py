"""OGC API – Features at /ogc, against the hengqin demo in a real PostGIS.

The last test drives a real uvicorn server with OWSLib, a maintained OGC API client.
"""

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from gridgis import auth
from gridgis.layers import ogc
from gridgis.settings import get_settings
from tests.conftest import free_port

PUBLIC = {"admin-units", "grids", "buildings", "stations", "shelters"}
CORE = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core"
GEOJSON_CONF = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson"


def ogc_app() -> FastAPI:
    from gridgis.main import create_app

    return create_app()


@pytest.fixture
def api(client: TestClient) -> TestClient:
    """The app, every request using the test's rolled-back session."""
    return client


@pytest.fixture
def planner(login: Callable[..., dict[str, str]]) -> dict[str, str]:
    return login("ogc-planner", "planner")


def link(body: dict[str, Any], rel: str) -> str | None:
    return next((item["href"] for item in body["links"] if item["rel"] == rel), None)


def grid_codes(session: Session, where: str = "true", **params: float) -> list[str]:
    return list(session.scalars(text(
        f"SELECT code FROM grid WHERE retired_at IS NULL AND {where} ORDER BY id"), params))


def test_collections_are_the_public_layers_only() -> None:
    assert set(ogc.COLLECTIONS) == PUBLIC
    assert "residents" not in ogc.COLLECTIONS


def test_landing_page_links_everything(api: TestClient, planner: dict[str, str]) -> None:
    answer = api.get("/ogc", headers=planner)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    rels = {item["rel"]: item for item in body["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= set(rels)
    assert rels["service-desc"]["href"].endswith("/openapi.json")
    assert rels["service-desc"]["type"].startswith("application/vnd.oai.openapi+json")
    for rel in ("self", "conformance", "data"):
        assert api.get(rels[rel]["href"], headers=planner).status_code == 200, rel
    paths = api.get(rels["service-desc"]["href"]).json()["paths"]
    assert "/ogc/collections/{collection_id}/items" in paths
    assert api.get("/ogc/", params={"f": "json"}, headers=planner).json() == body


def test_conformance_claims_core_and_geojson(api: TestClient, planner: dict[str, str]) -> None:
    answer = api.get("/ogc/conformance", headers=planner)
    assert answer.headers["content-type"] == "application/json"
    claims = answer.json()["conformsTo"]
    assert CORE in claims and GEOJSON_CONF in claims
    assert not any(c.endswith("/conf/oas30") for c in claims)  # /openapi.json is 3.1


def test_collections_describe_extents_from_the_data(api: TestClient, session: Session,
                                                    planner: dict[str, str]) -> None:
    answer = api.get("/ogc/collections", headers=planner)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    collections = {c["id"]: c for c in answer.json()["collections"]}
    assert set(collections) == PUBLIC
    expected = session.execute(text(
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
        "(SELECT ST_Extent(boundary) AS e FROM grid WHERE retired_at IS NULL) x")).one()
    grids = collections["grids"]
    assert grids["extent"]["spatial"]["bbox"][0] == pytest.approx(list(expected))
    assert grids["extent"]["spatial"]["crs"] == ogc.CRS84
    for collection in collections.values():
        assert collection["itemType"] == "feature"
        assert collection["title"] and collection["description"]
        west, south, east, north = collection["extent"]["spatial"]["bbox"][0]
        assert 113 < west <= east < 114 and 21.9 < south <= north < 22.3  # Hengqin
        items = api.get(link(collection, "items") or "", params={"limit": 1}, headers=planner)
        assert items.status_code == 200


def test_one_collection_and_unknown_ones(api: TestClient, planner: dict[str, str]) -> None:
    body = api.get("/ogc/collections/stations", params={"f": "json"}, headers=planner).json()
    assert body["id"] == "stations"
    assert link(body, "self") == "http://testserver/ogc/collections/stations"
    assert link(body, "items") == "http://testserver/ogc/collections/stations/items"
    for missing in ("residents", "resident", "app_user", "nothing"):
        answer = api.get(f"/ogc/collections/{missing}", headers=planner)
        assert answer.status_code == 404, missing
        assert api.get(f"/ogc/collections/{missing}/items", headers=planner).status_code == 404


def test_paging_by_offset_visits_every_grid_once(api: TestClient, session: Session,
                                                  planner: dict[str, str]) -> None:
    expected = grid_codes(session)
    seen: list[str] = []
    url: str | None = "/ogc/collections/grids/items?limit=15"
    pages: list[dict[str, Any]] = []
    while url:
        answer = api.get(url, headers=planner)
        assert answer.headers["content-type"] == "application/geo+json"
        body = answer.json()
        pages.append(body)
        assert body["type"] == "FeatureCollection"
        assert body["numberMatched"] == len(expected)
        assert body["numberReturned"] == len(body["features"]) <= 15
        datetime.fromisoformat(body["timeStamp"])
        seen += [f["id"] for f in body["features"]]
        url = link(body, "next")
    assert seen == expected  # each once, in key order
    assert len(pages) == -(-len(expected) // 15)
    assert link(pages[0], "prev") is None
    items = "http://testserver/ogc/collections/grids/items"
    assert link(pages[1], "prev") == f"{items}?limit=15&offset=0"
    assert link(pages[-1], "self") == f"{items}?limit=15&offset={15 * (len(pages) - 1)}"


def test_limit_default_maximum_and_refusals(api: TestClient, planner: dict[str, str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    items = "/ogc/collections/buildings/items"
    assert api.get(items, headers=planner).json()["numberReturned"] == 10
    maximum = 20
    monkeypatch.setattr(get_settings(), "page_size_max", maximum)
    body = api.get(items, params={"limit": 1000}, headers=planner).json()
    assert body["numberReturned"] == maximum  # lowered to the maximum, not refused
    assert f"limit={maximum}&offset={maximum}" in (link(body, "next") or "")
    past_end = api.get(items, params={"offset": 10**6}, headers=planner).json()
    assert past_end["features"] == [] and link(past_end, "next") is None
    for params in ({"limit": 0}, {"limit": "ten"}, {"offset": -1}, {"bbox": "1,2,3"},
                   {"bbox": "22.1,113.5,22.2,113.6"}, {"bbox": "113.6,22.1,113.5,22.2"},
                   {"f": "html"}, {"colour": "red"}):
        answer = api.get(items, params=params, headers=planner)
        assert answer.status_code == 422, params
    for path in ("/ogc", "/ogc/collections"):
        assert api.get(path, params={"limit": 5}, headers=planner).status_code == 422


def test_bbox_selects_the_grids_it_touches(api: TestClient, session: Session,
                                          planner: dict[str, str]) -> None:
    west, south, east, north = session.execute(text(
        "SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) FROM (SELECT ST_Extent(boundary) "
        "AS b FROM grid WHERE code = (SELECT min(code) FROM grid)) x")).one()
    bbox = {"west": west, "south": south, "east": (west + east) / 2, "north": (south + north) / 2}
    expected = grid_codes(session, "ST_Intersects(boundary, ST_MakeEnvelope(:west, :south, "
                                   ":east, :north, 4326))", **bbox)
    assert 0 < len(expected) < len(grid_codes(session))
    answer = api.get("/ogc/collections/grids/items", headers=planner, params={
        "bbox": ",".join(str(v) for v in bbox.values()), "limit": 1000,
        "datetime": "2024-09-06T00:00:00Z"})
    body = answer.json()
    assert [f["id"] for f in body["features"]] == expected
    assert body["numberMatched"] == body["numberReturned"] == len(expected)


def test_one_item_by_code(api: TestClient, session: Session, planner: dict[str, str]) -> None:
    code = grid_codes(session)[0]
    answer = api.get(f"/ogc/collections/grids/items/{code}", headers=planner)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/geo+json"
    feature = answer.json()
    assert feature["type"] == "Feature" and feature["id"] == code
    assert feature["geometry"]["type"] == "MultiPolygon"
    assert feature["properties"]["code"] == code and feature["properties"]["community_code"]
    assert link(feature, "self") == f"http://testserver/ogc/collections/grids/items/{code}"
    assert link(feature, "collection") == "http://testserver/ogc/collections/grids"
    resident = session.scalar(text("SELECT code FROM resident LIMIT 1"))
    for path in (f"/ogc/collections/grids/items/{code}x",
                 f"/ogc/collections/buildings/items/{code}",
                 f"/ogc/collections/buildings/items/{resident}",
                 f"/ogc/collections/residents/items/{resident}"):
        assert api.get(path, headers=planner).status_code == 404, path


def test_every_path_needs_a_login(api: TestClient, session: Session,
                                  login: Callable[..., dict[str, str]]) -> None:
    code = grid_codes(session)[0]
    paths = ["/ogc", "/ogc/conformance", "/ogc/collections", "/ogc/collections/grids",
             "/ogc/collections/grids/items", f"/ogc/collections/grids/items/{code}"]
    for path in paths:
        answer = api.get(path)
        assert answer.status_code == 401, path
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert api.get(path, headers={"Authorization": "Bearer forged"}).status_code == 401
    worker = login("ogc-worker", "grid_worker", [code])  # any role may read public layers
    assert all(api.get(path, headers=worker).status_code == 200 for path in paths)


@pytest.fixture(scope="module")
def live_server(engine: Engine) -> Iterator[tuple[str, dict[str, str]]]:
    """A real uvicorn serving the app with /ogc on a free port, and a committed user's token."""
    with Session(engine) as session:
        auth.add_user(session, "ogc-live", "planner", "correct horse battery", [])
        session.commit()
    server = uvicorn.Server(uvicorn.Config(ogc_app(), host="127.0.0.1", port=free_port(),
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    base = f"http://127.0.0.1:{server.config.port}"
    token = httpx.post(f"{base}/api/auth/token", data={
        "username": "ogc-live", "password": "correct horse battery"}).json()["access_token"]
    yield base, {"Authorization": f"Bearer {token}"}
    server.should_exit = True
    thread.join(timeout=10)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM app_user WHERE username = 'ogc-live'"))


def test_owslib_reads_the_live_api(live_server: tuple[str, dict[str, str]],
                                   engine: Engine) -> None:
    from owslib import ogcapi
    from owslib.ogcapi.features import Features

    base, headers = live_server
    saved = dict(ogcapi.REQUEST_HEADERS)  # OWSLib updates its module-wide headers in place
    try:
        anonymous = Features(f"{base}/ogc")  # before the shared headers hold a token
        with pytest.raises(RuntimeError, match="log in"):
            anonymous.conformance()
        service = Features(f"{base}/ogc", headers=headers)
        assert CORE in service.conformance()["conformsTo"]
        assert set(service.feature_collections()) == PUBLIC
        grids = service.collection("grids")
        assert grids["extent"]["spatial"]["crs"] == ogc.CRS84
        with engine.connect() as conn:
            codes = list(conn.scalars(text("SELECT code FROM grid ORDER BY id")))
        first = service.collection_items("grids", limit=25)
        second = service.collection_items("grids", limit=25, offset=25)
        assert [f["id"] for f in first["features"] + second["features"]] == codes
        assert first["numberMatched"] == len(codes)
        west, south, east, north = grids["extent"]["spatial"]["bbox"][0]
        inside = service.collection_items("grids", bbox=[west, south, (west + east) / 2,
                                                         (south + north) / 2], limit=100)
        assert 0 < inside["numberReturned"] < len(codes)
        assert service.collection_item("grids", codes[3])["id"] == codes[3]
        with pytest.raises(RuntimeError):
            service.collection_item("grids", "no-such-grid")
    finally:
        ogcapi.REQUEST_HEADERS.clear()
        ogcapi.REQUEST_HEADERS.update(saved)
