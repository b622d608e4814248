"""Benchmark: vector tiles and GeoJSON pages of grids and buildings on the generated city,
gridgis against the bare SQL and against tipg, the peer a user would pick (DESIGN.md,
"Numbers to reach"; issue 8).

    .venv/bin/python bench/tiles.py                   # ~5 min on two cores
    .venv/bin/python bench/tiles.py --explain         # + EXPLAIN (ANALYZE, BUFFERS) of the tiles
    .venv/bin/python bench/tiles.py --n 40 --cap 2 --geojson-n 10 --skip-check   # a short one

Three servers of the same database (``--db``, default ``gridgis_bench``; make bench-city),
measured in one run:

* gridgis: a real ``gridgis serve`` on a loopback port, ``/tiles/{layer}/{z}/{x}/{y}.pbf``
  and ``/api/grids|buildings``, with the bearer token of a bench user (``command`` role) got
  through ``POST /api/auth/token``, keeping no tile (``GRIDGIS_TILE_CACHE_MB=0``): every
  request renders its tile, the figures compared with the bare SQL and with tipg;
* gridgis-kept: a second ``gridgis serve`` as it ships, keeping the tiles it rendered
  (``gridgis.layers.tiles.TileCache``), after one pass over the tiles (a command centre's
  first screen): its tiles are read, not rendered, while no table is written. Shown beside
  the others, never in their place;
* the bare SQL, serial through psycopg on one connection (parallel workers off, as gridgis
  sets per tile): gridgis's own tile query (``gridgis/layers/sql/tile_<layer>.sql``), the
  peer's "lean" shape (``ST_TileEnvelope``, the table's own columns, no join, no ORDER
  BY/LIMIT; ../shared/bench-peer/time_sql.py) and the shape tipg issues (all columns, buffer
  256, ORDER BY id LIMIT 10000);
* tipg (bench/peer-requirements.txt) in its own venv, ``var/bench-peer-venv`` (made here
  when missing: tipg pins its own FastAPI/Starlette), one uvicorn worker on a loopback port,
  showing only the tables ``grid`` and ``building`` (never residents), stopped at the end.

The tile list is the peer's: every tile over the city's extent at a zoom, or a seeded sample
of ``--max-tiles`` when there are more (z14-z16 at 200). For each layer and zoom:

* concurrency 1: the three bare queries, gridgis and tipg take turns, each once per tile
  (round), the first of a round changing from round to round, so that what is compared
  shares the machine's moods; at most ``--n`` rounds and 2 x ``--cap`` seconds. "g-lean" is
  the median over tiles of gridgis's HTTP time minus the lean query's on the same tile;
* concurrency 8 (``--conc``): gridgis's and tipg's cells alternate, each at most ``--n``
  requests and ``--cap`` seconds from one httpx client, rotating over the list; throughput
  is tiles/s there.

Before the load every listed tile of z12-z14 (and ``--check`` of z15/z16) is fetched once
from both servers and its features counted (the protobuf read here, no decoder needed)
against the live rows that intersect the tile (SQL): a tile with fewer is a truncated or a
lost one. tipg caps a tile at 10,000 features without a sign. Below z14 gridgis's building
tiles are points (``tile_building_points.sql``), counted by their points; tipg and the lean
query still send footprints there, so their bytes and times there are not like for like.

GeoJSON: the first 20 pages of 1,000 features (gridgis follows its keyset ``next`` links,
tipg takes ``offset``; the same rows), and a ~2 x 2 km bbox at the city's centre (limit
1,000), buildings as points (tipg ``geom-column=location``, as gridgis serves them); at
concurrency 1 taking turns, at 8 in alternating cells (``--geojson-n``, ``--geojson-cap``).

Prints the tables and writes ``bench/results/tiles-<db>.json`` (``--explain``: also
``bench/results/explain-tiles-<db>.txt``). Server logs go to /tmp/gridgis-tiles-*.log. All
traffic stays on 127.0.0.1 and every loop is bounded in count and time.
"""

import argparse
import asyncio
import functools
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from harness import RESULTS_DIR, bench_url, free_port, machine, percentile, prepare_database
from harness import serve as serve_gridgis
from harness import stop as stop_process
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from gridgis import auth, db
from gridgis.layers import tiles as gridgis_tiles

ROOT = Path(__file__).resolve().parent.parent
PEER_VENV = ROOT / "var" / "bench-peer-venv"
PEER_REQUIREMENTS = Path(__file__).with_name("peer-requirements.txt")
PEER_PACKAGES = ("tipg", "uvicorn", "starlette", "fastapi", "asyncpg", "morecantile")
USER = "bench_tiles"
PASSWORD = "correct horse battery"  # a bench user on a bench database only
ZOOMS = (12, 13, 14, 15, 16)
TIPG_CAP = 10_000  # tipg's max_features_per_tile (TIPG_MAX_FEATURES_PER_TILE)
PAGES = 20  # GeoJSON pages of 1,000 rotated over
# Targets (DESIGN.md "Numbers to reach").
THROUGHPUT_RATIO = 1.5  # gridgis tiles/s >= 1.5 x tipg's at concurrency 8
OVER_LEAN_MS = 3.0  # gridgis HTTP p50 - lean SQL p50 <= 3 ms at z14-16
GEOJSON_RATIO = 0.5  # gridgis median <= 0.5 x tipg's

# Layer in the gridgis URL -> (table, geometry tipg tiles, tipg items geometry).
LAYERS = {"grids": ("grid", "boundary", "boundary"),
          "buildings": ("building", "footprint", "location")}
