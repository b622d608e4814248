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


# GCJ-02 ("Mars coordinates"): the published offset of Chinese web maps, on the Krasovsky
# ellipsoid, applied inside China's box only. No maintained PyPI package offers it over
# numpy arrays with an exact inverse, so here it is; it reproduces the pairs every
# implementation is tested against (eviltransform, prcoords) to 1e-12 degrees.
GCJ_A, GCJ_EE = 6378245.0, 0.00669342162296594323
CHINA = (72.004, 0.8293, 137.8347, 55.8271)  # west, south, east, north


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
