"""Wind circles, swaths and gale ETAs of typhoon advisories, against geodesics on WGS 84 and
the real Yagi best track (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import numpy as np
import pytest
import shapely
from pyproj import Geod

from gridgis.alerts import hazard
from gridgis.alerts.advisory import Advisory, TrackPoint, parse_advisory
from gridgis.alerts.track import YAGI_CSV, advisories_from_ibtracs
from gridgis.errors import InvalidInput

GEOD = Geod(ellps="WGS84")
HENGQIN = shapely.Point(113.53, 22.13)
T0 = datetime(2024, 9, 5, 0, tzinfo=UTC)


def advisory(*points: tuple[float, float, dict[str, Any] | None], hours: float = 6) -> Advisory:
    """Return an advisory of points (lon, lat, radii_km) ``hours`` apart from T0."""
    return parse_advisory({
        "storm": {"id": "9901", "name": "Test"}, "source": "test", "issued": T0.isoformat(),
        "level": "red",
        "points": [{"time": (T0 + timedelta(hours=hours * i)).isoformat(), "lon": lon,
                    "lat": lat, "radii_km": radii or {}}
                   for i, (lon, lat, radii) in enumerate(points)]})


def point(lon: float, lat: float, radii: dict[str, Any]) -> TrackPoint:
    return advisory((lon, lat, radii)).points[0]


def at(lon: float, lat: float, bearing: float, km: float) -> shapely.Point:
    """Return the point ``km`` from (lon, lat) along a bearing, on the WGS 84 ellipsoid."""
    x, y, _ = GEOD.fwd(lon, lat, bearing, km * 1000)
    return shapely.Point(x, y)


def edge_km(circle: shapely.Geometry, lon: float, lat: float, bearing: float) -> float:
    """Return the geodesic distance (km) from the centre to the circle's edge along a bearing."""
    far = [at(lon, lat, bearing, km) for km in np.linspace(0, 1000, 2001)]
    ray = shapely.LineString([(p.x, p.y) for p in far])
    crossing = shapely.intersection(ray, circle.boundary)
    ends = shapely.get_coordinates(crossing)
    distances = GEOD.inv(np.full(len(ends), lon), np.full(len(ends), lat),
                         ends[:, 0], ends[:, 1])[2]
    return float(np.max(distances)) / 1000


@cache
def yagi() -> list[Advisory]:
    return advisories_from_ibtracs(YAGI_CSV)


def yagi_at(time: datetime) -> Advisory:
    (found,) = [a for a in yagi() if a.issued == time]
    return found


RADII = {"7": {"ne": 380, "se": 300, "sw": 260, "nw": 350},
         "10": {"ne": 200, "se": 130, "sw": 100, "nw": 180}}


@pytest.mark.parametrize("bearing, quadrant", [(45, "ne"), (135, "se"), (225, "sw"),
                                               (315, "nw"), (10, "ne"), (350, "nw")])
def test_quadrant_radius_is_true_along_its_bearing(bearing: float, quadrant: str) -> None:
    centre = (114.7, 19.3)
    circle = hazard.wind_circle(point(*centre, RADII), "7")
    assert circle is not None and circle.is_valid
    given = RADII["7"][quadrant]
    assert edge_km(circle, *centre, bearing) == pytest.approx(given, rel=0.005)
    assert circle.contains(at(*centre, bearing, given * 0.995))
    assert not circle.contains(at(*centre, bearing, given * 1.005))


def test_quadrant_sectors_at_high_latitude_too() -> None:
    circle = hazard.wind_circle(point(140.0, 45.0, {"34kt": {"ne": 400, "sw": 150}}), "gale")
    assert circle is not None
    assert edge_km(circle, 140.0, 45.0, 45) == pytest.approx(400, rel=0.005)
    assert edge_km(circle, 140.0, 45.0, 200) == pytest.approx(150, rel=0.005)
    assert not circle.contains(at(140.0, 45.0, 135, 10))  # SE: none given


def test_a_point_330_km_out_is_inside_333_but_not_296() -> None:
    radii = {"34kt": {"ne": 180 * 1.852, "nw": 160 * 1.852}}  # 333.4 and 296.3 km
    circle = hazard.wind_circle(point(113.0, 19.2, radii), "34kt")
    assert circle is not None
    assert circle.contains(at(113.0, 19.2, 10, 330))
    assert not circle.contains(at(113.0, 19.2, 350, 330))


