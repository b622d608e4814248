"""SRIDs, geometry checks and metric projections for geometry that arrives from outside.

Stored geometry is EPSG:4326 (lon, lat; CGCS2000 / EPSG:4490 is treated as equal within
metres). Areas and lengths here are computed in the local UTM zone, in metres.
"""

import json
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import CRS, Transformer

SRID = 4326
WGS84 = f"EPSG:{SRID}"
CHINA = (72.004, 0.8293, 137.8347, 55.8271)  # China's box: west, south, east, north


def utm_crs(lon: float, lat: float) -> CRS:
    """Return the UTM zone (WGS 84) holding a point, a metric CRS good to ~0.1 % nearby."""
    zone = math.floor((lon + 180) / 6) % 60 + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def to_metric(geometries: NDArray[np.object_],
              around: NDArray[np.object_] | None = None) -> NDArray[np.object_]:
    """Return EPSG:4326 geometries projected into the UTM zone of the centre of ``around``
    (default: of the geometries themselves)."""
    if len(geometries) == 0:
        return geometries
    xmin, ymin, xmax, ymax = shapely.total_bounds(geometries if around is None else around)
    crs = utm_crs((xmin + xmax) / 2, (ymin + ymax) / 2)
    transformer = Transformer.from_crs(WGS84, crs, always_xy=True)
    return np.asarray(shapely.transform(geometries, transformer.transform, interleaved=False))


GEOJSON_TYPES = ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon",
                 "MultiPolygon", "GeometryCollection")
# A limit on geometry that arrives: a grid boundary has hundreds of vertices, a detailed
# district boundary tens of thousands; more is a mistake or an attack on the server's time.
MAX_VERTICES = 100_000
# How deep a type's positions lie in its coordinates: a Polygon's are in its rings.
_POSITION_DEPTH = {"Point": 0, "MultiPoint": 1, "LineString": 1, "MultiLineString": 2,
                   "Polygon": 2, "MultiPolygon": 3}
# What GEOS says of bad GeoJSON, in words for a user.
_GEOS_REASONS = (
    (re.compile(r"LinearRing do not form a closed"),
     "a polygon ring is not closed (its last position must repeat the first)"),
    (re.compile(r"number of points in LinearRing found (\d+)"),
     r"a polygon ring of \1 positions; a ring needs at least 4, the first repeated as the last"),
    (re.compile(r"point array must contain 0 or >1"), "a line of one position; it needs two"),
    (re.compile(r"type must be (\w+), but is (\w+)"), r"GeoJSON wants \1s there, not a JSON \2"),
    (re.compile(r"key '(\w+)' not found"), r"no '\1'"),
)


def read_geojson(value: Mapping[str, Any]) -> shapely.Geometry:
    """Return the shapely geometry of a GeoJSON geometry object (RFC 7946) read by GEOS, or
    raise ValueError saying what is wrong: a type that is no geometry's, NaN or infinite
    numbers, an unclosed or short ring, positions that are not numbers. Unlike
    ``shapely.geometry.shape``, an unclosed ring is refused, not closed silently."""
    kind = value.get("type") if isinstance(value, Mapping) else None
    if kind not in GEOJSON_TYPES:
        raise ValueError(f"not a GeoJSON geometry: its type is {kind!r}, not one of "
                         f"{', '.join(GEOJSON_TYPES)}")
    if (positions := _positions(value)) > MAX_VERTICES:  # before the work of reading them
        raise ValueError(f"{positions:,} vertices; gridgis takes at most {MAX_VERTICES:,}")
    try:
        text = json.dumps(value, allow_nan=False)
    except ValueError:
        raise ValueError("coordinates that are not finite numbers (NaN or infinity)") from None
    except RecursionError:
        raise ValueError("arrays nested too deeply for GeoJSON") from None
    try:
        return shapely.from_geojson(text)
    except shapely.errors.GEOSException as exc:
        message = str(exc)
        for pattern, reason in _GEOS_REASONS:
            if found := pattern.search(message):
                raise ValueError(found.expand(reason)) from None
        raise ValueError(f"not a GeoJSON {kind}: {message.split(': ', 1)[-1]}") from None


def _positions(value: Mapping[str, Any]) -> int:
    """Return how many positions a GeoJSON geometry holds, from the lengths of its arrays
    alone (a collection's parts are not counted; arrays not nested as its type says: 0)."""
    depth = _POSITION_DEPTH.get(value["type"])
    if depth is None:
        return 0
    arrays = [value.get("coordinates")]
    for _ in range(depth - 1):
        arrays = [inner for outer in arrays if isinstance(outer, list) for inner in outer]
    return sum(len(a) for a in arrays if isinstance(a, list)) if depth else 1


def polygon_problem(geometry: shapely.Geometry | None) -> str | None:
    """Return why ``geometry`` is not a usable (multi)polygon in lon/lat, or None if it is."""
    return _shape_problem(geometry, ("Polygon", "MultiPolygon"), "a polygon")


def line_problem(geometry: shapely.Geometry | None) -> str | None:
    """Return why ``geometry`` is not a usable line in lon/lat, or None if it is."""
    return _shape_problem(geometry, ("LineString",), "a line")


def point_problem(geometry: shapely.Geometry | None) -> str | None:
    """Return why ``geometry`` is not a usable lon/lat point, or None if it is."""
    return _shape_problem(geometry, ("Point",), "a point")


