"""Vector tiles /tiles/{layer}/{z}/{x}/{y}.pbf against the hengqin demo, decoded with
mapbox-vector-tile. Tiles are EPSG:3857 XYZ; stored geometries are EPSG:4326."""

import asyncio
import math
from collections.abc import Iterator
from typing import Any

import mapbox_vector_tile
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm import Session

from gridgis import auth, db
from gridgis.layers import tiles, tiles_router
from gridgis.main import create_app
from gridgis.models import NO_PASSWORD, ROLES, AppUser
from gridgis.settings import get_settings
from tests.conftest import free_port

MVT = "application/vnd.mapbox-vector-tile"


@pytest.fixture
def tile_client(client: TestClient) -> TestClient:
    """The app on the test's rolled-back session."""
    return client


def bearer_of(session: Session, username: str, role: str) -> dict[str, str]:
    """Return bearer headers of a new user of ``role``.

    The token is issued directly: a password login would spend most of each test's time in
    Argon2, and the token check under test is the app's own.
    """
    user = AppUser(username=username, role=role, password_hash=NO_PASSWORD)
    session.add(user)
    session.flush()
    token, _ = auth.issue_token(session, user)
    session.flush()
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def headers(session: Session) -> dict[str, str]:
    return bearer_of(session, "tile-reader", "grid_worker")


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """Return the XYZ column and row of the EPSG:3857 tile holding a lon/lat point (degrees)."""
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def fetch_layer(client: TestClient, headers: dict[str, str], layer: str, z: int, x: int,
                y: int) -> list[dict[str, Any]]:
    """Return the decoded features of one tile's layer (none for a 204)."""
    answer = client.get(f"/tiles/{layer}/{z}/{x}/{y}.pbf", headers=headers)
    assert answer.status_code in (200, 204), answer.text
    if answer.status_code == 204:
        return []
    assert answer.headers["content-type"] == MVT
    decoded = mapbox_vector_tile.decode(answer.content)
    assert set(decoded) == {layer}
    assert decoded[layer]["extent"] == 4096
    features: list[dict[str, Any]] = decoded[layer]["features"]
    return features


# Ids of the live rows meeting the tile proper, and of those meeting it or its 64-unit buffer,
# found without the tile machinery (EPSG:3857).
IDS_OF_GRIDS = """
    SELECT coalesce(array_agg(id) FILTER (WHERE ST_Intersects(geom, ST_TileEnvelope(:z, :x, :y))),
                    '{}'),
           coalesce(array_agg(id), '{}')
    FROM (SELECT id, ST_Transform(boundary, 3857) AS geom FROM grid
          WHERE retired_at IS NULL) AS live
    WHERE ST_Intersects(geom, ST_TileEnvelope(:z, :x, :y, margin => 64.0 / 4096))
"""
IDS_OF_BUILDINGS = """
    SELECT coalesce(array_agg(id) FILTER (WHERE ST_Intersects(geom, ST_TileEnvelope(:z, :x, :y))),
                    '{}'),
           coalesce(array_agg(id), '{}')
    FROM (SELECT id, ST_Transform(CASE WHEN :z < 14 THEN location  -- points below z14
                                        ELSE coalesce(footprint, location) END, 3857) AS geom
          FROM building WHERE retired_at IS NULL) AS live
    WHERE ST_Intersects(geom, ST_TileEnvelope(:z, :x, :y, margin => 64.0 / 4096))
"""
# One row of a point-like layer with the attributes its tile must carry, and where it is.
LAST_STATION = ("SELECT id, code, name, level, ST_X(location) AS lon, ST_Y(location) AS lat"
                " FROM station ORDER BY code DESC LIMIT 1")
LAST_SHELTER = ("SELECT id, code, name, kind, capacity, occupancy, ST_X(location) AS lon,"
                " ST_Y(location) AS lat FROM shelter ORDER BY code DESC LIMIT 1")
LAST_COMMUNITY = ("SELECT u.id, u.code, u.name, u.level, u.kind, p.code AS parent_code,"
                  " ST_X(ST_PointOnSurface(u.boundary)) AS lon,"
                  " ST_Y(ST_PointOnSurface(u.boundary)) AS lat"
                  " FROM admin_unit u JOIN admin_unit p ON p.id = u.parent_id"
                  " ORDER BY u.code DESC LIMIT 1")


