"""SRIDs, geometry checks and metric projections for geometry that arrives from outside.

Stored geometry is EPSG:4326 (lon, lat; CGCS2000 / EPSG:4490 is treated as equal within
metres). Areas and lengths here are computed in the local UTM zone, in metres.
"""

import math

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import CRS, Transformer

SRID = 4326
WGS84 = f"EPSG:{SRID}"


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


def polygon_problem(geometry: shapely.Geometry | None) -> str | None:
    """Return why ``geometry`` is not a usable (multi)polygon in lon/lat, or None if it is."""
    if geometry is None or geometry.is_empty:
        return "no geometry"
    if geometry.geom_type not in ("Polygon", "MultiPolygon"):
        return f"a {geometry.geom_type} where a polygon belongs"
    coords = shapely.get_coordinates(geometry)
    if not np.isfinite(coords).all():
        return "coordinates that are not finite numbers"
    if (np.abs(coords[:, 0]) > 180).any() or (np.abs(coords[:, 1]) > 90).any():
        return "coordinates outside lon -180..180 / lat -90..90 (swapped, or not degrees?)"
    if not geometry.is_valid:
        return f"invalid geometry: {shapely.is_valid_reason(geometry)}"
    return None


def point_problem(geometry: shapely.Geometry | None) -> str | None:
    """Return why ``geometry`` is not a usable lon/lat point, or None if it is."""
    if geometry is None or geometry.is_empty:
        return "no geometry"
    if geometry.geom_type != "Point":
        return f"a {geometry.geom_type} where a point belongs"
    x, y = geometry.x, geometry.y
    if not (math.isfinite(x) and math.isfinite(y)):
        return "coordinates that are not finite numbers"
    if abs(x) > 180 or abs(y) > 90:
        return "coordinates outside lon -180..180 / lat -90..90 (swapped, or not degrees?)"
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