def test_wind_circle_without_radius_or_with_unknown_threshold() -> None:
    design = point(114.7, 19.3, RADII)
    assert hazard.wind_circle(design, "12") is None
    assert hazard.wind_circle(design, "hurricane") is None
    assert hazard.wind_circle(design, "34kt") is None  # R7 is given, not R34
    assert hazard.wind_circle(point(114.7, 19.3, {"7": {"ne": 0}}), "7") is None
    with pytest.raises(InvalidInput, match="unknown wind threshold '8'"):
        hazard.wind_circle(design, "8")


def test_opposite_sectors_alone_make_a_valid_multipolygon() -> None:
    circle = hazard.wind_circle(point(114.7, 19.3, {"7": {"ne": 200, "sw": 100}}), "gale")
    assert isinstance(circle, shapely.MultiPolygon) and circle.is_valid
    assert len(circle.geoms) == 2


def test_circles_across_the_antimeridian_are_refused() -> None:
    with pytest.raises(InvalidInput, match="antimeridian"):
        hazard.wind_circle(point(179.5, 20.0, {"34kt": {"ne": 200, "se": 200}}), "gale")
    with pytest.raises(InvalidInput, match="antimeridian"):
        hazard.swaths(advisory((179.0, 20.0, None), (-179.0, 21.0, None)))


def test_hengqin_at_the_edge_of_yagis_34kt_circle_at_2024_09_05_18z() -> None:
    fix = yagi_at(datetime(2024, 9, 5, 18, tzinfo=UTC)).points[-1]
    assert (fix.lon, fix.lat) == (113.0, 19.2)
    bearing, _, metres = GEOD.inv(fix.lon, fix.lat, HENGQIN.x, HENGQIN.y)
    km = metres / 1000
    assert 0 < bearing < 90 and km == pytest.approx(329.05, abs=0.1)  # in the NE quadrant
    r34, r50 = fix.radii_km["34kt"], fix.radii_km["50kt"]
    assert (r34.ne, r34.nw, r50.ne) == pytest.approx((333.36, 296.32, 222.24))
    assert 0.98 < km / r34.ne < 1.0  # just inside the NE 34-kt radius: near the edge
    gale = hazard.wind_circle(fix, "34kt")
    storm = hazard.wind_circle(fix, "50kt")
    assert gale is not None and storm is not None
    assert gale.contains(HENGQIN)
    assert gale.exterior.distance(HENGQIN) < 0.05  # degrees: ~4 km from the edge
    assert not storm.contains(HENGQIN)
    assert km - max(r for r in r50.values() if r is not None) > 100  # far outside
    three_hours_later = yagi_at(datetime(2024, 9, 5, 21, tzinfo=UTC)).points[-1]
    later = hazard.wind_circle(three_hours_later, "gale")
    assert later is not None and not later.contains(HENGQIN)


def test_hengqin_gale_eta_from_the_yagi_track() -> None:
    yagi_so_far = yagi_at(datetime(2024, 9, 6, 12, tzinfo=UTC))
    eta = hazard.gale_eta(yagi_so_far, HENGQIN.buffer(0.001))
    # The centre passes Hengqin's meridian ~15:20Z; before that Hengqin lies in the smaller
    # NW quadrant (313 km out against 296 km), then in the NE one (180 nm = 333 km).
    assert eta is not None
    assert datetime(2024, 9, 5, 15, tzinfo=UTC) < eta < datetime(2024, 9, 5, 18, tzinfo=UTC)
    just_before = hazard.circles_at(yagi_so_far, np.array([eta.timestamp() - 120]))[0]
    just_after = hazard.circles_at(yagi_so_far, np.array([eta.timestamp() + 120]))[0]
    assert not just_before.intersects(HENGQIN.buffer(0.001))
    assert just_after.intersects(HENGQIN.buffer(0.001))


