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

Tiles of admin units, grids and buildings are kept by the process (``TileCache``, an LRU
bounded in bytes: ``GRIDGIS_TILE_CACHE_MB``), with the state of the tables they were made
from (``SOURCES``: the last transaction that wrote each, kept by a trigger, see migration
0015). The statement reads that state with the token; the tile query runs only when the
state differs from the kept tile's, so a kept tile costs the token check and one row, and an
edit is seen by the next request. Every request still checks the token. A command centre's
screens watch the same few hundred tiles: the first screen renders them, the others read
them. Shelters and stations, whose occupancy and staffing change by the minute, are not kept.
"""

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
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
# The tables each kept layer's tiles are made of (a building tile names its grid).
SOURCES = {"admin-units": ("admin_unit",), "grids": ("admin_unit", "grid"),
           "buildings": ("building", "grid")}
# The state of a layer's tables: the database and the cluster's start (a new cluster reuses
# transaction ids; another database may have reached the same ids) and the last transaction
# that wrote each table.
STATE_SQL = """SELECT (SELECT oid FROM pg_database WHERE datname = current_database())::text
       || '/' || pg_postmaster_start_time()::text || '/'
       || string_agg(written_by::text, '.' ORDER BY name) AS state
FROM tile_source WHERE name = ANY(%(sources)s)"""
# About what a kept tile costs besides its bytes (an estimate of its address, state, ETag and
# place in the LRU): empty tiles are kept too, and must count.
ENTRY_BYTES = 512
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


@cache
def read_kept_tile_sql(sql_file: str) -> str:
    """Return the statement of a kept layer's tile: a row holding the state of its tables
    and the tile, unless that state is %(kept)s (the tile is NULL then: not rendered), when
    the token is live; no row otherwise."""
    tile = (SQL_DIR / sql_file).read_text(encoding="utf-8")
    return (f"WITH caller AS (\n{read_caller_sql()}), source AS (\n{STATE_SQL})\n"
            f"SELECT source.state, CASE WHEN source.state = %(kept)s "
            f"THEN NULL ELSE (\n{tile}) END AS tile\nFROM caller, source")


@dataclass(frozen=True)
class KeptTile:
    """A rendered tile, with the state of its tables when it was made, and its ETag."""

    state: str
    body: bytes
    etag: str


@dataclass
class TileCache:
    """The tiles this process rendered, least recently used dropped first beyond
    ``max_bytes`` (0: none kept), each counted as its bytes and ``ENTRY_BYTES``."""

    max_bytes: int
    size: int = 0
    hits: int = 0
    _tiles: OrderedDict[TileAddress, KeptTile] = field(default_factory=OrderedDict)

    def get(self, tile: TileAddress) -> KeptTile | None:
        kept = self._tiles.get(tile)
        if kept is not None:
            self._tiles.move_to_end(tile)
        return kept

    def put(self, tile: TileAddress, kept: KeptTile) -> None:
        self.forget(tile)
        if _cost(kept) > self.max_bytes:
            return
        self._tiles[tile] = kept
        self.size += _cost(kept)
        while self.size > self.max_bytes:
            _, dropped = self._tiles.popitem(last=False)
            self.size -= _cost(dropped)

    def forget(self, tile: TileAddress) -> None:
        dropped = self._tiles.pop(tile, None)
        if dropped is not None:
            self.size -= _cost(dropped)

    def __len__(self) -> int:
        return len(self._tiles)


def _cost(kept: KeptTile) -> int:
    return len(kept.body) + ENTRY_BYTES


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


async def read_tile(reader: TileReader, token_digest: str, tile: TileAddress,
                    cache: TileCache) -> KeptTile | None:
    """Return the tile with its ETag, or None when the token of ``token_digest`` is not
    live: one statement, one round trip. A kept layer's tile comes from ``cache`` while its
    tables are as they were when it was rendered, and is rendered (and kept) otherwise."""
    if tile.layer not in SOURCES or cache.max_bytes == 0:
        body = await render_tile(reader, token_digest, tile)
        return None if body is None else KeptTile("", body, etag_of(body))
    kept = cache.get(tile)
    row = await reader.fetch_one(read_kept_tile_sql(tile_sql_file(tile.layer, tile.z)), {
        "token_digest": token_digest, "z": tile.z, "x": tile.x, "y": tile.y,
        "sources": list(SOURCES[tile.layer]), "kept": kept.state if kept else None})
    if row is None:
        return None
    state, body = row
    if kept is not None and state == kept.state:  # the tile query did not run
        cache.hits += 1
        return kept
    body = bytes(body) if body is not None else b""
    fresh = KeptTile(state or "", body, etag_of(body))
    if state:
        cache.put(tile, fresh)
    return fresh


def etag_of(body: bytes) -> str:
    """Return a strong ETag (a quoted BLAKE2b digest) for a tile's bytes."""
    return f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Return whether an ``If-None-Match`` header names ``etag`` (weak comparison, or ``*``)."""
    if not if_none_match:
        return False
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return any(tag == "*" or tag.removeprefix("W/") == etag for tag in tags)