# The peer's "lean" shape on our tables: the table's own columns, no join, no ORDER BY/LIMIT.
LEAN_SQL = {
    "grids": """WITH t AS (SELECT id, code, name, kind, households,
    ST_AsMVTGeom(ST_Transform(boundary, 3857), ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4096, 64,
                 true) AS geom
  FROM grid WHERE boundary && ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s,
                                                            margin => 64.0 / 4096), 4326))
SELECT ST_AsMVT(t.*, 'grids') FROM t""",
    "buildings": """WITH t AS (SELECT id, code, use, floors,
    ST_AsMVTGeom(ST_Transform(footprint, 3857), ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4096, 64,
                 true) AS geom
  FROM building WHERE footprint && ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s,
                                                                margin => 64.0 / 4096), 4326))
SELECT ST_AsMVT(t.*, 'buildings') FROM t""",
}
# The shape tipg 1.6 issues (../shared/bench-peer/time_sql.py, captured from the PG log):
# every column, transform per row, buffer 256, ST_Intersects on the 4326 tile, ORDER BY id
# LIMIT 10000.
TIPG_COLUMNS = {
    "grids": "code, community_id, created_at, households, id, kind, name, retired_at, "
             "updated_at, version",
    "buildings": "address, code, created_at, floors, grid_id, households, id, name, "
                 "retired_at, risk_flags, updated_at, use, version",
}
TIPG_SQL = """WITH t AS (SELECT {columns},
    ST_AsMVTGeom(ST_Transform(CAST({geom} AS geometry), 3857),
                 ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4096, 256, true) AS geom
  FROM public.{table}
  WHERE ST_Intersects({geom}, ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4326))
  ORDER BY id LIMIT 10000)
SELECT ST_AsMVT(t.*, 'default') FROM t"""
# Live rows that intersect the tile (no buffer): what a complete tile must hold at least.
INSIDE_SQL = {
    "grids": "SELECT count(*) FROM grid WHERE retired_at IS NULL AND "
             "ST_Intersects(boundary, ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4326))",
    "buildings": "SELECT count(*) FROM building WHERE retired_at IS NULL AND ("
                 "(footprint IS NOT NULL AND ST_Intersects(footprint, "
                 "ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4326))) OR "
                 "(footprint IS NULL AND ST_Intersects(location, "
                 "ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4326))))",
}
# Below zoom 14 gridgis's building tiles are points: a building is in the tile of its point.
INSIDE_POINTS_SQL = ("SELECT count(*) FROM building WHERE retired_at IS NULL AND "
                     "ST_Intersects(location, "
                     "ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4326))")
EXTENT_SQL = text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                  "(SELECT ST_Extent(boundary) AS e FROM grid WHERE retired_at IS NULL) AS t")

Tile = tuple[int, int, int]


# --- the tile list (as ../shared/bench-peer/tiles.py, over this city's extent) ---

