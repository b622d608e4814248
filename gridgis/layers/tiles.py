"""Mapbox vector tiles of the layers, encoded by PostGIS (``ST_AsMVT``) in one round trip.

Tiles are addressed ``z/x/y`` in the XYZ scheme of EPSG:3857 (Web Mercator, x eastwards
from 180°W, y southwards from 85.05°N); stored geometries are EPSG:4326 and are transformed
per tile. A tile is 4096 units wide with a 64-unit buffer. The SQL of each layer is a named
file under ``sql/`` (``tile_<layer>.sql``): the lean shape of the peer baseline (tile
envelope, a bounding-box filter on the indexed 4326 column, no ORDER BY, no LIMIT). No
feature cap: a tile holds every live feature that touches it, or the request fails; only
geometries that shrink below one tile unit (a sliver in the buffer, a tiny polygon at a low
zoom) are left out by ``ST_AsMVTGeom``, as by any MVT encoder.
"""

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import psycopg
from sqlalchemy.orm import Session

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
# Parallel workers cost more to start than a tile query takes; SET LOCAL ends with the request.
NO_PARALLEL = "SET LOCAL max_parallel_workers_per_gather = 0"


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
def read_tile_sql(layer: str) -> str:
    """Return the tile query of a tiled ``layer``, behind NO_PARALLEL (two statements)."""
    return NO_PARALLEL + ";\n" + (SQL_DIR / TILE_SQL_FILES[layer]).read_text(encoding="utf-8")


def render_tile(session: Session, tile: TileAddress) -> bytes:
    """Return the tile as Mapbox vector tile bytes (empty when no feature touches it).

    NO_PARALLEL and the tile query go as one simple-protocol message (psycopg binds the three
    integers on the client), so a tile costs one round trip in the request's transaction.
    """
    driver = session.connection().connection.driver_connection
    if not isinstance(driver, psycopg.Connection):
        raise TypeError("vector tiles need the psycopg 3 driver (postgresql+psycopg://)")
    with psycopg.ClientCursor(driver) as cursor:
        cursor.execute(read_tile_sql(tile.layer), {"z": tile.z, "x": tile.x, "y": tile.y})
        cursor.nextset()  # past the SET LOCAL, to the tile
        row = cursor.fetchone()
    return bytes(row[0]) if row and row[0] is not None else b""


def etag_of(body: bytes) -> str:
    """Return a strong ETag (a quoted BLAKE2b digest) for a tile's bytes."""
    return f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Return whether an ``If-None-Match`` header names ``etag`` (weak comparison, or ``*``)."""
    if not if_none_match:
        return False
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return any(tag == "*" or tag.removeprefix("W/") == etag for tag in tags)