def test_grid_tile_holds_the_grid_with_its_attributes(tile_client: TestClient, session: Session,
                                                     headers: dict[str, str]) -> None:
    grid = session.execute(text(
        "SELECT grid.id, grid.code, grid.name, grid.kind, grid.households, c.code AS community,"
        " ST_X(ST_PointOnSurface(grid.boundary)) AS lon,"
        " ST_Y(ST_PointOnSurface(grid.boundary)) AS lat"
        " FROM grid JOIN admin_unit c ON c.id = grid.community_id ORDER BY grid.code LIMIT 1"
    )).one()
    features = fetch_layer(tile_client, headers, "grids", 14, *tile_of(grid.lon, grid.lat, 14))
    found = [f for f in features if f["properties"]["code"] == grid.code]
    assert len(found) == 1
    assert found[0]["id"] == grid.id
    assert found[0]["properties"] == {"code": grid.code, "name": grid.name, "kind": grid.kind,
                                      "households": grid.households,
                                      "community_code": grid.community}
    assert found[0]["geometry"]["type"] in ("Polygon", "MultiPolygon")


@pytest.mark.parametrize(("layer", "ids_sql", "z"), [
    ("grids", IDS_OF_GRIDS, 12),
    ("buildings", IDS_OF_BUILDINGS, 11),  # most of Hengqin: 2,700+ buildings
    ("buildings", IDS_OF_BUILDINGS, 12),
    ("buildings", IDS_OF_BUILDINGS, 14),
], ids=["grids-z12", "buildings-z11", "buildings-z12", "buildings-z14"])
def test_a_tile_holds_every_feature_touching_it(tile_client: TestClient, session: Session,
                                                headers: dict[str, str], layer: str,
                                                ids_sql: str, z: int) -> None:
    lon, lat = session.execute(text(  # the middle of the buildings: the fullest tiles
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ST_X(location)),"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY ST_Y(location)) FROM building"
    )).one()
    x, y = tile_of(lon, lat, z)
    inside, touching = session.execute(text(ids_sql), {"z": z, "x": x, "y": y}).one()
    assert len(inside) >= 20  # a tile worth counting
    ids = [f["id"] for f in fetch_layer(tile_client, headers, layer, z, x, y)]
    assert len(ids) == len(set(ids))
    # All of the tile proper; from the buffer, all but slivers thinner than a tile unit.
    assert set(inside) <= set(ids) <= set(touching)


def test_edge_tiles_do_not_wrap_across_the_antimeridian(tile_client: TestClient, session: Session,
                                                        headers: dict[str, str]) -> None:
    # Tile 1/1/0's buffer crosses 180°E; unclipped, its 4326 bounds would exclude Hengqin.
    # Points, because polygons this small vanish at zoom 0 and 1.
    total = session.execute(text("SELECT count(*) FROM station WHERE retired_at IS NULL")).scalar()
    assert total
    assert len(fetch_layer(tile_client, headers, "stations", 1, 1, 0)) == total
    assert len(fetch_layer(tile_client, headers, "stations", 0, 0, 0)) == total


def test_building_tile_at_high_zoom_has_footprints_and_falls_back_to_points(
        tile_client: TestClient, session: Session, headers: dict[str, str]) -> None:
    building = session.execute(text(
        "SELECT b.code, b.use, b.floors, array_to_string(b.risk_flags, ',') AS flags,"
        " g.code AS grid_code, ST_X(b.location) AS lon, ST_Y(b.location) AS lat"
        " FROM building b JOIN grid g ON g.id = b.grid_id"
        " WHERE b.footprint IS NOT NULL AND cardinality(b.risk_flags) > 1 ORDER BY b.code LIMIT 1"
    )).one()
    x, y = tile_of(building.lon, building.lat, 17)
    features = {f["properties"]["code"]: f
                for f in fetch_layer(tile_client, headers, "buildings", 17, x, y)}
    found = features[building.code]
    assert found["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert found["properties"] == {"code": building.code, "use": building.use,
                                   "floors": building.floors, "risk_flags": building.flags,
                                   "grid_code": building.grid_code}
    assert "," in found["properties"]["risk_flags"]

    session.execute(text("UPDATE building SET footprint = NULL WHERE code = :code"),
                    {"code": building.code})
    features = {f["properties"]["code"]: f
                for f in fetch_layer(tile_client, headers, "buildings", 17, x, y)}
    assert features[building.code]["geometry"]["type"] == "Point"