def test_swaths_hold_every_circle_and_the_hull_between() -> None:
    track = advisory((112.0, 18.0, RADII), (113.0, 19.0, RADII), (113.5, 20.5, RADII))
    areas = hazard.swaths(track)
    assert set(areas) == {"gale", "storm"}
    for tier, area in areas.items():
        assert isinstance(area, shapely.MultiPolygon) and area.is_valid
        assert len(area.geoms) == 1
        for fix in track.points:
            circle = hazard.wind_circle(fix, tier)
            assert circle is not None
            assert circle.difference(area).area < 1e-9 * circle.area
    gale = areas["gale"]
    for hours in (1.5, 3, 7.5, 10):
        between = hazard.circles_at(track, np.array([(T0 + timedelta(hours=hours)).timestamp()]))
        # Within chord sag (61 m at 2° steps) and lon/lat-vs-geodesic interpolation: ~0.2 km.
        outside = shapely.distance(gale, shapely.points(shapely.get_coordinates(between[0])))
        assert outside.max() < 0.003  # degrees, ~330 m
    # Between circles far apart, the hull covers what neither circle does.
    wide = advisory((110.0, 20.0, {"7": {"ne": 100, "se": 100, "sw": 100, "nw": 100}}),
                    (112.0, 20.0, {"7": {"ne": 100, "se": 100, "sw": 100, "nw": 100}}))
    aside = at(111.0, 20.0, 0, 95)  # 95 km north of the midpoint, ~140 km from both centres
    assert hazard.swaths(wide)["gale"].contains(aside)
    circles = [hazard.wind_circle(p, "gale") for p in wide.points]
    assert all(c is not None and not c.contains(aside) for c in circles)
    assert not hazard.swaths(wide)["gale"].contains(at(111.0, 20.0, 0, 105))


def test_swath_gap_where_radii_are_missing() -> None:
    radii = {"34kt": {"ne": 100, "se": 100, "sw": 100, "nw": 100}}
    track = advisory((110.0, 20.0, radii), (111.0, 20.0, None), (112.0, 20.0, None),
                     (113.0, 20.0, radii))
    gale = hazard.swaths(track)["gale"]
    assert len(gale.geoms) == 2  # tapers to the centres with no radius, and breaks between
    assert not gale.contains(shapely.Point(111.5, 20.0))
    assert gale.contains(shapely.Point(110.9, 20.0))


def test_yagi_swaths_are_valid() -> None:
    areas = hazard.swaths(yagi()[-1])
    assert set(areas) == {"gale", "storm", "hurricane"}
    assert all(area.is_valid for area in areas.values())
    assert areas["gale"].contains(areas["hurricane"].representative_point())
    assert areas["gale"].contains(HENGQIN) and not areas["storm"].contains(HENGQIN)


def straight_track() -> Advisory:
    radii = {"7": {"ne": 100, "se": 100, "sw": 100, "nw": 100}}
    return advisory((111.0, 20.0, radii), (112.0, 20.0, radii), (113.0, 20.0, radii))


def test_gale_eta_between_the_fixes_that_bracket_it() -> None:
    track = straight_track()  # 1° of longitude (~104.6 km) east every 6 hours
    square = shapely.box(113.0, 19.95, 113.1, 20.05)
    eta = hazard.gale_eta(track, square)
    assert eta is not None
    _, second, third = (p.time for p in track.points)
    assert second < eta < third
    # Exact: the centre (moving along the parallel) is 100 km from (113.0, 20.0).
    lons = np.linspace(112.0, 113.0, 100001)
    reach = GEOD.inv(lons, np.full_like(lons, 20.0), np.full_like(lons, 113.0),
                     np.full_like(lons, 20.0))[2]
    expected = second + timedelta(hours=6 * (lons[np.argmax(reach <= 100_000)] - 112.0))
    assert expected - timedelta(minutes=2) <= eta <= expected + timedelta(seconds=30)


def test_gale_eta_none_far_away_and_first_time_when_already_inside() -> None:
    track = straight_track()
    assert hazard.gale_eta(track, shapely.box(130.0, 40.0, 130.1, 40.1)) is None
    assert hazard.gale_eta(track, shapely.box(111.0, 20.3, 111.1, 20.4)) == track.points[0].time
    behind = shapely.box(109.0, 19.95, 109.1, 20.05)  # the storm moves away from it
    assert hazard.gale_eta(track, behind) is None


def test_gale_etas_for_many_polygons_match_one_by_one() -> None:
    track = straight_track()
    polygons = [shapely.box(lon, lat, lon + 0.05, lat + 0.05)
                for lon in np.arange(110.5, 114.5, 0.5) for lat in (19.0, 20.0, 20.9)]
    many = hazard.gale_etas(track, polygons)
    assert many == [hazard.gale_eta(track, p) for p in polygons]
    assert any(e is None for e in many) and any(e is not None for e in many)
    assert hazard.gale_etas(track, []) == []


def test_gale_eta_when_no_gale_radius_is_given() -> None:
    track = advisory((111.0, 20.0, {"10": {"ne": 80}}), (112.0, 20.0, None))
    assert hazard.gale_eta(track, shapely.box(111.0, 20.0, 111.1, 20.1)) is None