def deg2num(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def tiles_for_zoom(extent: tuple[float, float, float, float], z: int, max_tiles: int,
                   seed: int = 7) -> list[Tile]:
    """Every tile over ``extent`` at zoom ``z``, or a seeded sample of ``max_tiles``."""
    x0, y0 = deg2num(extent[0], extent[3], z)
    x1, y1 = deg2num(extent[2], extent[1], z)
    every = [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
    if len(every) <= max_tiles:
        return every
    return random.Random(seed + z).sample(every, max_tiles)


# --- counting the features of a Mapbox vector tile (protobuf: Tile.layers=3, Layer.features=2)

def _varint(buf: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(field number, wire type, start, end) of each field in buf[start:end]."""
    out, i = [], start
    while i < end:
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, i = _varint(buf, i)
            out.append((field, wire, i, i))
        elif wire == 1:
            i += 8
        elif wire == 2:
            length, i = _varint(buf, i)
            out.append((field, wire, i, i + length))
            i += length
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"wire type {wire} in a vector tile")
    return out


def count_features(tile: bytes) -> int:
    """The number of features in all layers of a Mapbox vector tile."""
    return sum(1 for field, wire, s, e in _fields(tile, 0, len(tile)) if field == 3 and wire == 2
               for f, w, _, _ in _fields(tile, s, e) if f == 2 and w == 2)


# --- the database side ---

def prepare(url: str) -> tuple[tuple[float, float, float, float], dict[str, int]]:
    """Migrate the database when needed, make the bench user; return the grids' extent and
    the live counts."""
    prepare_database(url, None)
    engine = db.make_engine(url)
    try:
        with Session(engine) as session:
            extent = session.execute(EXTENT_SQL).one()
            if extent[0] is None:
                raise SystemExit(f"{make_url(url).database} has no grids: make bench-city")
            counts = {layer: int(session.scalar(text(
                f"SELECT count(*) FROM {table} WHERE retired_at IS NULL")) or 0)
                for layer, (table, _, _) in LAYERS.items()}
            if not session.scalar(text("SELECT 1 FROM app_user WHERE username = :u"),
                                  {"u": USER}):
                auth.add_user(session, USER, "command", PASSWORD, [])
                session.commit()
        return (float(extent[0]), float(extent[1]), float(extent[2]), float(extent[3])), counts
    finally:
        engine.dispose()


def libpq_url(url: str) -> str:
    """The SQLAlchemy URL as libpq/asyncpg take it (no ``+psycopg``)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def gridgis_tile_sql(layer: str, z: int) -> str:
    sql_file = gridgis_tiles.tile_sql_file(layer, z)
    return (gridgis_tiles.SQL_DIR / sql_file).read_text("utf-8")


@functools.cache
def sql_variants(layer: str, z: int) -> dict[str, str]:
    table, geom, _ = LAYERS[layer]
    return {"gridgis": gridgis_tile_sql(layer, z), "lean": LEAN_SQL[layer],
            "tipg-shape": TIPG_SQL.format(columns=TIPG_COLUMNS[layer], geom=geom, table=table)}


class SqlTimer:
    """The bare tile queries, serial on one connection (parallel workers off, as gridgis sets
    per tile): client wall time over TCP, the bytes' transfer included."""

    def __init__(self, url: str):
        self.conn = psycopg.connect(libpq_url(url), autocommit=True)
        self.conn.execute("SET max_parallel_workers_per_gather = 0")
        self.cursor = psycopg.ClientCursor(self.conn)

    def tile(self, layer: str, variant: str, tile: Tile) -> int:
        """Run one query; return the tile's size in bytes."""
        z, x, y = tile
        self.cursor.execute(sql_variants(layer, z)[variant], {"z": z, "x": x, "y": y})
        row = self.cursor.fetchone()
        return len(row[0]) if row and row[0] else 0

    def close(self) -> None:
        self.cursor.close()
        self.conn.close()


def inside_counts(url: str, checks: dict[str, list[Tile]]) -> dict[str, dict[Tile, int]]:
    out: dict[str, dict[Tile, int]] = {}
    points_below = {layer: below for layer, (below, _) in gridgis_tiles.LOW_ZOOM_SQL_FILES.items()}
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        cursor = psycopg.ClientCursor(conn)
        for layer, tiles in checks.items():
            out[layer] = {}
            for (z, x, y) in tiles:
                inside = INSIDE_POINTS_SQL if z < points_below.get(layer, 0) else INSIDE_SQL[layer]
                cursor.execute(inside, {"z": z, "x": x, "y": y})
                row = cursor.fetchone()
                out[layer][(z, x, y)] = int(row[0]) if row else 0
        cursor.close()
    return out


def explain(url: str, lists: dict[int, list[Tile]], layers: list[str]) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of gridgis's tile query and the lean one, at z12, z14 and
    z16, on the first tile of each zoom's list (warmed once)."""
    parts = []
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("SET max_parallel_workers_per_gather = 0")
        cursor = psycopg.ClientCursor(conn)
        for layer in layers:
            for z in [z for z in (12, 14, 16) if z in lists]:
                z_, x, y = lists[z][0]
                params = {"z": z_, "x": x, "y": y}
                for variant, sql in sql_variants(layer, z_).items():
                    if variant == "tipg-shape":
                        continue
                    cursor.execute(sql, params)  # warm
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                    plan = "\n".join(str(r[0]) for r in cursor.fetchall())
                    parts.append(f"=== {layer} {z}/{x}/{y} {variant} ===\n{plan}\n")
        cursor.close()
    return "\n".join(parts)


# --- tipg in its own venv ---

def peer_venv() -> Path:
    """The venv of tipg (made and filled from bench/peer-requirements.txt when missing or
    when the requirements changed); return its bin folder."""
    bin_dir = PEER_VENV / "bin"
    stamp = PEER_VENV / "bench-requirements.txt"
    wanted = PEER_REQUIREMENTS.read_text("utf-8")
    if not (bin_dir / "python").exists():
        python = shutil.which("python3") or sys.executable
        print(f"making {PEER_VENV} ...", flush=True)
        subprocess.run([python, "-m", "venv", str(PEER_VENV)], check=True)
    if not stamp.exists() or stamp.read_text("utf-8") != wanted:
        print(f"installing {PEER_REQUIREMENTS.name} into {PEER_VENV} ...", flush=True)
        subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "-r",
                        str(PEER_REQUIREMENTS)], check=True)
        stamp.write_text(wanted, "utf-8")
    return bin_dir


def peer_versions(bin_dir: Path) -> dict[str, str]:
    code = ("import json, importlib.metadata as m; print(json.dumps({p: m.version(p) "
            f"for p in {PEER_PACKAGES!r}}}))")
    out = subprocess.run([str(bin_dir / "python"), "-c", code], capture_output=True,
                         text=True, check=True).stdout
    return dict(json.loads(out))


def start_tipg(bin_dir: Path, url: str, log: Any,
               workdir: str) -> tuple[subprocess.Popen[bytes], str]:
    """tipg (one uvicorn worker) on a free loopback port, showing grid and building only."""
    port = free_port()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": workdir,
           "LANG": "C.UTF-8",
           "DATABASE_URL": libpq_url(url),
           "TIPG_DB_SCHEMAS": '["public"]',
           "TIPG_DB_TABLES": '["public.grid", "public.building"]',
           "TIPG_DB_FUNCTIONS": "[]",  # no function collections either
           "TIPG_MAX_FEATURES_PER_TILE": str(TIPG_CAP),
           "TIPG_DEFAULT_MINZOOM": "0", "TIPG_DEFAULT_MAXZOOM": "22"}
    # cwd: a folder of our own, so that tipg reads no .env of anyone's
    process = subprocess.Popen(
        [str(bin_dir / "uvicorn"), "tipg.main:app", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--log-level", "warning", "--no-access-log"],
        cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"tipg exited with {process.returncode}; see {log.name}")
        try:
            with urllib.request.urlopen(f"{base}/collections", timeout=5) as answer:
                ids = sorted(c["id"] for c in json.load(answer)["collections"])
            break
        except OSError:
            time.sleep(0.3)
    else:
        stop_process(process)
        raise SystemExit(f"tipg did not start; see {log.name}")
    if ids != ["public.building", "public.grid"]:
        stop_process(process)
        raise SystemExit(f"tipg shows {ids}, not only grid and building: stopped")
    return process, base


# --- the HTTP load ---

def summarise(lat: list[float]) -> dict[str, Any]:
    ordered = sorted(lat)
    return {"n": len(lat), "p50_ms": round(statistics.median(ordered), 2),
            "p95_ms": round(percentile(ordered, 95), 2), "max_ms": round(ordered[-1], 2)}


Measure = Callable[[int], Awaitable[tuple[str, int]]]  # round -> (status, bytes)


async def run_paired(measures: dict[str, Measure], n: int, cap: float
                     ) -> dict[str, dict[str, Any]]:
    """Concurrency 1, the measures taking turns: round i runs each once (on the same tile),
    starting with a different one each round; at most ``n`` rounds and ``cap`` seconds. So
    the figures compared share the machine's moods. Each measure's cell, and
    ``paired``: per pair of measures, the median and p95 of the per-round differences."""
    names = list(measures)
    rounds: list[dict[str, float]] = []
    statuses: dict[str, Counter[str]] = {name: Counter() for name in names}
    sizes: dict[str, list[int]] = {name: [] for name in names}
    end = time.perf_counter() + cap
    started = time.perf_counter()
    for i in range(n):
        if time.perf_counter() > end:
            break
        turn = i % len(names)
        got: dict[str, float] = {}
        for name in names[turn:] + names[:turn]:
            t0 = time.perf_counter()
            try:
                status, size = await measures[name](i)
            except httpx.HTTPError as error:
                statuses[name][type(error).__name__] += 1
                continue
            got[name] = (time.perf_counter() - t0) * 1000
            statuses[name][status] += 1
            sizes[name].append(size)
        rounds.append(got)
    wall = time.perf_counter() - started
    cells: dict[str, dict[str, Any]] = {}
    for name in names:
        lat = [r[name] for r in rounds if name in r]
        errors = sum(v for k, v in statuses[name].items() if k not in ("200", "204"))
        cells[name] = {"conc": 1, **(summarise(lat) if lat else {"n": 0}), "errors": errors,
                       "statuses": dict(statuses[name]), "wall_s": round(wall, 2),
                       "mean_kb": round(statistics.mean(sizes[name]) / 1024, 1)
                       if sizes[name] else 0.0, "paired": {}}
        for other in names:
            diffs = [r[name] - r[other] for r in rounds if name in r and other in r]
            if other != name and diffs:
                ordered = sorted(diffs)
                cells[name]["paired"][other] = {
                    "p50_ms": round(statistics.median(ordered), 2),
                    "p95_ms": round(percentile(ordered, 95), 2)}
    return cells


async def run_cell(client: httpx.AsyncClient, urls: list[str], conc: int, n: int,
                   cap: float) -> dict[str, Any]:
    """At most ``n`` requests (rotating over ``urls``) from ``conc`` workers, for at most
    ``cap`` seconds; latency of each, statuses, bytes."""
    lat: list[float] = []
    sizes: list[int] = []
    statuses: Counter[str] = Counter()
    sent = 0
    end = time.perf_counter() + cap

    async def worker() -> None:
        nonlocal sent
        while sent < n and time.perf_counter() < end:
            url = urls[sent % len(urls)]
            sent += 1
            t0 = time.perf_counter()
            try:
                answer = await client.get(url)
                body = answer.content
                statuses[str(answer.status_code)] += 1
            except httpx.HTTPError as error:
                statuses[type(error).__name__] += 1
                continue
            lat.append((time.perf_counter() - t0) * 1000)
            sizes.append(len(body))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conc)))
    wall = time.perf_counter() - started
    errors = sum(v for k, v in statuses.items() if k not in ("200", "204"))
    return {"conc": conc, **summarise(lat), "errors": errors, "statuses": dict(statuses),
            "wall_s": round(wall, 2), "rps": round(len(lat) / wall, 1),
            "mean_kb": round(statistics.mean(sizes) / 1024, 1) if sizes else 0.0}