def test_building_tiles_below_zoom_14_are_points_with_use_and_risk(
        tile_client: TestClient, session: Session, headers: dict[str, str]) -> None:
    building = session.execute(text(
        "SELECT b.id, b.use, array_to_string(b.risk_flags, ',') AS flags,"
        " ST_X(b.location) AS lon, ST_Y(b.location) AS lat FROM building b"
        " WHERE b.footprint IS NOT NULL AND cardinality(b.risk_flags) > 0 ORDER BY b.code LIMIT 1"
    )).one()
    for z, kind in ((13, "Point"), (14, "Polygon")):
        features = fetch_layer(tile_client, headers, "buildings", z,
                               *tile_of(building.lon, building.lat, z))
        found = next(f for f in features if f["id"] == building.id)
        assert found["geometry"]["type"].removeprefix("Multi") == kind
        if kind == "Point":
            assert found["properties"] == {"use": building.use, "risk_flags": building.flags}
            assert {f["geometry"]["type"] for f in features} == {"Point"}
        else:
            assert {"code", "floors", "grid_code"} <= set(found["properties"])


def test_retired_rows_leave_the_tile(tile_client: TestClient, session: Session,
                                     headers: dict[str, str]) -> None:
    code, lon, lat = session.execute(text(
        "SELECT code, ST_X(ST_PointOnSurface(boundary)), ST_Y(ST_PointOnSurface(boundary))"
        " FROM grid ORDER BY code LIMIT 1")).one()
    x, y = tile_of(lon, lat, 15)
    session.execute(text("UPDATE grid SET retired_at = now() WHERE code = :code"),
                    {"code": code})
    codes = {f["properties"]["code"] for f in fetch_layer(tile_client, headers, "grids", 15, x, y)}
    assert code not in codes


@pytest.mark.parametrize(("layer", "statement"), [
    ("stations", LAST_STATION), ("shelters", LAST_SHELTER), ("admin-units", LAST_COMMUNITY),
])
def test_other_layers_carry_their_attributes(tile_client: TestClient, session: Session,
                                             headers: dict[str, str], layer: str,
                                             statement: str) -> None:
    row = session.execute(text(statement)).one()._asdict()
    features = fetch_layer(tile_client, headers, layer, 16, *tile_of(row["lon"], row["lat"], 16))
    found = next(f for f in features if f["properties"]["code"] == row["code"])
    assert found["id"] == row["id"]
    assert found["properties"] == {k: v for k, v in row.items() if k not in ("id", "lon", "lat")}


def test_empty_tile_is_204_with_cache_headers(tile_client: TestClient,
                                              headers: dict[str, str]) -> None:
    answer = tile_client.get("/tiles/grids/14/0/0.pbf", headers=headers)  # the Arctic, off Alaska
    assert answer.status_code == 204
    assert answer.content == b""
    assert answer.headers["cache-control"] == "private, max-age=60"
    assert answer.headers["etag"]


