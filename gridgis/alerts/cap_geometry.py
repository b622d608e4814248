"""CAP geometry: ``lat,lon`` polygons and ``lat,lon radius_km`` circles as lon/lat shapely.

Every geometry here is EPSG:4326; a circle's polygon is drawn on the WGS 84 ellipsoid.
"""

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
from pyproj import Geod
from shapely.geometry import Point, Polygon
from shapely.geometry.polygon import orient

from gridgis import spatial
from gridgis.errors import InvalidInput

CIRCLE_VERTICES: Final = 64
_GEOD: Final = Geod(ellps="WGS84")


@dataclass(frozen=True)
class Circle:
    """A CAP circle: centre (lon/lat), radius in km and its polygon on the ellipsoid."""

    centre: Point
    radius_km: float
    polygon: Polygon


def circle_polygon(lon: float, lat: float, radius_km: float,
                   vertices: int = CIRCLE_VERTICES) -> Polygon:
    """Return a geodesic circle on the WGS 84 ellipsoid as a counter-clockwise lon/lat polygon.

    Longitudes are unwrapped around the centre, so a circle across 180° stays one polygon
    (with longitudes past ±180).
    """
    azimuths = np.linspace(0.0, 360.0, vertices, endpoint=False)
    lons, lats, _ = _GEOD.fwd(np.full(vertices, lon), np.full(vertices, lat), azimuths,
                              np.full(vertices, radius_km * 1000.0))
    lons = lon + (np.asarray(lons) - lon + 180.0) % 360.0 - 180.0
    return orient(Polygon(np.column_stack([lons, lats])), sign=1.0)


def polygon_of(text: str, where: str) -> Polygon:
    points = [_lat_lon(pair, f"{where}: point {n}") for n, pair in enumerate(text.split(), 1)]
    if len(points) < 4:
        raise InvalidInput(f"{where}: fewer than four points ({len(points)}); CAP needs at "
                           "least four lat,lon pairs, the first repeated as the last")
    if points[0] != points[-1]:
        raise InvalidInput(f"{where}: not closed (the first lat,lon pair must be repeated as "
                           "the last)")
    polygon = Polygon([(lon, lat) for lat, lon in points])
    if (problem := spatial.polygon_problem(polygon)) is not None:
        raise InvalidInput(f"{where}: {problem}")
    return orient(polygon, sign=1.0)  # CAP says nothing of winding; we store RFC 7946's


def circle_of(text: str, where: str) -> Circle:
    parts = text.split()
    if len(parts) != 2:
        raise InvalidInput(f"{where}: '{text}' is not 'lat,lon radius_km'")
    lat, lon = _lat_lon(parts[0], where)
    radius_km = _number(parts[1], f"{where}: radius")
    if radius_km <= 0:
        raise InvalidInput(f"{where}: radius {radius_km} km; it must be more than 0 to "
                           "cover an area")
    pole_km = _GEOD.inv(lon, lat, lon, math.copysign(90.0, lat))[2] / 1000.0
    if radius_km >= pole_km:
        raise InvalidInput(f"{where}: a radius of {radius_km} km reaches the pole")
    if (problem := spatial.point_problem(Point(lon, lat))) is not None:
        raise InvalidInput(f"{where}: the centre {problem}")
    return Circle(Point(lon, lat), radius_km, circle_polygon(lon, lat, radius_km))


def _lat_lon(pair: str, where: str) -> tuple[float, float]:
    parts = pair.split(",")
    if len(parts) != 2:
        raise InvalidInput(f"{where}: '{pair}' is not a lat,lon pair")
    lat, lon = _number(parts[0], f"{where}: latitude"), _number(parts[1], f"{where}: longitude")
    if not -90.0 <= lat <= 90.0:
        raise InvalidInput(f"{where}: latitude {lat} is outside -90..90 (CAP writes lat,lon: "
                           "are the two swapped?)")
    if not -180.0 <= lon <= 180.0:
        raise InvalidInput(f"{where}: longitude {lon} is outside -180..180")
    return lat, lon


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput(f"{where} '{text}' is not a number") from None
    if not math.isfinite(value):
        raise InvalidInput(f"{where} '{text}' is not a finite number")
    return value