def _shape_problem(geometry: shapely.Geometry | None, types: tuple[str, ...],
                   what: str) -> str | None:
    """Return why ``geometry`` is not a valid one of ``types`` in lon/lat, or None."""
    if geometry is None:
        return "no geometry"
    if geometry.is_empty:
        return f"an empty {geometry.geom_type}"
    if geometry.geom_type not in types:
        return f"a {geometry.geom_type} where {what} belongs"
    vertices = shapely.get_num_coordinates(geometry)
    if vertices > MAX_VERTICES:
        return f"{vertices:,} vertices; gridgis takes at most {MAX_VERTICES:,}"
    if (problem := _coordinates_problem(shapely.get_coordinates(geometry))) is not None:
        return problem
    if not shapely.is_valid(geometry):
        return f"invalid geometry: {shapely.is_valid_reason(geometry)}"
    return None


def _coordinates_problem(coords: NDArray[np.float64]) -> str | None:
    """Return why lon/lat coordinates (n, 2) cannot be ours: not finite, out of range, across
    the antimeridian, or all far from China; None if they can."""
    if not np.isfinite(coords).all():
        return "coordinates that are not finite numbers"
    if (np.abs(coords[:, 0]) > 180).any() or (np.abs(coords[:, 1]) > 90).any():
        return "coordinates outside lon -180..180 / lat -90..90 (swapped, or not degrees?)"
    if np.ptp(coords[:, 0]) > 180:
        return ("more than 180° of longitude: it crosses the antimeridian (±180°), which "
                "gridgis does not support")
    west, south, east, north = CHINA
    lon, lat = coords[:, 0], coords[:, 1]
    if lon.max() < west or lon.min() > east or lat.max() < south or lat.min() > north:
        return (f"lies wholly outside China (lon {west:g}..{east:g}, lat {south:g}..{north:g}): "
                "lat/lon swapped, or another CRS?")
    return None


def area_outside_m2(children: NDArray[np.object_], parents: NDArray[np.object_]) -> NDArray[
    np.float64
]:
    """Return, per pair, the area of the child lying outside its parent, in square metres.

    The difference is taken in lon/lat, as PostGIS compares geometries (a vertex on a
    parent's edge is inside it), and only its area is measured in the metric projection.
    """
    outside = shapely.difference(children, parents)
    return np.asarray(shapely.area(to_metric(outside, around=children)), dtype=np.float64)


# GCJ-02 ("Mars coordinates"): the published offset of Chinese web maps, on the Krasovsky
# ellipsoid, applied inside China's box only. No maintained PyPI package offers it over
# numpy arrays with an exact inverse, so here it is; it reproduces the pairs every
# implementation is tested against (eviltransform, prcoords) to 1e-12 degrees.
GCJ_A, GCJ_EE = 6378245.0, 0.00669342162296594323


def wgs84_to_gcj02(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> tuple[
        NDArray[np.float64], NDArray[np.float64]]:
    """Return GCJ-02 (lon, lat) of WGS 84 degrees; points outside China are left as they are."""
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    x, y = lon - 105.0, lat - 35.0
    px, py = x * np.pi, y * np.pi
    wave = (20 * np.sin(6 * px) + 20 * np.sin(2 * px)) * 2 / 3
    dlat_m = (-100 + 2 * x + 3 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
              + wave + (20 * np.sin(py) + 40 * np.sin(py / 3)) * 2 / 3
              + (160 * np.sin(py / 12) + 320 * np.sin(py / 30)) * 2 / 3)
    dlon_m = (300 + x + 2 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
              + wave + (20 * np.sin(px) + 40 * np.sin(px / 3)) * 2 / 3
              + (150 * np.sin(px / 12) + 300 * np.sin(px / 30)) * 2 / 3)
    rad = np.radians(lat)
    magic = 1 - GCJ_EE * np.sin(rad) ** 2
    dlat = np.degrees(dlat_m * magic * np.sqrt(magic) / (GCJ_A * (1 - GCJ_EE)))
    dlon = np.degrees(dlon_m * np.sqrt(magic) / (GCJ_A * np.cos(rad)))
    west, south, east, north = CHINA
    china = (lon >= west) & (lon <= east) & (lat >= south) & (lat <= north)
    return np.where(china, lon + dlon, lon), np.where(china, lat + dlat, lat)


def gcj02_to_wgs84(lon: NDArray[np.float64], lat: NDArray[np.float64],
                   tolerance_deg: float = 1e-10) -> tuple[NDArray[np.float64],
                                                          NDArray[np.float64]]:
    """Return WGS 84 (lon, lat) of GCJ-02 degrees: the forward offset inverted by fixed-point
    iteration (the offset changes slowly, so each step gains ~5 digits; 1e-10° ≈ 0.01 mm)."""
    lon_g, lat_g = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    lon_w, lat_w = lon_g.copy(), lat_g.copy()
    for _ in range(10):
        fwd_lon, fwd_lat = wgs84_to_gcj02(lon_w, lat_w)
        err_lon, err_lat = fwd_lon - lon_g, fwd_lat - lat_g
        lon_w, lat_w = lon_w - err_lon, lat_w - err_lat
        if max(np.abs(err_lon).max(initial=0), np.abs(err_lat).max(initial=0)) < tolerance_deg:
            break
    return lon_w, lat_w


def gcj02_geometries_to_wgs84(geometry: NDArray[np.object_]) -> NDArray[np.object_]:
    """Return geometries with every GCJ-02 vertex moved to WGS 84 (None stays None)."""
    return np.asarray(shapely.transform(geometry, lambda x, y: gcj02_to_wgs84(x, y),
                                        interleaved=False), dtype=object)
