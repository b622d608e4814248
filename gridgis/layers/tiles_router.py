"""HTTP for vector tiles: ``/tiles/{layer}/{z}/{x}/{y}.pbf`` (EPSG:3857 XYZ, Mapbox vector tiles).

A tile with features is 200 ``application/vnd.mapbox-vector-tile``; a tile no feature touches
is 204 with no body. Both carry a short ``Cache-Control`` (data changes during an emergency)
and an ETag of the bytes; ``If-None-Match`` with that ETag gives 304. Tiles of admin units,
grids and buildings are kept by the process until their tables are written
(``tiles.TileCache``).

The route is async and takes no session: the token (bearer, or the session cookie of the
pages; a read needs no CSRF header) is checked in the tile statement, which runs on the
process's async pool (made on first use, closed at shutdown). Every role may read tiles
(``access.POLICY``), so the statement checks the token and no role; the import below stops
the app if the policy ever narrows.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, Request, Response

from gridgis import access, auth, db
from gridgis.errors import GridGisError, Unauthorized
from gridgis.layers import tiles
from gridgis.settings import get_settings

PATH = "/{layer}/{z}/{x}/{y}.pbf"
if access.POLICY[("GET", "/tiles" + PATH)] != access.EVERYONE:
    raise RuntimeError("tiles check the token and no role: check the role too, and audit "
                       "refusals as auth.caller does, before narrowing who may read tiles")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Close this process's tile pool (opened by the first tile) at shutdown."""
    yield
    pool = getattr(app.state, "tile_pool", None)
    if pool is not None:
        app.state.tile_pool = None  # a closed pool cannot open again: the next start makes one
        await pool.close()


router = APIRouter(prefix="/tiles", tags=["tiles"], lifespan=lifespan)
MVT = "application/vnd.mapbox-vector-tile"
# private: the tiles hold no personal data, but only logged-in users may read them.
CACHE_CONTROL = "private, max-age=60"


async def tile_reader(request: Request) -> tiles.TileReader:
    """Return where tile statements run: the process's async pool, opened on first use, as
    the application's role (a FastAPI dependency; tests put their own session here)."""
    pool = getattr(request.app.state, "tile_pool", None)
    if pool is None:
        settings = get_settings()
        pool = request.app.state.tile_pool = db.make_async_pool(
            db.database_url(settings), role=settings.database_role,
            options=tiles.TILE_CONNECTION_OPTIONS)
    if pool.closed:
        await pool.open()  # a no-op for a request that raced the first one here
    return tiles.PoolReader(pool)


TileReaderDep = Annotated[tiles.TileReader, Depends(tile_reader)]


def tile_cache(request: Request) -> tiles.TileCache:
    """Return the process's kept tiles (made on first use)."""
    cache: tiles.TileCache | None = getattr(request.app.state, "tile_cache", None)
    if cache is None:
        cache = request.app.state.tile_cache = tiles.TileCache(
            int(get_settings().tile_cache_mb * 2**20))
    return cache
BearerToken = Annotated[str | None, Depends(auth.oauth2_scheme)]


@router.get(PATH, response_class=Response, responses={
    200: {"content": {MVT: {}}, "description": "the tile"},
    204: {"description": "no feature touches the tile"},
    304: {"description": "unchanged since the ETag in If-None-Match"},
})
async def get_tile(request: Request, reader: TileReaderDep, bearer: BearerToken, layer: str,
                   z: int, x: int, y: int,
                   if_none_match: Annotated[str | None, Header()] = None) -> Response:
    """A vector tile of admin-units, grids, buildings, stations or shelters; any role may read.
    Buildings are footprints with code, use, floors, risk flags and grid code from zoom 14,
    points with use and risk flags below it; no tile leaves a feature out."""
    token = auth.presented_token(request, bearer)
    if token is None:
        raise Unauthorized(auth.LOG_IN_FIRST)
    digest = auth.token_digest(token)
    try:
        tile = tiles.check_tile(layer, z, x, y)
    except GridGisError:  # a bad address is told only to a caller logged in
        if not await tiles.caller_is_live(reader, digest):
            raise Unauthorized(auth.LOG_IN_FIRST) from None
        raise
    found = await tiles.read_tile(reader, digest, tile, tile_cache(request))
    if found is None:
        raise Unauthorized(auth.LOG_IN_FIRST)
    headers = {"Cache-Control": CACHE_CONTROL, "ETag": found.etag}
    if tiles.etag_matches(if_none_match, found.etag):
        return Response(status_code=304, headers=headers)
    if not found.body:
        return Response(status_code=204, headers=headers)
    return Response(found.body, media_type=MVT, headers=headers)
