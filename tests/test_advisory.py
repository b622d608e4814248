"""Typhoon advisories: the DESIGN.md format parsed, every bad input refused by name, warning
levels, and the Yagi best track replayed as advisories (no database)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gridgis.alerts.advisory import (
    LEVELS,
    QuadrantRadii,
    dump_advisory,
    level_from_wind,
    level_rank,
    normalise_level,
    parse_advisory,
)
from gridgis.alerts.track import YAGI_CSV, advisories_from_ibtracs, read_fixes
from gridgis.errors import InvalidInput

DESIGN_EXAMPLE = """
{
  "storm": {"id": "2411", "name": "Yagi", "name_zh": "摩羯"},
  "source": "CMA", "issued": "2024-09-05T09:00:00Z",
  "level": "red",
  "points": [
    {"time": "2024-09-05T09:00:00Z", "lon": 114.7, "lat": 19.3,
     "pressure_hpa": 915, "wind_ms": 58, "forecast": false,
     "radii_km": {"7":  {"ne": 380, "se": 300, "sw": 260, "nw": 350},
                  "10": {"ne": 200, "se": 130, "sw": 100, "nw": 180},
                  "12": {"ne": 120, "se": 90,  "sw": 60,  "nw": 110}}},
    {"time": "2024-09-06T09:00:00Z", "lon": 110.8, "lat": 19.9,
     "forecast": true, "radii_km": {"7": {"ne": 350, "se": 300, "sw": 250, "nw": 320}}}
  ]
}
"""


def example() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DESIGN_EXAMPLE)
    return doc


def test_design_example_parses() -> None:
    advisory = parse_advisory(DESIGN_EXAMPLE)
    assert (advisory.storm.id, advisory.storm.name, advisory.storm.name_zh) == (
        "2411", "Yagi", "摩羯")
    assert advisory.source == "CMA"
    assert advisory.issued == datetime(2024, 9, 5, 9, tzinfo=UTC)
    assert (advisory.level, advisory.level_rank) == ("red", 4)
    first, second = advisory.points
    assert (first.lon, first.lat, first.pressure_hpa, first.wind_ms, first.forecast) == (
        114.7, 19.3, 915, 58, False)
    assert first.radii_km["7"] == QuadrantRadii(ne=380, se=300, sw=260, nw=350)
    assert first.radii_of("storm") == QuadrantRadii(ne=200, se=130, sw=100, nw=180)
    assert first.radii_of("hurricane") == QuadrantRadii(ne=120, se=90, sw=60, nw=110)
    assert second.forecast and second.pressure_hpa is None and second.wind_ms is None
    assert second.radii_of("storm") is None  # a missing threshold: none given
    assert second.time - first.time == timedelta(days=1)


def test_bytes_and_mappings_parse_alike_and_dump_round_trips() -> None:
    advisory = parse_advisory(DESIGN_EXAMPLE.encode())
    assert parse_advisory(example()) == advisory
    assert parse_advisory(json.dumps(dump_advisory(advisory))) == advisory


def test_missing_quadrants_and_knot_keys_are_kept_as_given() -> None:
    doc = example()
    doc["points"][0]["radii_km"] = {"34kt": {"ne": 333.4, "nw": 296.3}, "64kt": {"ne": 100}}
    doc["points"][1]["radii_km"] = {}
    point = parse_advisory(doc).points[0]
    assert set(point.radii_km) == {"34kt", "64kt"}
    assert point.radii_of("gale") == QuadrantRadii(ne=333.4, nw=296.3)
    assert point.radii_of("storm") is None


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Return a change of the example: set (or, for ..., delete) the value at a dotted path."""
    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = doc
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        key_: Any = int(last) if isinstance(target, list) else last
        if value is ...:
            del target[key_]
        else:
            target[key_] = value
    return change