def tile_urls(server: str, base: str, layer: str, tiles: list[Tile]) -> list[str]:
    if server == "gridgis":
        return [f"{base}/tiles/{layer}/{z}/{x}/{y}.pbf" for (z, x, y) in tiles]
    table, geom, _ = LAYERS[layer]
    return [f"{base}/collections/public.{table}/tiles/WebMercatorQuad/{z}/{x}/{y}"
            f"?geom-column={geom}" for (z, x, y) in tiles]


async def fetch_counts(client: httpx.AsyncClient, urls: list[str]) -> list[int]:
    """Each tile once (four at a time); its feature count (-1: not a 200/204)."""
    gate = asyncio.Semaphore(4)

    async def one(url: str) -> int:
        async with gate:
            answer = await client.get(url)
        if answer.status_code == 204:
            return 0
        if answer.status_code != 200:
            return -1
        return count_features(answer.content)

    return list(await asyncio.gather(*(one(u) for u in urls)))


async def geojson_lists(gclient: httpx.AsyncClient, gbase: str, tbase: str,
                        extent: tuple[float, float, float, float]
                        ) -> dict[tuple[str, str], dict[str, list[str]]]:
    """(kind, layer) -> server -> the URLs: PAGES pages of 1,000, and a ~2 x 2 km bbox."""
    cx, cy = (extent[0] + extent[2]) / 2, (extent[1] + extent[3]) / 2
    bbox = f"{cx - 0.01:.4f},{cy - 0.009:.4f},{cx + 0.01:.4f},{cy + 0.009:.4f}"
    out: dict[tuple[str, str], dict[str, list[str]]] = {}
    for layer, (table, _, geom) in LAYERS.items():
        pages: list[str] = []
        url = f"{gbase}/api/{layer}?limit=1000"
        while len(pages) < PAGES and url:
            pages.append(url)
            answer = await gclient.get(url)
            answer.raise_for_status()
            nxt = [link["href"] for link in answer.json()["links"] if link["rel"] == "next"]
            url = nxt[0] if nxt else ""
        geom_param = f"&geom-column={geom}" if geom != "boundary" else ""
        tipg_items = f"{tbase}/collections/public.{table}/items?limit=1000{geom_param}"
        out[("pages", layer)] = {
            "gridgis": pages,
            "tipg": [f"{tipg_items}&offset={o}" for o in range(0, 1000 * len(pages), 1000)]}
        out[("bbox", layer)] = {"gridgis": [f"{gbase}/api/{layer}?limit=1000&bbox={bbox}"],
                                "tipg": [f"{tipg_items}&bbox={bbox}"]}
    return out


