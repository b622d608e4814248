"""Hostile geometries by what they are for: an area, a point, a split line (GeoJSON), a box.

Each case names what is wrong and what the refusal must say (a regular expression, matched
against the answer's whole JSON), and what an import of a file holding it must say instead
where GDAL reads files its own way: it leaves out geometry it cannot read (``MALFORMED``),
and a file may hold what an endpoint refuses (a point for a building). Everything sits in
Hengqin (lon 113.52, lat 22.14, inside the demo's first grid) unless being elsewhere is the
point. NaN and infinities are Python floats: ``json.dumps`` writes them as ``NaN`` and
``Infinity``, which Python's JSON reader (and so FastAPI's) accepts.
"""

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

NAN, INF = float("nan"), float("inf")
W, S, E, N = 113.5245, 22.1385, 113.5250, 22.1390  # a 50 m square in grid 440402100001001
SQUARE = [[W, S], [E, S], [E, N], [W, N], [W, S]]  # counter-clockwise, as RFC 7946 wants
POINT = [(W + E) / 2, (S + N) / 2]
MILLION = 1_000_000
MALFORMED = r"malformed in the file"  # GDAL read no geometry
TYPE = r"|Input should be 'Point', 'Polygon' or 'MultiPolygon'"  # what our schemas take


@dataclass(frozen=True)
class Case:
    """A hostile geometry: its name, what the refusal must say, and the geometry."""

    name: str
    reason: str  # a regular expression the answer must match
    geometry: Any = None  # a GeoJSON geometry object
    raw: Callable[[], str] | None = None  # JSON text instead, where objects cannot say it
    in_file: str | None = ""  # what an import must say instead; None: a file may hold it

    def text(self) -> str:
        """Return the geometry as JSON text."""
        return self.raw() if self.raw is not None else json.dumps(self.geometry)


