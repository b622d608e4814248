"""Mapbox vector tiles of the layers, encoded by PostGIS (``ST_AsMVT``) in one round trip.

Tiles are addressed ``z/x/y`` in the XYZ scheme of EPSG:3857 (Web Mercator, x eastwards
from 180°W, y southwards from 85.05°N); stored geometries are EPSG:4326 and are transformed
per tile. A tile is 4096 units wide with a 64-unit buffer. The SQL of each layer is a named
file under ``sql/`` (``tile_<layer>.sql``): the lean shape of the peer baseline (tile
envelope, a bounding-box filter on the indexed 4326 column, no ORDER BY, no LIMIT). No
feature cap: a tile holds every live feature that touches it, or the request fails; only
geometries that shrink below one tile unit (a sliver in the buffer, a tiny polygon at a low
zoom) are left out by ``ST_AsMVTGeom``, as by any MVT encoder. Below zoom 14 buildings are
points with the attributes a map styles them by (``tile_building_points.sql``): a footprint
is a few tile units wide there, and a z12 tile holds 50,000 of them over a city.

A tile is one statement, one round trip: the caller's token is checked in the statement
itself (``sql/tile_caller.sql`` as a CTE), and the tile query is read only when the token is
live, so the answer tells "not logged in" (no row) from "no feature here" (an empty tile).
It runs on an async connection in autocommit (``TileReader``): no BEGIN, no ROLLBACK.
"""

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg_pool import AsyncConnectionPool

from gridgis.errors import InvalidInput, NotFound

MAX_ZOOM = 22
SQL_DIR = Path(__file__).with_name("sql")
# Layer name in the URL and in the tile -> its SQL file.
TILE_SQL_FILES = {
    "admin-units": "tile_admin_units.sql",
    "grids": "tile_grids.sql",
    "buildings": "tile_buildings.sql",
    "stations": "tile_stations.sql",
    "shelters": "tile_shelters.sql",
}
# Below its zoom, a layer's tiles come from another file: buildings are points there.
LOW_ZOOM_SQL_FILES = {"buildings": (14, "tile_building_points.sql")}
CALLER_SQL_FILE = "tile_caller.sql"
# Server settings of the tile connections, for their whole life: parallel workers cost more
# to start than a tile query takes.
TILE_CONNECTION_OPTIONS = {"max_parallel_workers_per_gather": "0"}

Row = tuple[Any, ...]


class TileReader(Protocol):
    """Where tile statements run: ``fetch_one`` returns the first row of a statement."""

    async def fetch_one(self, statement: str, params: Mapping[str, Any]) -> Row | None: ...


@dataclass(frozen=True)
class PoolReader:
    """Tile statements on an async psycopg pool in autocommit (``db.make_async_pool``)."""

    pool: AsyncConnectionPool

    async def fetch_one(self, statement: str, params: Mapping[str, Any]) -> Row | None:
        """Return the statement's first row.

        When the server dropped the connection while it sat in the pool (a restart, an idle
        timeout), the pool's other idle connections are checked (those dropped as well are
        replaced) and the statement runs once more, as a pre-ping would have allowed: it only
        reads. A second failure is the caller's (psycopg's OperationalError: 503).
        """
        async with self.pool.connection() as conn:
            try:
                return await _fetch_one(conn, statement, params)
            except psycopg.OperationalError:
                if not conn.broken:  # a cancelled statement, not a lost connection
                    raise
        await self.pool.check()
        async with self.pool.connection() as conn:
            return await _fetch_one(conn, statement, params)


async def _fetch_one(conn: psycopg.AsyncConnection, statement: str,
                     params: Mapping[str, Any]) -> Row | None:
    cursor = await conn.execute(statement, params)
    return await cursor.fetchone()


@dataclass(frozen=True)
class TileAddress:
    """A tile of one layer in the EPSG:3857 XYZ pyramid: zoom, column x, row y."""

    layer: str
    z: int
    x: int
    y: int


def check_tile(layer: str, z: int, x: int, y: int) -> TileAddress:
    """Return the tile asked for; raise NotFound or InvalidInput naming what is wrong.

    A layer without tiles is not found; a zoom outside 0..22, or an x or y outside
    0..2^z-1, is invalid input.
    """
    if layer not in TILE_SQL_FILES:
        raise NotFound(f"no tiles for layer {layer!r}; tiled layers are "
                       f"{', '.join(TILE_SQL_FILES)}")
    if not 0 <= z <= MAX_ZOOM:
        raise InvalidInput(f"zoom {z} is outside 0..{MAX_ZOOM}")
    last = 2**z - 1
    if not 0 <= x <= last:
        raise InvalidInput(f"x {x} is outside 0..{last} at zoom {z}")
    if not 0 <= y <= last:
        raise InvalidInput(f"y {y} is outside 0..{last} at zoom {z}")
    return TileAddress(layer, z, x, y)


@cache
def read_caller_sql() -> str:
    """Return the statement finding the caller of a token digest (a row, or none)."""
    return (SQL_DIR / CALLER_SQL_FILE).read_text(encoding="utf-8")


def tile_sql_file(layer: str, z: int) -> str:
    """Return the name of the SQL file of a tiled ``layer``'s tiles at zoom ``z``."""
    below, low_zoom_file = LOW_ZOOM_SQL_FILES.get(layer, (0, ""))
    return low_zoom_file if z < below else TILE_SQL_FILES[layer]


@cache
def read_tile_sql(sql_file: str) -> str:
    """Return the statement of a tile SQL file: a row holding the tile when the token is
    live, no row otherwise (the layer's query is not run then)."""
    tile = (SQL_DIR / sql_file).read_text(encoding="utf-8")
    return f"WITH caller AS (\n{read_caller_sql()})\nSELECT (\n{tile}) AS tile\nFROM caller"


async def caller_is_live(reader: TileReader, token_digest: str) -> bool:
    """Return whether the token of ``token_digest`` is live (its user active)."""
    return await reader.fetch_one(read_caller_sql(), {"token_digest": token_digest}) is not None


async def render_tile(reader: TileReader, token_digest: str, tile: TileAddress) -> bytes | None:
    """Return the tile as Mapbox vector tile bytes (empty when no feature touches it), or
    None when the token of ``token_digest`` is not live: one statement, one round trip."""
    row = await reader.fetch_one(read_tile_sql(tile_sql_file(tile.layer, tile.z)), {
        "token_digest": token_digest, "z": tile.z, "x": tile.x, "y": tile.y})
    if row is None:
        return None
    return bytes(row[0]) if row[0] is not None else b""


def etag_of(body: bytes) -> str:
    """Return a strong ETag (a quoted BLAKE2b digest) for a tile's bytes."""
    return f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Return whether an ``If-None-Match`` header names ``etag`` (weak comparison, or ``*``)."""
    if not if_none_match:
        return False
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return any(tag == "*" or tag.removeprefix("W/") == etag for tag in tags)