def http_measure(client: httpx.AsyncClient, urls: list[str]) -> Measure:
    async def measure(i: int) -> tuple[str, int]:
        answer = await client.get(urls[i % len(urls)])
        return str(answer.status_code), len(answer.content)
    return measure


def sql_measure(timer: SqlTimer, layer: str, variant: str, tiles: list[Tile]) -> Measure:
    async def measure(i: int) -> tuple[str, int]:
        # blocks the loop: nothing else is in flight at concurrency 1
        return "200", timer.tile(layer, variant, tiles[i % len(tiles)])
    return measure


def show(cell: dict[str, Any], label: str) -> None:
    if not cell["n"]:
        print(f"  {label}: nothing measured {cell['statuses']}", flush=True)
        return
    rate = f"  {cell['rps']:6.1f}/s" if "rps" in cell else ""
    print(f"  {label}: p50 {cell['p50_ms']:7.1f}  p95 {cell['p95_ms']:7.1f} ms{rate}  n "
          f"{cell['n']}  {cell['mean_kb']} KB  err {cell['errors']}", flush=True)


async def http_phase(args: argparse.Namespace, gbase: str, kbase: str, tbase: str,
                     lists: dict[int, list[Tile]], extent: tuple[float, float, float, float],
                     results: dict[str, Any]) -> None:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    common: dict[str, Any] = {"limits": limits, "timeout": httpx.Timeout(120.0)}
    async with httpx.AsyncClient(headers={"Accept-Encoding": "identity"}, **common) as login:
        answer = await login.post(f"{gbase}/api/auth/token",
                                  data={"username": USER, "password": PASSWORD})
        answer.raise_for_status()
        token = answer.json()["access_token"]
    timer = SqlTimer(args.url)
    async with (httpx.AsyncClient(headers={"Accept-Encoding": "identity",
                                           "Authorization": f"Bearer {token}"},
                                  **common) as gclient,
                httpx.AsyncClient(headers={"Accept-Encoding": "identity"}, **common) as tclient):
        clients = {"gridgis": (gclient, gbase), "tipg": (tclient, tbase)}
        kept = {"gridgis-kept": (gclient, kbase)}  # the same token: one database

        # 1. every tile once from both (a warm-up too): features against the rows inside
        if not args.skip_check:
            print("counting features per tile ...", flush=True)
            checks = {layer: [t for z in lists
                              for t in (lists[z] if z <= 14 else lists[z][:args.check])]
                      for layer in args.layers}
            inside = await asyncio.to_thread(inside_counts, args.url, checks)
            rows = []
            for layer, tiles in checks.items():
                got = {server: await fetch_counts(client, tile_urls(server, base, layer, tiles))
                       for server, (client, base) in clients.items()}
                for i, (z, x, y) in enumerate(tiles):
                    rows.append({"layer": layer, "tile": f"{z}/{x}/{y}", "zoom": z,
                                 "inside": inside[layer][(z, x, y)],
                                 "gridgis": got["gridgis"][i], "tipg": got["tipg"][i]})
            results["feature_check"] = rows
        else:
            for layer in args.layers:  # a warm-up pass instead
                for server, (client, base) in clients.items():
                    for z in lists:
                        await fetch_counts(client, tile_urls(server, base, layer, lists[z][:20]))

        # 1b. gridgis-kept renders every tile once, and keeps it
        for layer in args.layers:
            for z in lists:
                await fetch_counts(gclient, tile_urls("gridgis", kbase, layer, lists[z]))

        # 2. the floor of each HTTP stack, no database: gridgis refusing a tile without a
        # token (401: routing, dependencies, a worker thread, the error handler) and tipg's
        # /healthz (routing, a worker thread)
        top = lists[max(lists)]
        floor = await run_paired(
            {"gridgis-401": http_measure(tclient, tile_urls("gridgis", gbase, "grids", top)),
             "tipg-healthz": http_measure(tclient, [f"{tbase}/healthz"])}, args.n, args.cap)
        for name, cell in floor.items():
            cell.update(kind="floor", server=name)
            results["http"].append(cell)
            show(cell, f"{name:14} floor")

        # 3. tiles: at concurrency 1 the bare queries, gridgis and tipg take turns per tile;
        # above, gridgis's and tipg's cells alternate
        print("tiles ...", flush=True)
        flip = False
        for layer in args.layers:
            for z in lists:
                urls = {server: tile_urls(server, base, layer, lists[z])
                        for server, (_, base) in clients.items()}
                measures = {f"sql-{variant}": sql_measure(timer, layer, variant, lists[z])
                            for variant in sql_variants(layer, z)}
                urls["gridgis-kept"] = tile_urls("gridgis", kbase, layer, lists[z])
                measures.update({server: http_measure(client, urls[server])
                                 for server, (client, _) in (clients | kept).items()})
                for tile in lists[z][:3]:  # the connection's first queries are dearer
                    for variant in sql_variants(layer, z):
                        timer.tile(layer, variant, tile)
                cells = await run_paired(measures, args.n, args.cap * 2)
                for name, cell in cells.items():
                    cell.update(kind="tile", server=name, layer=layer, zoom=z,
                                distinct_tiles=len(lists[z]))
                    results["http"].append(cell)
                    show(cell, f"{name:14} {layer:9} z{z} c1")
                for conc in [c for c in args.conc if c > 1]:
                    order = ["gridgis", "tipg"] if not flip else ["tipg", "gridgis"]
                    flip = not flip
                    for server in [*order, "gridgis-kept"]:
                        client, _ = (clients | kept)[server]
                        cell = await run_cell(client, urls[server], conc, args.n, args.cap)
                        cell.update(kind="tile", server=server, layer=layer, zoom=z,
                                    distinct_tiles=len(lists[z]))
                        results["http"].append(cell)
                        show(cell, f"{server:14} {layer:9} z{z} c{conc}")

        # 4. GeoJSON
        print("GeoJSON ...", flush=True)
        lists_json = await geojson_lists(gclient, gbase, tbase, extent)
        for (kind, layer), by_server in lists_json.items():
            if layer not in args.layers:
                continue
            for server in ("gridgis", "tipg"):
                client, _ = clients[server]
                answer = await client.get(by_server[server][0])
                body = answer.json()
                results["geojson_check"].append({
                    "kind": kind, "layer": layer, "server": server,
                    "status": answer.status_code, "features": len(body.get("features", [])),
                    "bytes": len(answer.content),
                    "geometry": (body.get("features") or [{}])[0].get("geometry", {}).get("type")})
            cells = await run_paired({server: http_measure(client, by_server[server])
                                      for server, (client, _) in clients.items()},
                                     args.geojson_n, args.geojson_cap * 2)
            for name, cell in cells.items():
                cell.update(kind=f"geojson-{kind}", server=name, layer=layer,
                            distinct_urls=len(by_server[name]))
                results["http"].append(cell)
                show(cell, f"{name:8} {kind:5} {layer:9} c1")
            for conc in [c for c in args.conc if c > 1]:
                for server in ("gridgis", "tipg"):
                    client, _ = clients[server]
                    cell = await run_cell(client, by_server[server], conc, args.geojson_n,
                                          args.geojson_cap)
                    cell.update(kind=f"geojson-{kind}", server=server, layer=layer,
                                distinct_urls=len(by_server[server]))
                    results["http"].append(cell)
                    show(cell, f"{server:8} {kind:5} {layer:9} c{conc}")
    timer.close()