def _both(*changes: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        for one in changes:
            one(doc)
    return change


BAD = {
    "missing storm": (_set("storm", ...), "storm: missing"),
    "missing storm name": (_set("storm.name", ...), "storm.name: missing"),
    "missing level": (_set("level", ...), "level: missing"),
    "missing issued": (_set("issued", ...), "issued: missing"),
    "missing time": (_set("points.1.time", ...), "points[1].time: missing"),
    "missing lon": (_set("points.0.lon", ...), "points[0].lon: missing"),
    "null lat": (_set("points.1.lat", None), "points[1].lat: missing"),
    "no points": (_set("points", []), "points: expected a non-empty list"),
    "lon out of range": (_set("points.0.lon", 214.7), "points[0].lon: 214.7 is outside"),
    "lat out of range": (_set("points.1.lat", -91), "points[1].lat: -91 is outside"),
    "lon as text": (_set("points.0.lon", "114.7"), "points[0].lon: expected a number"),
    "boolean lat": (_set("points.0.lat", True), "points[0].lat: expected a number"),
    "negative radius": (_set("points.0.radii_km.7.sw", -5), "points[0].radii_km.7.sw: -5 is "),
    "radius in metres": (_set("points.1.radii_km.7.ne", 350000),
                         "points[1].radii_km.7.ne: 350000 is outside"),
    "R10 beyond R7": (_set("points.0.radii_km.10.se", 310),
                      "points[0].radii_km.10.se: 310 km is larger than the 7 radius 300 km"),
    "R12 beyond R10": (_set("points.0.radii_km.12.nw", 181),
                       "points[0].radii_km.12.nw: 181 km is larger than the 10 radius 180 km"),
    "out of time order": (_set("points.1.time", "2024-09-05T03:00:00Z"),
                          "points[1].time: 2024-09-05T03:00:00+00:00 is before points[0].time"),
    "duplicate time": (_set("points.1.time", "2024-09-05T17:00:00+08:00"),
                       "points[1].time: 2024-09-05T17:00:00+08:00 repeats the time of points[0]"),
    "unknown level": (_set("level", "purple"), "level: unknown warning level 'purple'"),
    "unknown signal": (_set("level", "signal 5"), "level: unknown warning level 'signal 5'"),
    "unknown radius key": (_set("points.1.radii_km.8", {"ne": 100}),
                           "points[1].radii_km: unknown key '8'"),
    "unknown quadrant": (_set("points.1.radii_km.7.n", 100),
                         "points[1].radii_km.7: unknown key 'n'"),
    "unknown point field": (_set("points.0.radius_km", {}), "points[0]: unknown key 'radius_km'"),
    "naive time": (_set("points.1.time", "2024-09-06T09:00:00"),
                   "points[1].time: '2024-09-06T09:00:00' has no timezone"),
    "naive issued": (_set("issued", "2024-09-05 09:00"), "issued: '2024-09-05 09:00' has no "),
    "not a time": (_set("points.0.time", "yesterday"), "points[0].time: 'yesterday' is not"),
    "two gale thresholds": (_set("points.1.radii_km.34kt", {"ne": 300}),
                            "points[1].radii_km: '7' and '34kt' are both gale thresholds"),
    "mixed scales": (_set("points.1.radii_km", {"34kt": {"ne": 300}}),
                     "points[1].radii_km.34kt: a knots threshold in an advisory whose "
                     "points[0] uses Beaufort"),
    "analysis after forecast": (_both(_set("points.0.forecast", True),
                                      _set("points.1.forecast", False)),
                                "points[1].forecast: an analysis point after the forecast"),
    "forecast as text": (_set("points.0.forecast", "no"), "points[0].forecast: expected true"),
    "pressure too low": (_set("points.0.pressure_hpa", 91.5), "points[0].pressure_hpa: 91.5 is"),
    "storm id a number": (_set("storm.id", 2411), "storm.id: expected non-empty text"),
    "points not a list": (_set("points", {"0": {}}), "points: expected a non-empty list"),
}


@pytest.mark.parametrize("change, message", BAD.values(), ids=BAD.keys())
def test_bad_advisories_are_refused_by_name(change: Callable[[dict[str, Any]], None],
                                            message: str) -> None:
    doc = copy.deepcopy(example())
    change(doc)
    with pytest.raises(InvalidInput) as caught:
        parse_advisory(json.dumps(doc))
    assert message in str(caught.value)


@pytest.mark.parametrize("text, message", [
    ('{"storm": ', "advisory is not valid JSON: Expecting value at line 1 column 11"),
    ("[1, 2]", "advisory: expected an object, got list"),
    (DESIGN_EXAMPLE.replace('"lat": 19.3', '"lat": NaN'), "NaN is not a number JSON allows"),
    (DESIGN_EXAMPLE.replace('"se": 300, "sw": 260', '"se": 300, "se": 260'),
     "the key 'se' appears twice"),
    (b"\xff\xfe\x00", "advisory is not"),
])
def test_malformed_documents_are_refused(text: str | bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_advisory(text)


@pytest.mark.parametrize("text, rank", [
    ("blue", 1), ("Yellow", 2), ("ORANGE", 3), ("red", 4),
    ("蓝色", 1), ("黄色预警", 2), ("橙", 3), ("紅色", 4), ("red warning", 4),
    ("1", 1), ("T3", 2), ("No. 8", 3), ("8NE", 3), ("signal 8", 3), ("8号风球", 3),
    ("9", 4), ("10", 4), ("T10", 4), (8, 3), (1, 1),
])
def test_level_rank(text: str | int, rank: int) -> None:
    assert level_rank(text) == rank
    assert normalise_level(text) in LEVELS


@pytest.mark.parametrize("text", ["white", "2", "signal 11", "", "green", "88"])
def test_unknown_levels_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="unknown warning level"):
        level_rank(text)


def test_levels_are_one_scale_from_one_to_four() -> None:
    assert sorted(set(LEVELS.values())) == [1, 2, 3, 4]
    assert normalise_level("8SE") == "signal 8" and normalise_level("紅") == "red"


@pytest.mark.parametrize("wind_ms, colour", [
    (10.0, "blue"), (17.1, "blue"), (17.2, "yellow"), (24.5, "orange"), (32.6, "orange"),
    (32.7, "red"), (62.0, "red"),
])
def test_level_from_wind(wind_ms: float, colour: str) -> None:
    assert level_from_wind(wind_ms) == colour


def test_yagi_best_track_becomes_advisories_in_time_order() -> None:
    advisories = advisories_from_ibtracs(YAGI_CSV)
    assert len(advisories) == 61
    issued = [a.issued for a in advisories]
    assert issued == sorted(issued) and len(set(issued)) == 61
    assert issued[0] == datetime(2024, 9, 1, 0, tzinfo=UTC)
    assert issued[-1] == datetime(2024, 9, 8, 12, tzinfo=UTC)
    for i, advisory in enumerate(advisories):
        assert len(advisory.points) == i + 1
        assert not any(p.forecast for p in advisory.points)
        assert advisory.points[-1].time == advisory.issued
        assert parse_advisory(dump_advisory(advisory)) == advisory
    assert {a.storm.name for a in advisories} == {"Yagi"}
    assert advisories[0].points[0].radii_km == {}  # no radii given: none


def test_yagi_peak_fix_radii_in_km() -> None:
    peak = advisories_from_ibtracs(YAGI_CSV)[38]
    point = peak.points[-1]
    assert point.time == datetime(2024, 9, 5, 18, tzinfo=UTC)
    assert (point.lon, point.lat, point.pressure_hpa) == (113.0, 19.2, 915)
    assert point.wind_ms == pytest.approx(120 * 0.514444, abs=0.05)  # CMA 2-min wind, kt
    assert point.radii_km["34kt"].values() == pytest.approx(
        [180 * 1.852, 130 * 1.852, 115 * 1.852, 160 * 1.852])
    assert point.radii_km["50kt"].ne == pytest.approx(222.24)
    assert point.radii_km["64kt"].nw == pytest.approx(70 * 1.852)
    assert peak.level == "red"


def test_yagi_odd_fixes_are_kept_as_given() -> None:
    fixes = {f["time"]: f for f in read_fixes(YAGI_CSV)}
    over_luzon = fixes["2024-09-02T18:00:00+00:00"]
    assert over_luzon["radii_km"] == {}  # JTWC 25 kt: no 34-kt radii for 9 hours
    weakening = fixes["2024-09-07T15:00:00+00:00"]
    assert set(weakening["radii_km"]) == {"34kt", "64kt"}  # 64-kt radii without 50-kt ones


def test_yagi_with_a_perfect_forecast() -> None:
    advisory = advisories_from_ibtracs(YAGI_CSV, forecast_hours=24)[30]
    analysis = [p for p in advisory.points if not p.forecast]
    forecasts = [p for p in advisory.points if p.forecast]
    assert len(analysis) == 31 and len(forecasts) == 8
    assert forecasts[-1].time - analysis[-1].time == timedelta(hours=24)


def test_unreadable_track_file(tmp_path: Any) -> None:
    with pytest.raises(InvalidInput, match="cannot be read"):
        advisories_from_ibtracs(tmp_path / "absent.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("iso_time_utc,lat,lon\n2024-09-01 00:00:00,north,126.4\n")
    with pytest.raises(InvalidInput, match=r"bad\.csv line 2"):
        advisories_from_ibtracs(bad)