def test_etag_and_if_none_match(tile_client: TestClient, session: Session,
                                headers: dict[str, str]) -> None:
    lon, lat = session.execute(text(
        "SELECT ST_X(ST_PointOnSurface(boundary)), ST_Y(ST_PointOnSurface(boundary))"
        " FROM grid ORDER BY code LIMIT 1")).one()
    url = "/tiles/grids/12/{}/{}.pbf".format(*tile_of(lon, lat, 12))
    first = tile_client.get(url, headers=headers)
    assert first.status_code == 200
    assert first.headers["cache-control"] == "private, max-age=60"
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    again = tile_client.get(url, headers={**headers, "If-None-Match": f'"other", W/{etag}'})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    session.execute(text("UPDATE grid SET name = name || ' (new)'"))
    changed = tile_client.get(url, headers={**headers, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag


def building_in_a_tile(session: Session, z: int) -> tuple[Any, tuple[int, int]]:
    building = session.execute(text(
        "SELECT b.id, b.code, g.code AS grid_code, ST_X(b.location) AS lon,"
        " ST_Y(b.location) AS lat FROM building b JOIN grid g ON g.id = b.grid_id"
        " WHERE b.footprint IS NOT NULL ORDER BY b.code LIMIT 1")).one()
    return building, tile_of(building.lon, building.lat, z)


def test_a_kept_tile_is_read_until_its_tables_are_written(
        tile_client: TestClient, session: Session, headers: dict[str, str]) -> None:
    """The second read of a building tile is the kept one (its query not run); writing the
    buildings, or the grids a building tile names, makes the next read render it again."""
    building, (x, y) = building_in_a_tile(session, 16)
    url = f"/tiles/buildings/16/{x}/{y}.pbf"
    first = tile_client.get(url, headers=headers)
    cache: tiles.TileCache = tile_client.app.state.tile_cache  # type: ignore[attr-defined]
    hits = cache.hits
    again = tile_client.get(url, headers=headers)
    assert (again.status_code, again.content, again.headers["etag"]) == (
        200, first.content, first.headers["etag"])
    assert cache.hits == hits + 1

    def grid_code_in_tile() -> str:
        features = fetch_layer(tile_client, headers, "buildings", 16, x, y)
        return str(next(f for f in features if f["id"] == building.id)
                   ["properties"]["grid_code"])

    session.execute(text("UPDATE grid SET code = code || '-new' WHERE code = :c"),
                    {"c": building.grid_code})
    assert grid_code_in_tile() == building.grid_code + "-new"
    assert cache.hits == hits + 1  # rendered again, then kept
    session.execute(text("UPDATE building SET risk_flags = '{geohazard}' WHERE id = :b"),
                    {"b": building.id})
    features = fetch_layer(tile_client, headers, "buildings", 16, x, y)
    assert next(f for f in features if f["id"] == building.id)["properties"][
        "risk_flags"] == "geohazard"
    assert grid_code_in_tile() == building.grid_code + "-new"
    assert cache.hits == hits + 2  # the last read was the kept one


def test_every_write_of_a_tiled_table_is_seen_and_shelters_are_not_kept(
        tile_client: TestClient, session: Session, headers: dict[str, str]) -> None:
    def written_by() -> dict[str, int]:
        return dict(session.execute(text("SELECT name, written_by FROM tile_source")).all())

    before = written_by()
    session.execute(text("UPDATE admin_unit SET name = name WHERE false"))  # no row: still
    session.execute(text("DELETE FROM building WHERE false"))
    now = session.execute(text("SELECT pg_current_xact_id()::text::bigint")).scalar_one()
    after = written_by()
    assert after == {**before, "admin_unit": now, "building": now}
    for _ in range(2):
        assert tile_client.get("/tiles/shelters/0/0/0.pbf", headers=headers).status_code == 200
    cache: tiles.TileCache = tile_client.app.state.tile_cache  # type: ignore[attr-defined]
    assert (cache.hits, len(cache)) == (0, 0)


WRITTEN_NOW = ("SELECT written_by = pg_current_xact_id()::text::bigint FROM tile_source "
               "WHERE name = 'grid'")


def test_the_application_writes_the_tables_and_only_the_trigger_writes_their_state(
        database_url: str, engine: Engine) -> None:
    """As the application's role, a write of a tiled table sets its state (the trigger runs
    as the owner), and the state cannot be set by hand (set back, it would bring a kept tile
    back); a session with triggers off (a bulk load as the owner) still sets it."""
    app = db.make_engine(database_url, role=get_settings().database_role)
    try:
        with app.connect() as conn:
            conn.execute(text("UPDATE grid SET name = name WHERE false"))
            assert conn.execute(text(WRITTEN_NOW)).scalar_one()
            conn.rollback()
            with pytest.raises(ProgrammingError, match="permission denied"):
                conn.execute(text("UPDATE tile_source SET written_by = 0"))
            conn.rollback()
    finally:
        app.dispose()
    with engine.connect() as conn:
        conn.execute(text("SET session_replication_role = replica"))
        conn.execute(text("UPDATE grid SET name = name WHERE false"))
        assert conn.execute(text(WRITTEN_NOW)).scalar_one()
        conn.rollback()


def test_kept_tiles_stay_within_their_bytes_least_recently_used_first() -> None:
    entry = tiles.ENTRY_BYTES
    cache = tiles.TileCache(max_bytes=2 * entry + 10)
    a, b, c = (tiles.TileAddress("grids", 1, n, 0) for n in range(3))
    cache.put(a, tiles.KeptTile("s", b"1234", '"a"'))
    cache.put(b, tiles.KeptTile("s", b"1234", '"b"'))
    assert cache.get(a) is not None  # a is now the most recently used
    cache.put(c, tiles.KeptTile("s", b"1234", '"c"'))
    assert (cache.get(a), cache.get(b), len(cache), cache.size) == (
        tiles.KeptTile("s", b"1234", '"a"'), None, 2, 2 * entry + 8)
    cache.put(a, tiles.KeptTile("t", b"123456", '"a2"'))  # replaced, not counted twice
    assert (len(cache), cache.size) == (2, 2 * entry + 10)
    cache.put(a, tiles.KeptTile("u", b"x" * (entry + 11), '"big"'))  # too big: not kept,
    assert cache.get(a) is None and (len(cache), cache.size) == (1, entry + 4)  # nor the old
    empty = tiles.TileCache(max_bytes=10 * entry)  # empty tiles count too: the map's sea
    for n in range(100):
        empty.put(tiles.TileAddress("grids", 14, n, 0), tiles.KeptTile("s", b"", '"e"'))
    assert (len(empty), empty.size) == (10, 10 * entry)


def test_no_tile_is_kept_when_the_cache_is_off(
        tile_client: TestClient, session: Session, headers: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDGIS_TILE_CACHE_MB", "0")
    get_settings.cache_clear()
    try:
        _, (x, y) = building_in_a_tile(session, 16)
        for _ in range(2):
            assert tile_client.get(f"/tiles/buildings/16/{x}/{y}.pbf",
                                   headers=headers).status_code == 200
        cache: tiles.TileCache = tile_client.app.state.tile_cache  # type: ignore[attr-defined]
        assert (cache.max_bytes, cache.hits, len(cache)) == (0, 0, 0)
    finally:
        monkeypatch.delenv("GRIDGIS_TILE_CACHE_MB")
        get_settings.cache_clear()


@pytest.mark.parametrize(("path", "status", "message"), [
    ("/tiles/residents/1/0/0.pbf", 404, "no tiles for layer 'residents'"),
    ("/tiles/grids/23/0/0.pbf", 422, "zoom 23 is outside 0..22"),
    ("/tiles/grids/-1/0/0.pbf", 422, "zoom -1 is outside 0..22"),
    ("/tiles/grids/2/4/0.pbf", 422, "x 4 is outside 0..3 at zoom 2"),
    ("/tiles/grids/2/0/-1.pbf", 422, "y -1 is outside 0..3 at zoom 2"),
    ("/tiles/grids/2/0/y.pbf", 422, '"loc":["path","y"]'),
])
def test_bad_tile_addresses_are_refused_by_name(tile_client: TestClient, headers: dict[str, str],
                                                path: str, status: int, message: str) -> None:
    answer = tile_client.get(path, headers=headers)
    assert answer.status_code == status
    assert message in answer.text


def test_tiles_need_a_login(tile_client: TestClient) -> None:
    answer = tile_client.get("/tiles/grids/12/3340/1781.pbf")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"


def test_every_role_may_read(tile_client: TestClient, session: Session) -> None:
    for role in ROLES:
        answer = tile_client.get("/tiles/grids/0/0/0.pbf",
                                 headers=bearer_of(session, f"tile-{role}", role))
        assert answer.status_code in (200, 204), (role, answer.text)


# --- the app's own async pool: committed users, since it does not see a test's transaction

@pytest.fixture
def committed_token(engine: Engine) -> Iterator[str]:
    """A live token of a committed user, removed (with the user) after the test."""
    with Session(engine) as session:
        user = AppUser(username="tile-pool-reader", role="command", password_hash=NO_PASSWORD)
        session.add(user)
        session.flush()
        token, _ = auth.issue_token(session, user)
        session.commit()
    yield token
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM app_user WHERE username = 'tile-pool-reader'"))


def pool_reader_of(app: FastAPI, url: str | None = None, **pool_options: Any) -> Any:
    """Return a dependency giving ``app`` a tile pool made here (on ``url``, else the test
    database; closed by the app's lifespan), as the application's role."""
    settings = get_settings()

    async def reader() -> tiles.TileReader:
        if getattr(app.state, "tile_pool", None) is None:
            app.state.tile_pool = db.make_async_pool(url or db.database_url(),
                                                     settings.database_role, **pool_options)
            await app.state.tile_pool.open()
        return tiles.PoolReader(app.state.tile_pool)

    return reader


def test_the_pool_serves_tiles_to_bearer_and_cookie_and_refuses_a_revoked_token(
        database_url: str, engine: Engine, committed_token: str) -> None:
    app = create_app()
    with TestClient(app) as client:
        url = "/tiles/stations/0/0/0.pbf"
        bearer = client.get(url, headers={"Authorization": f"Bearer {committed_token}"})
        assert bearer.status_code == 200, bearer.text
        assert mapbox_vector_tile.decode(bearer.content)["stations"]["features"]
        client.cookies.set(auth.SESSION_COOKIE, committed_token)
        cookie = client.get(url)
        assert cookie.status_code == 200, cookie.text
        assert cookie.headers["etag"] == bearer.headers["etag"]
        assert client.get("/tiles/stations/0/0/0.pbf",
                          headers={"If-None-Match": bearer.headers["etag"]}).status_code == 304
        assert client.get("/tiles/nothing/0/0/0.pbf").status_code == 404
        kept = "/tiles/grids/0/0/0.pbf"  # a kept tile still checks the token
        assert [client.get(kept).status_code for _ in range(2)] == [204, 204]  # too small
        assert client.app.state.tile_cache.hits >= 1  # type: ignore[attr-defined]
        with engine.begin() as conn:
            conn.execute(text("UPDATE auth_token SET revoked_at = now() WHERE app_user_id ="
                              " (SELECT id FROM app_user WHERE username = 'tile-pool-reader')"))
        revoked = client.get(url)
        assert revoked.status_code == 401
        assert revoked.headers["www-authenticate"] == "Bearer"
        assert client.get(kept).status_code == 401  # kept, yet refused
        assert client.get("/tiles/nothing/0/0/0.pbf").status_code == 401  # not 404: who asks?


def test_the_pool_works_as_the_application_role_without_parallel_workers(
        database_url: str) -> None:
    settings = get_settings()

    async def ask() -> tuple[Any, ...] | None:
        async with db.make_async_pool(db.database_url(), settings.database_role,
                                      options=tiles.TILE_CONNECTION_OPTIONS) as pool:
            return await tiles.PoolReader(pool).fetch_one(
                "SELECT current_user, current_setting('max_parallel_workers_per_gather')", {})

    assert asyncio.run(ask()) == (settings.database_role, "0")


def test_a_connection_the_server_dropped_is_replaced_unseen(
        database_url: str, engine: Engine, committed_token: str) -> None:
    """As after a restart of PostgreSQL: the pooled connection is gone; the tile is read on a
    new one (no pre-ping, no error for the client)."""
    app = create_app()
    app.dependency_overrides[tiles_router.tile_reader] = pool_reader_of(app)
    headers = {"Authorization": f"Bearer {committed_token}"}
    with TestClient(app) as client:
        assert client.get("/tiles/stations/0/0/0.pbf", headers=headers).status_code == 200
        with engine.begin() as conn:
            ended = conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"  # all the pool's
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND (query LIKE 'WITH caller AS%' OR query LIKE 'SET ROLE%')")).scalars().all()
        assert ended and all(ended)
        answer = client.get("/tiles/stations/0/0/0.pbf", headers=headers)
        assert answer.status_code == 200, answer.text


def test_a_database_not_answering_is_503_with_retry_after(committed_token: str) -> None:
    app = create_app()
    dead = make_url(db.database_url()).set(host="127.0.0.1", port=free_port())
    app.dependency_overrides[tiles_router.tile_reader] = pool_reader_of(
        app, timeout_s=0.5, url=dead.render_as_string(hide_password=False))
    with TestClient(app) as client:
        answer = client.get("/tiles/stations/0/0/0.pbf",
                            headers={"Authorization": f"Bearer {committed_token}"})
    assert answer.status_code == 503
    assert answer.headers["retry-after"].isdigit()


def test_a_cancelled_tile_statement_is_503_with_retry_after(committed_token: str) -> None:
    """psycopg's OperationalError from the pool (here a statement timeout) is 503, as the
    same error through SQLAlchemy is."""
    app = create_app()
    app.dependency_overrides[tiles_router.tile_reader] = pool_reader_of(
        app, options={"statement_timeout": "1"})  # ms: a z11 building tile takes longer
    with TestClient(app) as client:
        lon, lat = 113.53, 22.13  # Hengqin
        answer = client.get("/tiles/buildings/11/{}/{}.pbf".format(*tile_of(lon, lat, 11)),
                            headers={"Authorization": f"Bearer {committed_token}"})
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"].isdigit()