# --- the summary ---

def find(cells: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    return next((c for c in cells if all(c.get(k) == v for k, v in match.items())), None)


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def summarise_run(results: dict[str, Any], layers: list[str],
                  concs: list[int]) -> dict[str, Any]:
    http = results["http"]
    high = max(concs)
    tiles = []
    zooms = sorted({c["zoom"] for c in http if c["kind"] == "tile"})
    for layer in layers:
        for z in zooms:
            row: dict[str, Any] = {"layer": layer, "zoom": z}
            for variant in ("lean", "gridgis", "tipg-shape"):
                cell = find(http, kind="tile", server=f"sql-{variant}", layer=layer, zoom=z)
                row[f"sql_{variant}"] = [cell["p50_ms"], cell["p95_ms"]] if cell else None
            for server in ("gridgis", "tipg", "gridgis-kept"):
                for conc in concs:
                    cell = find(http, kind="tile", server=server, layer=layer, zoom=z, conc=conc)
                    row[f"{server}_c{conc}"] = ([cell["p50_ms"], cell["p95_ms"]]
                                                if cell else None)
                    if cell and conc == high:
                        row[f"{server}_rps"] = cell["rps"]
                    if cell and conc == min(concs):
                        row[f"{server}_kb"] = cell["mean_kb"]
            g1 = row.get("gridgis_c1")
            paired = (find(http, kind="tile", server="gridgis", layer=layer, zoom=z, conc=1)
                      or {}).get("paired", {})
            # per tile, gridgis over HTTP minus the bare query on the same round
            row["over_lean_ms"] = paired.get("sql-lean", {}).get("p50_ms")
            row["over_own_sql_ms"] = paired.get("sql-gridgis", {}).get("p50_ms")
            row["rps_ratio"] = ratio(row.get("gridgis_rps"), row.get("tipg_rps"))
            row["kept_rps_ratio"] = ratio(row.get("gridgis-kept_rps"), row.get("tipg_rps"))
            kept = (find(http, kind="tile", server="gridgis-kept", layer=layer, zoom=z, conc=1)
                    or {}).get("paired", {})
            row["kept_over_lean_ms"] = kept.get("sql-lean", {}).get("p50_ms")
            t1 = row.get("tipg_c1")
            row["p50_ratio_c1"] = ratio(g1[0] if g1 else None, t1[0] if t1 else None)
            tiles.append(row)
    geojson = []
    for kind in ("geojson-pages", "geojson-bbox"):
        for layer in layers:
            for conc in concs:
                g = find(http, kind=kind, server="gridgis", layer=layer, conc=conc)
                t = find(http, kind=kind, server="tipg", layer=layer, conc=conc)
                if g and t:
                    geojson.append({"kind": kind, "layer": layer, "conc": conc,
                                    "gridgis": [g["p50_ms"], g["p95_ms"]],
                                    "tipg": [t["p50_ms"], t["p95_ms"]],
                                    "gridgis_kb": g["mean_kb"], "tipg_kb": t["mean_kb"],
                                    "p50_ratio": ratio(g["p50_ms"], t["p50_ms"])})
    check = results.get("feature_check") or []
    truncated = [r for r in check if 0 <= r["tipg"] < r["inside"]]
    short = [r for r in check if r["gridgis"] < r["inside"]]
    errors = sum(c["errors"] for c in http)
    rps_ratios = [r["rps_ratio"] for r in tiles if r["rps_ratio"]]
    over = [r["over_lean_ms"] for r in tiles if r["zoom"] >= 14 and r["over_lean_ms"] is not None]
    # The target is for pages of 1,000 features; a small bbox (~50 features) is reported.
    json_ratios = [r["p50_ratio"] for r in geojson
                   if r["kind"] == "geojson-pages" and r["p50_ratio"] is not None]
    kept_ratios = [r["kept_rps_ratio"] for r in tiles if r["kept_rps_ratio"]]
    kept_over = [r["kept_over_lean_ms"] for r in tiles
                 if r["zoom"] >= 14 and r["kept_over_lean_ms"] is not None]
    targets = {
        "throughput_vs_tipg": {
            "target": f">= {THROUGHPUT_RATIO}x at concurrency {high}",
            "min": min(rps_ratios, default=None),
            "geomean": round(math.exp(statistics.mean(math.log(r) for r in rps_ratios)), 2)
            if rps_ratios else None,
            "met": bool(rps_ratios) and min(rps_ratios) >= THROUGHPUT_RATIO},
        "over_lean_sql_z14_16": {
            "target": f"<= {OVER_LEAN_MS} ms (median of per-tile differences, concurrency 1)",
            "max": max(over, default=None),
            "met": bool(over) and max(over) <= OVER_LEAN_MS},
        "kept_tiles_throughput_vs_tipg": {
            "target": f"(as shipped, tiles kept) >= {THROUGHPUT_RATIO}x at concurrency {high}",
            "min": min(kept_ratios, default=None),
            "geomean": round(math.exp(statistics.mean(math.log(r) for r in kept_ratios)), 2)
            if kept_ratios else None,
            "met": bool(kept_ratios) and min(kept_ratios) >= THROUGHPUT_RATIO},
        "kept_tiles_over_lean_sql_z14_16": {
            "target": f"(as shipped, tiles kept) <= {OVER_LEAN_MS} ms",
            "max": max(kept_over, default=None),
            "met": bool(kept_over) and max(kept_over) <= OVER_LEAN_MS},
        "no_truncated_tile": {
            "target": "gridgis never has fewer features than the live rows inside the tile",
            "tiles_checked": len(check), "gridgis_short": len(short),
            "tipg_truncated": len(truncated), "met": not short if check else None},
        "geojson_vs_tipg": {
            "target": f"pages of 1,000 features: <= {GEOJSON_RATIO}x tipg's median",
            "max": max(json_ratios, default=None),
            "met": bool(json_ratios) and max(json_ratios) <= GEOJSON_RATIO},
    }
    by_zoom: dict[str, dict[str, int]] = {}
    for r in check:
        tally = by_zoom.setdefault(f"{r['layer']} z{r['zoom']}", {
            "checked": 0, "tipg_truncated": 0, "gridgis_short": 0, "max_inside": 0,
            "tipg_features_lost": 0})
        tally["checked"] += 1
        tally["tipg_truncated"] += 0 <= r["tipg"] < r["inside"]
        tally["gridgis_short"] += r["gridgis"] < r["inside"]
        tally["max_inside"] = max(tally["max_inside"], r["inside"])
        tally["tipg_features_lost"] += max(0, r["inside"] - r["tipg"]) if r["tipg"] >= 0 else 0
    floor = {name: [c["p50_ms"], c["p95_ms"]] for name in ("gridgis-401", "tipg-healthz")
             if (c := find(http, kind="floor", server=name)) and c["n"]}
    errors -= sum(c["statuses"].get("401", 0) for c in http if c["kind"] == "floor")
    return {"tiles": tiles, "geojson": geojson, "targets": targets, "http_errors": errors,
            "floor": floor, "truncation_by_zoom": by_zoom,
            "tipg_truncated_tiles": truncated, "gridgis_short_tiles": short}


def fmt(pair: list[float] | None) -> str:
    return f"{pair[0]:.1f}/{pair[1]:.1f}" if pair else "-"


def num(value: float | None, spec: str = ".2f") -> str:
    return format(value, spec) if value is not None else "-"


def print_tables(summary: dict[str, Any], concs: list[int]) -> None:
    low, high = min(concs), max(concs)
    print(f"\nTiles at concurrency {low}, p50/p95 ms (SQL serial, taking turns with HTTP per "
          "tile); g-lean, g-own: per-tile gridgis minus the lean / its own SQL (median); KB "
          "gridgis/tipg")
    head = ("layer", "z", "KB g/t", "SQL lean", "SQL gridgis", "SQL tipg", f"gridgis c{low}",
            f"tipg c{low}", "g-lean", "g-own", "g/tipg")
    line: Callable[..., str] = ("{:<9} {:>2} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12} {:>7} "
                                "{:>7} {:>6}").format
    print(line(*head))
    for r in summary["tiles"]:
        kb = f"{num(r.get('gridgis_kb'), '.1f')}/{num(r.get('tipg_kb'), '.1f')}"
        print(line(r["layer"], r["zoom"], kb, fmt(r["sql_lean"]), fmt(r["sql_gridgis"]),
                   fmt(r["sql_tipg-shape"]), fmt(r.get(f"gridgis_c{low}")),
                   fmt(r.get(f"tipg_c{low}")), num(r["over_lean_ms"]),
                   num(r["over_own_sql_ms"]), num(r["p50_ratio_c1"])))
    print(f"\nTiles at concurrency {high}: p50/p95 ms and tiles/s; kept: gridgis as shipped, "
          "its tiles kept after one pass")
    line = "{:<9} {:>2} {:>13} {:>13} {:>9} {:>9} {:>7} {:>13} {:>9} {:>7} {:>7}".format
    print(line("layer", "z", f"gridgis c{high}", f"tipg c{high}", "gridgis/s", "tipg/s",
               "ratio", f"kept c{high}", "kept/s", "ratio", "k-lean"))
    for r in summary["tiles"]:
        print(line(r["layer"], r["zoom"], fmt(r.get(f"gridgis_c{high}")),
                   fmt(r.get(f"tipg_c{high}")), num(r.get("gridgis_rps"), ".1f"),
                   num(r.get("tipg_rps"), ".1f"), num(r["rps_ratio"]),
                   fmt(r.get(f"gridgis-kept_c{high}")), num(r.get("gridgis-kept_rps"), ".1f"),
                   num(r["kept_rps_ratio"]), num(r["kept_over_lean_ms"])))
    print("\nGeoJSON (limit=1000), p50/p95 ms")
    line = "{:<14} {:<9} {:>2} {:>13} {:>13} {:>9} {:>9} {:>6}".format
    print(line("request", "layer", "c", "gridgis", "tipg", "KB g", "KB t", "g/t"))
    for r in summary["geojson"]:
        print(line(r["kind"], r["layer"], r["conc"], fmt(r["gridgis"]), fmt(r["tipg"]),
                   num(r["gridgis_kb"], ".0f"), num(r["tipg_kb"], ".0f"), num(r["p50_ratio"])))
    print("\nHTTP floor, no database, p50/p95 ms:",
          ", ".join(f"{k} {fmt(v)}" for k, v in summary["floor"].items()))
    print("\nTruncated tiles: tipg", len(summary["tipg_truncated_tiles"]), "; gridgis short",
          len(summary["gridgis_short_tiles"]))
    for key, tally in summary["truncation_by_zoom"].items():
        print(f"  {key}: {tally['checked']} checked, tipg truncated {tally['tipg_truncated']} "
              f"(lost {tally['tipg_features_lost']:,} features), gridgis short "
              f"{tally['gridgis_short']}, most features inside one tile {tally['max_inside']:,}")
    for r in summary["tipg_truncated_tiles"][:5]:
        print(f"  tipg {r['layer']} {r['tile']}: {r['tipg']} of {r['inside']} inside "
              f"(gridgis {r['gridgis']})")
    for r in summary["gridgis_short_tiles"][:12]:
        print(f"  GRIDGIS {r['layer']} {r['tile']}: {r['gridgis']} of {r['inside']} inside")
    print("\nTargets")
    for name, target in summary["targets"].items():
        shown = {k: v for k, v in target.items() if k not in ("target", "met")}
        verdict = {True: "MET", False: "MISSED", None: "NOT MEASURED"}[target["met"]]
        print(f"  {name}: {target['target']}: {verdict} {shown}")
    if summary["http_errors"]:
        print(f"  HTTP errors: {summary['http_errors']} (see the cells' statuses)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="gridgis_bench")
    parser.add_argument("--layers", nargs="+", choices=list(LAYERS), default=list(LAYERS))
    parser.add_argument("--zooms", type=int, nargs="+", choices=ZOOMS, default=list(ZOOMS))
    parser.add_argument("--conc", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--max-tiles", type=int, default=200, help="tiles listed per zoom")
    parser.add_argument("--n", type=int, default=160,
                        help="requests per tile cell (rounds at concurrency 1) at most")
    parser.add_argument("--cap", type=float, default=5.0,
                        help="seconds per tile cell at most (twice that at concurrency 1)")
    parser.add_argument("--geojson-n", type=int, default=40)
    parser.add_argument("--geojson-cap", type=float, default=6.0)
    parser.add_argument("--check", type=int, default=30,
                        help="tiles of z15 and z16 whose features are counted (z12-14: all)")
    parser.add_argument("--skip-check", action="store_true", help="count no features")
    parser.add_argument("--explain", action="store_true",
                        help="write EXPLAIN (ANALYZE, BUFFERS) of the tile queries")
    args = parser.parse_args()
    args.conc = sorted(set(args.conc) | {1})  # concurrency 1 is where the bare SQL runs
    args.url = bench_url(args.db)
    started = time.perf_counter()
    extent, counts = prepare(args.url)
    lists = {z: tiles_for_zoom(extent, z, args.max_tiles) for z in sorted(set(args.zooms))}
    print(f"{args.db}: {counts}; extent {tuple(round(v, 4) for v in extent)}; tiles per zoom "
          f"{ {z: len(t) for z, t in lists.items()} }", flush=True)
    bin_dir = peer_venv()
    engine = db.make_engine(args.url)
    try:
        about = machine(engine)
    finally:
        engine.dispose()
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"), "db": args.db,
        "counts": counts, "extent": extent, "machine": about, "peer": peer_versions(bin_dir),
        "settings": {k: v for k, v in vars(args).items() if k != "url"},
        "tiles_per_zoom": {z: len(t) for z, t in lists.items()},
        "http": [], "geojson_check": []}

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    gridgis_log = Path(tempfile.gettempdir()) / f"gridgis-tiles-{stamp}-serve.log"
    tipg_log = Path(tempfile.gettempdir()) / f"gridgis-tiles-{stamp}-tipg.log"
    print(f"server logs: {gridgis_log} {tipg_log}", flush=True)
    with (gridgis_log.open("wb") as glog, tipg_log.open("wb") as tlog,
          tempfile.TemporaryDirectory(prefix="bench-tipg-") as workdir):
        gproc, gbase = serve_gridgis(args.url, glog, {"GRIDGIS_TILE_CACHE_MB": "0"})
        kproc, kbase = serve_gridgis(args.url, glog)
        try:
            tproc, tbase = start_tipg(bin_dir, args.url, tlog, workdir)
            try:
                asyncio.run(http_phase(args, gbase, kbase, tbase, lists, extent, results))
            finally:
                stop_process(tproc)
        finally:
            stop_process(gproc)
            stop_process(kproc)

    RESULTS_DIR.mkdir(exist_ok=True)
    if args.explain:
        path = RESULTS_DIR / f"explain-tiles-{args.db}.txt"
        path.write_text(explain(args.url, lists, args.layers), "utf-8")
        print(f"plans: {path}")
    results["summary"] = summarise_run(results, args.layers, args.conc)
    results["seconds"] = round(time.perf_counter() - started, 1)
    print_tables(results["summary"], args.conc)
    path = RESULTS_DIR / f"tiles-{args.db}.json"
    path.write_text(json.dumps(results, indent=1, default=str), "utf-8")
    print(f"\n{results['seconds']} s; figures: {path}")


if __name__ == "__main__":
    main()
