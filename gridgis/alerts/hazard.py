"""Hazard areas of a typhoon advisory: wind circles, swaths per tier and gale ETAs.

Everything returned is EPSG:4326 (lon, lat degrees); radii are kilometres.

Projection: each wind circle is built in the azimuthal equidistant projection (AEQD) centred
at the storm centre, where distance and bearing from the centre are true, so a 300-400 km
quadrant radius lands exactly where it should (a UTM zone is off by up to ~0.6 % that far from
its central meridian, and a track crosses zones). The AEQD inverse of the point at bearing θ
and distance r is the geodesic direct problem on the WGS 84 ellipsoid, so circles are solved
with ``pyproj.Geod.fwd`` over all vertices of all circles in one call, instead of creating a
Transformer per centre (~9 ms each). The hull joining two consecutive circles is taken in the
AEQD centred at the midpoint of the two fixes (``Geod.inv`` forward, ``Geod.fwd`` back;
within 500 km of its centre its scale is true to about 0.1 %).

Interpolation between fixes is linear in time for the centre (in lon/lat) and for each
quadrant's radius; a radius missing at one end counts as 0 there, so the circle grows from or
shrinks to the centre (the swath hull of such a pair is likewise the circle and the other
centre). Out of scope: tracks whose circles cross the antimeridian (±180°) or reach a pole
(``InvalidInput``).
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import Geod

from gridgis.alerts.advisory import QUADRANTS, THRESHOLD_TIERS, TIERS, Advisory, TrackPoint
from gridgis.errors import InvalidInput

GEOD = Geod(ellps="WGS84")
ARC_STEP_DEG = 2.0  # chord sag at 400 km: 61 m
HULL_SEGMENT_M = 10_000.0  # hull edges are straight in the midpoint AEQD; densify before return
ETA_SCAN = timedelta(minutes=30)
ETA_RESOLUTION = timedelta(minutes=1)
ANTIMERIDIAN = "a wind area crosses the antimeridian (±180°), which gridgis does not support"

_ARC = np.linspace(0.0, 90.0, round(90 / ARC_STEP_DEG) + 1)
_BEARINGS = np.concatenate([_ARC + 90.0 * q for q in range(len(QUADRANTS))])  # (4 * arc,)


def wind_circle(point: TrackPoint, threshold: str) -> shapely.Polygon | shapely.MultiPolygon | None:
    """Return the area within a threshold's radii of a track point, or None if none is given.

    ``threshold`` is a radius key (``"7"``, ``"34kt"``...) or a tier (``"gale"``...). The area
    is the union of four circular sectors, NE = bearings 0-90°, SE 90-180°, SW 180-270°, NW
    270-360°, each of its quadrant's radius; a MultiPolygon only when two opposite sectors
    alone are given (they meet at the centre).
    """
    if threshold in TIERS:
        radii = point.radii_of(threshold)
    elif threshold in THRESHOLD_TIERS:
        radii = point.radii_km.get(threshold)
    else:
        raise InvalidInput(f"unknown wind threshold {threshold!r}; expected one of "
                           f"{', '.join(THRESHOLD_TIERS)} or {', '.join(TIERS)}")
    if radii is None:
        return None
    radii_km = np.array([[np.nan if r is None else r for r in radii.values()]])
    return build_circles(np.array([point.lon]), np.array([point.lat]), radii_km)[0]


def swaths(advisory: Advisory) -> dict[str, shapely.MultiPolygon]:
    """Return, per tier with any radius, the area its circles sweep along the whole track.

    Each point's circle, and the convex hull of each consecutive pair, unioned.
    """
    lon, lat, _ = _track(advisory)
    areas: dict[str, shapely.MultiPolygon] = {}
    for tier in TIERS:
        radii_km = _radii(advisory, tier)
        if np.isnan(radii_km).all():
            continue
        circles = build_circles(lon, lat, radii_km)
        hulls = join_circles(lon, lat, circles)
        parts = [g for g in (*circles, *hulls) if g is not None]
        area = shapely.union_all(parts)
        areas[tier] = (area if isinstance(area, shapely.MultiPolygon)
                       else shapely.MultiPolygon([area]))
    return areas


def gale_eta(advisory: Advisory, polygon: shapely.Geometry) -> datetime | None:
    """Return when the interpolated gale circle first touches a polygon (EPSG:4326), in UTC,
    or None if it never does (see ``gale_etas``)."""
    return gale_etas(advisory, [polygon])[0]


def gale_etas(advisory: Advisory, polygons: Sequence[shapely.Geometry] | NDArray[np.object_],
              tier: str = "gale") -> list[datetime | None]:
    """Return, per polygon (EPSG:4326), when the tier's interpolated circle first touches it.

    The time is UTC, found to within ``ETA_RESOLUTION`` and never later than the true one
    (a deadline must not be late); the track's first point if it touches already; None if the
    circle never touches it. Each interval between fixes is scanned every ``ETA_SCAN`` for
    the polygons its swath hull touches, then bisected; a touch shorter than ``ETA_SCAN``
    between two scans can be missed (a circle edge moves ~10 km in 30 minutes).
    """
    shapes = np.asarray(polygons, dtype=object)
    lon, lat, seconds = _track(advisory)
    radii_km = _radii(advisory, tier)
    eta = np.full(len(shapes), np.nan)
    if not len(shapes) or np.isnan(radii_km).all():
        return [None] * len(shapes)
    shapely.prepare(shapes)
    circles = build_circles(lon, lat, radii_km)
    hulls = join_circles(lon, lat, circles)
    lo, hi = np.full(len(shapes), np.nan), np.full(len(shapes), np.nan)
    if circles[0] is not None:
        eta[shapely.intersects(circles[0], shapes)] = seconds[0]
    scan_s = ETA_SCAN.total_seconds()
    for i, hull in enumerate(hulls):
        open_ = np.flatnonzero(np.isnan(eta) & np.isnan(hi))
        if hull is None or not len(open_):
            continue
        candidates = open_[shapely.intersects(hull, shapes[open_])]
        if not len(candidates):
            continue
        steps = max(1, int(np.ceil((seconds[i + 1] - seconds[i]) / scan_s)))
        times = np.linspace(seconds[i], seconds[i + 1], steps + 1)
        scan = circles_at(advisory, times, tier)
        touch = shapely.intersects(scan[:, None], shapes[candidates][None, :])  # None: False
        hit = touch.any(axis=0)
        k = touch.argmax(axis=0)[hit]
        hi[candidates[hit]] = times[k]
        lo[candidates[hit]] = times[np.maximum(k - 1, 0)]
    _bisect(advisory, shapes, lo, hi, tier)
    found = ~np.isnan(hi)
    eta[found] = lo[found]
    return [None if np.isnan(s) else datetime.fromtimestamp(round(s), tz=UTC) for s in eta]


def build_circles(lon: NDArray[np.float64], lat: NDArray[np.float64],
                  radii_km: NDArray[np.float64]) -> NDArray[np.object_]:
    """Return one wind circle (EPSG:4326) per centre, None where no radius is above zero.

    ``radii_km`` is (n, 4) in ``QUADRANTS`` order, NaN or 0 meaning none in that quadrant.
    """
    radii_m = np.nan_to_num(radii_km, nan=0.0) * 1000.0
    arc = len(_ARC)
    count = len(lon)
    distance = np.repeat(radii_m, arc, axis=1).ravel()  # (n * 4 * arc,)
    x, y, _ = GEOD.fwd(np.repeat(lon, 4 * arc), np.repeat(lat, 4 * arc),
                       np.tile(_BEARINGS, count), distance)
    x, y = np.asarray(x).reshape(count, -1), np.asarray(y).reshape(count, -1)
    present = radii_m.max(axis=1, initial=0.0) > 0
    _refuse_unsupported(x[present], y[present])
    rings = shapely.linearrings(np.stack([x, y], axis=-1)[present])
    circles = np.full(count, None, dtype=object)
    circles[present] = shapely.polygons(rings)
    # Only two opposite sectors make a ring that touches itself at the centre.
    broken = present & ~shapely.is_valid(circles)
    if broken.any():
        circles[broken] = shapely.make_valid(circles[broken], method="structure",
                                             keep_collapsed=False)
    return circles


def join_circles(lon: NDArray[np.float64], lat: NDArray[np.float64],
                 circles: NDArray[np.object_]) -> NDArray[np.object_]:
    """Return, per consecutive pair of centres, the convex hull (EPSG:4326) of their circles.

    A missing circle counts as its centre; a pair with neither circle gives None. The hull is
    taken in the AEQD centred at the pair's midpoint and densified to ``HULL_SEGMENT_M``.
    """
    pairs = len(circles) - 1
    hulls = np.full(max(pairs, 0), None, dtype=object)
    if pairs < 1:
        return hulls
    missing = np.array([c is None for c in circles])
    ends = np.where(missing, shapely.points(lon, lat), circles)
    joined = ~(missing[:-1] & missing[1:])
    both = shapely.geometrycollections(np.column_stack([ends[:-1], ends[1:]])[joined].ravel(),
                                       indices=np.repeat(np.arange(joined.sum()), 2))
    coords, index = shapely.get_coordinates(both, return_index=True)
    mid_lon = ((lon[:-1] + lon[1:]) / 2)[joined]
    mid_lat = ((lat[:-1] + lat[1:]) / 2)[joined]
    bearing, _, distance = GEOD.inv(mid_lon[index], mid_lat[index], coords[:, 0], coords[:, 1])
    bearing_r = np.radians(bearing)
    plane = shapely.multipoints(np.column_stack([distance * np.sin(bearing_r),
                                                 distance * np.cos(bearing_r)]), indices=index)
    hull = shapely.segmentize(shapely.convex_hull(plane), HULL_SEGMENT_M)
    xy, ring_index = shapely.get_coordinates(hull, return_index=True)
    x, y, _ = GEOD.fwd(mid_lon[ring_index], mid_lat[ring_index],
                       np.degrees(np.arctan2(xy[:, 0], xy[:, 1])), np.hypot(xy[:, 0], xy[:, 1]))
    starts = np.flatnonzero(np.diff(ring_index, prepend=-1))
    x, y = np.asarray(x), np.asarray(y)
    if (np.maximum.reduceat(x, starts) - np.minimum.reduceat(x, starts) > 180).any():
        raise InvalidInput(ANTIMERIDIAN)
    hulls[joined] = shapely.polygons(
        shapely.linearrings(np.column_stack([x, y]), indices=ring_index))
    return hulls


def circles_at(advisory: Advisory, times_s: NDArray[np.float64],
               tier: str = "gale") -> NDArray[np.object_]:
    """Return the tier's circle (EPSG:4326) at each time (Unix seconds), interpolated linearly
    between fixes; None before the first point, after the last, or where no radius is given."""
    lon, lat, seconds = _track(advisory)
    radii = np.nan_to_num(_radii(advisory, tier), nan=0.0)
    inside = (times_s >= seconds[0]) & (times_s <= seconds[-1])
    t = np.clip(times_s, seconds[0], seconds[-1])
    at_lon, at_lat = np.interp(t, seconds, lon), np.interp(t, seconds, lat)
    at_radii = np.column_stack([np.interp(t, seconds, radii[:, q]) for q in range(4)])
    circles = build_circles(at_lon, at_lat, at_radii)
    circles[~inside] = None
    return circles


def _bisect(advisory: Advisory, shapes: NDArray[np.object_], lo: NDArray[np.float64],
            hi: NDArray[np.float64], tier: str) -> None:
    """Narrow each (lo: not touching, hi: touching) bracket in place to ``ETA_RESOLUTION``."""
    resolution = ETA_RESOLUTION.total_seconds()
    while True:
        open_ = np.flatnonzero(~np.isnan(hi) & (hi - lo > resolution))
        if not len(open_):
            return
        middle = (lo[open_] + hi[open_]) / 2
        times, which = np.unique(middle, return_inverse=True)
        circles = circles_at(advisory, times, tier)[which]
        touch = np.array([c is not None for c in circles], dtype=bool)
        touch[touch] = shapely.intersects(circles[touch], shapes[open_][touch])
        hi[open_[touch]] = middle[touch]
        lo[open_[~touch]] = middle[~touch]


def _track(advisory: Advisory) -> tuple[NDArray[np.float64], NDArray[np.float64],
                                         NDArray[np.float64]]:
    """Return the track's lon, lat (degrees) and times (Unix seconds)."""
    points = advisory.points
    lon = np.array([p.lon for p in points], dtype=float)
    lat = np.array([p.lat for p in points], dtype=float)
    seconds = np.array([p.time.timestamp() for p in points], dtype=float)
    jump = np.flatnonzero(np.abs(np.diff(lon)) > 180)
    if len(jump):
        raise InvalidInput(f"points[{jump[0] + 1}]: the track crosses the antimeridian (±180°), "
                           "which gridgis does not support")
    return lon, lat, seconds


def _radii(advisory: Advisory, tier: str) -> NDArray[np.float64]:
    """Return the tier's radii (km) as (points, 4) in ``QUADRANTS`` order, NaN where none."""
    rows = []
    for point in advisory.points:
        radii = point.radii_of(tier)
        rows.append([np.nan] * 4 if radii is None
                    else [np.nan if r is None else r for r in radii.values()])
    return np.array(rows, dtype=float).reshape(len(advisory.points), 4)


def _refuse_unsupported(x: NDArray[np.float64], y: NDArray[np.float64]) -> None:
    """Refuse rings (one per row) that wrap across the antimeridian or reach a pole."""
    if not x.size:
        return
    if (np.ptp(x, axis=-1) > 180).any():
        raise InvalidInput(ANTIMERIDIAN)
    if (np.abs(y) >= 89.9).any():
        raise InvalidInput("a wind area reaches a pole, which gridgis does not support")