def polygon(*rings: list[list[Any]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": list(rings)}


def point(coordinates: list[Any]) -> dict[str, Any]:
    return {"type": "Point", "coordinates": coordinates}


def line(coordinates: list[Any]) -> dict[str, Any]:
    return {"type": "LineString", "coordinates": coordinates}


def swapped(ring: list[list[float]]) -> list[list[float]]:
    return [[lat, lon] for lon, lat in ring]


def moved(ring: list[list[float]], lon: float, lat: float) -> list[list[float]]:
    """The ring moved so its first vertex is at (lon, lat)."""
    return [[x - ring[0][0] + lon, y - ring[0][1] + lat] for x, y in ring]


def million_vertex_ring() -> str:
    """A valid ring of a million vertices around the square (about 27 MB of JSON), made once:
    over the request body limit (8 MB), so refused before it is read."""
    return vertex_ring(MILLION)


@functools.cache
def vertex_ring(vertices: int) -> str:
    """A valid ring of ``vertices`` vertices around the square, as JSON text, made once."""
    angle = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    ring = np.column_stack([POINT[0] + 0.002 * np.cos(angle),
                            POINT[1] + 0.002 * np.sin(angle)]).round(7).tolist()
    return json.dumps([*ring, ring[0]])


def nested(depth: int) -> Callable[[], str]:
    """Coordinates nested ``depth`` arrays deep (JSON text; Python cannot write it)."""
    return lambda: ('{"type": "Polygon", "coordinates": ' + "[" * depth + "113.5, 22.1"
                    + "]" * depth + "}")


# Wherever a geometry arrives, whatever it is for.
ANY_KIND = [
    Case("deeply nested JSON", r"nest|parsing the body|depth", raw=nested(100_000)),
    Case("nested a hundred deep", r"wants numbers there, not a JSON array", raw=nested(100),
         in_file=MALFORMED),
    Case("huge number literal", r"finite", in_file=r"Unrecognized number: 1e999",
         raw=lambda: '{"type": "Point", "coordinates": [1e999, 22.1]}'),
    Case("a Feature, not a geometry", r"'Feature'" + TYPE, {
        "type": "Feature", "geometry": point(POINT), "properties": {}}, in_file=MALFORMED),
    Case("no type", r"type", {"coordinates": POINT}, in_file=MALFORMED),
    Case("coordinates not an array", r"wants arrays there, not a JSON string|coordinates.*list",
         {"type": "Polygon", "coordinates": "113.5,22.1"}, in_file=MALFORMED),
]

AREAS = [
    Case("bow-tie", r"Self-intersection", polygon([[W, S], [E, N], [E, S], [W, N], [W, S]])),
    Case("zero-width spike", r"Self-intersection",
         polygon([[W, S], [E, S], [E, N], [E + 0.001, N], [E, N], [W, N], [W, S]])),
    Case("hole outside its shell", r"Hole lies outside shell",
         polygon(SQUARE, moved(SQUARE[::-1], W + 0.01, S))),
    Case("a million vertices", r"request body is over 8 MB",
         in_file=r"a feature of more than 8 MB",
         raw=lambda: '{"type": "Polygon", "coordinates": [' + million_vertex_ring() + "]}"),
    Case("200,000 vertices", r"200,001 vertices", in_file=None,  # 5 MB: read, then refused
         raw=lambda: '{"type": "Polygon", "coordinates": [' + vertex_ring(200_000) + "]}"),
    Case("NaN coordinates", r"finite", polygon([[NAN, S], [E, S], [E, N], [NAN, S]]),
         in_file=r"NaN never does"),  # GDAL reads it; GEOS finds no closed ring
    Case("NaN in every vertex", r"finite", polygon([[NAN, NAN]] * 4), in_file=r"NaN never does"),
    Case("infinite coordinates", r"finite", polygon([[W, S], [INF, S], [E, N], [W, S]])),
    Case("empty polygon", r"empty|Polygon.*\[\]", polygon()),
    Case("empty ring", r"empty", polygon([])),
    Case("empty GeometryCollection", r"empty GeometryCollection" + TYPE,
         {"type": "GeometryCollection", "geometries": []}),
    Case("mixed GeometryCollection", r"a GeometryCollection where" + TYPE,
         {"type": "GeometryCollection", "geometries": [polygon(SQUARE), point(POINT)]}),
    Case("across the antimeridian", r"antimeridian",
         polygon([[179.9, -16.9], [-179.9, -16.9], [-179.9, -16.8], [179.9, -16.8],
                  [179.9, -16.9]])),
    Case("past 180 degrees east", r"outside lon -180\.\.180",
         polygon(moved(SQUARE, 179.9999, -16.9))),
    Case("lat/lon swapped", r"swapped", polygon(swapped(SQUARE))),
    Case("outside China", r"outside China", polygon(moved(SQUARE, -30.0, 40.0))),
    Case("out of WGS 84 range", r"outside lon -180\.\.180", polygon(moved(SQUARE, 200.0, 95.0))),
    Case("huge numbers", r"outside lon -180\.\.180",
         polygon([[1e308, 1e308], [-1e308, 1e308], [-1e308, -1e308], [1e308, 1e308]])),
    Case("unclosed ring", r"not closed", polygon(SQUARE[:-1])),
    Case("too few points", r"Too few points", polygon([[W, S], [E, N], [W, S]])),
    Case("a LineString for an area", r"a LineString where" + TYPE, line(SQUARE)),
    Case("a Point for an area", r"a Point where a polygon belongs|footprint.*Point",
         point(POINT), in_file=None),  # a building file may give a point
    Case("non-numeric coordinates", r"wants numbers there, not a JSON string",
         polygon([[str(x), str(y)] for x, y in SQUARE]), in_file=MALFORMED),
    Case("null coordinates", r"wants numbers there, not a JSON null", polygon([[None, None]] * 4),
         in_file=MALFORMED),
    Case("too many dimensions", r"two or three coordinates",  # a file's Z and M are dropped
         polygon([[x, y, 0, 0] for x, y in SQUARE]), in_file=None),
    *ANY_KIND,
]

# Accepted: RFC 7946 says readers should not refuse a ring against the right-hand rule; it is
# stored turned round, so everything gridgis writes out follows the rule.
CLOCKWISE = Case("clockwise shell", "", polygon(SQUARE[::-1]))

POINTS = [
    Case("NaN", r"finite", point([NAN, S])),
    Case("infinite", r"finite", point([W, -INF])),
    Case("huge numbers", r"outside lon -180\.\.180", point([1e308, -1e308])),
    Case("lat/lon swapped", r"swapped", point(POINT[::-1])),
    Case("outside China", r"outside China", point([-30.0, 40.0])),
    Case("out of WGS 84 range", r"outside lon -180\.\.180", point([200.0, 95.0])),
    Case("empty", r"empty", point([]), in_file=MALFORMED),
    Case("one number", r"two or three coordinates", point([W]), in_file=MALFORMED),
    Case("non-numeric", r"wants numbers there, not a JSON string", point(["113.52", "22.14"]),
         in_file=MALFORMED),
    Case("a Polygon for a point", r"a Polygon where a point belongs", polygon(SQUARE)),
    *ANY_KIND,
]

LINES = [
    Case("NaN", r"finite", line([[NAN, S - 0.01], [W, N + 0.01]])),
    Case("infinite", r"finite", line([[W, -INF], [W, N + 0.01]])),
    Case("huge numbers", r"outside lon -180\.\.180", line([[1e308, S], [W, 1e308]])),
    Case("lat/lon swapped", r"swapped", line(swapped([[W, S - 0.01], [W, N + 0.01]]))),
    Case("one point", r"a line of one position", line([[W, S]])),
    Case("zero length", r"Too few points", line([[W, S], [W, S]])),
    Case("empty", r"empty", line([])),
    Case("a million vertices", r"request body is over 8 MB",
         raw=lambda: '{"type": "LineString", "coordinates": ' + million_vertex_ring() + "}"),
    Case("200,000 vertices", r"200,001 vertices",
         raw=lambda: '{"type": "LineString", "coordinates": ' + vertex_ring(200_000) + "}"),
    Case("non-numeric", r"wants numbers there, not a JSON string", line([["a", "b"], ["c", "d"]])),
    Case("a Polygon for a line", r"a Polygon where a line belongs", polygon(SQUARE)),
    *ANY_KIND,
]

# A box to read within: the ``bbox`` query parameter, west,south,east,north.
BOXES = [
    Case("NaN", r"four numbers", "nan,nan,nan,nan"),
    Case("infinite", r"four numbers", "-inf,22.1,inf,22.2"),
    Case("huge numbers", r"outside lon -180\.\.180", "1e308,22.1,1e308,22.2"),
    Case("lat/lon swapped", r"swapped", "22.10,113.50,22.16,113.56"),
    Case("west east of east", r"west <= east", "113.56,22.10,113.50,22.16"),
    Case("three numbers", r"four numbers", "113.50,22.10,113.56"),
    Case("not numbers", r"four numbers", "a,b,c,d"),
    Case("empty", r"four numbers", ""),
]
