"""Typhoon advisories: the JSON document of DESIGN.md parsed and checked, and warning levels.

An advisory is one storm's track (analysis fixes, then forecasts) with wind radii per
threshold per quadrant. Positions are lon/lat degrees (EPSG:4326), radii kilometres, times
timezone-aware. Anything that cannot be accepted raises ``InvalidInput`` naming the place
(``points[2].radii_km.10.ne``) and the problem.

Wind-radius thresholds and the tier each belongs to (the key is kept as given):

=========  ================  ==========  ===============================================
key        wind from         tier        who uses it
=========  ================  ==========  ===============================================
``7``      13.9 m/s (Bft 7)  gale        CMA, the HK/Macau observatories (R7, 7级风圈)
``34kt``   17.5 m/s (Bft 8)  gale        JTWC, JMA, IBTrACS (R34)
``10``     24.5 m/s (Bft 10) storm       CMA (R10)
``50kt``   25.7 m/s (Bft 10) storm       JTWC (R50)
``12``     32.7 m/s (Bft 12) hurricane   CMA (R12)
``64kt``   32.9 m/s (Bft 12) hurricane   JTWC (R64)
=========  ================  ==========  ===============================================

A tier is "winds of this force or more"; "gale" is the outer circle whose arrival is a
grid's gale ETA. R7 starts at a lower wind than R34, so a CMA R7 circle is larger than the
JTWC R34 circle of the same storm: one advisory uses one scale (Beaufort or knots).
"""

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gridgis.errors import InvalidInput

QUADRANTS = ("ne", "se", "sw", "nw")
"""Quadrants in clockwise order; NE holds bearings 0-90°, SE 90-180°, SW 180-270°, NW 270-360°."""

TIERS = ("gale", "storm", "hurricane")
"""Wind tiers from the outer (weakest) circle inwards."""

THRESHOLD_TIERS = {"7": "gale", "34kt": "gale", "10": "storm", "50kt": "storm",
                   "12": "hurricane", "64kt": "hurricane"}
THRESHOLD_WIND_MS = {"7": 13.9, "34kt": 17.5, "10": 24.5, "50kt": 25.7,
                     "12": 32.7, "64kt": 32.9}

MAX_RADIUS_KM = 2000.0  # the largest gale circles on record are ~1,100 km; more is a unit slip

LEVELS = {"blue": 1, "yellow": 2, "orange": 3, "red": 4,
          "signal 1": 1, "signal 3": 2, "signal 8": 3, "signal 9": 4, "signal 10": 4}
"""Warning levels (canonical text) and their rank on gridgis' one scale, 1 (lowest) to 4.

=====  ===================================  =====================================
rank   China (台风预警, CMA / Guangdong)      Hong Kong / Macau signal (风球)
=====  ===================================  =====================================
1      blue 蓝: Bft 6+ (10.8 m/s) in 24 h   1 standby: a cyclone within ~800 km
2      yellow 黄: Bft 8+ (17.2 m/s)          3 strong wind: 41-62 km/h (Bft 6-7)
3      orange 橙: Bft 10+ (24.5 m/s)         8 gale or storm: 63-117 km/h (Bft 8-11)
4      red 红: Bft 12+ (32.7 m/s)            9 increasing gale or storm; 10 hurricane
=====  ===================================  =====================================

Each signal takes the colour whose threshold the top of its wind band reaches, so a grid is
never warned lower than its wind: signal 3 tops out at 62 km/h = 17.2 m/s, yellow's threshold;
signal 8 reaches 117 km/h = 32.5 m/s, past orange's 24.5; signal 9 announces that signal 10
(hurricane, red) may follow, so it is red too; signal 1 (standby, no wind yet) is the lowest,
blue. By the bottom of the bands instead, 3 would be blue and 8 yellow (the rank decides who
is alerted: a missed grid costs more than an extra message). Accepted spellings: the
colour in English or Chinese, simplified or traditional (``red``, ``红``, ``紅色``,
``红色预警``); a signal as a number or ``T8``, ``No. 8``, ``signal 8``, ``8号风球``, ``8NE``
(Hong Kong's directional 8s). ``gridgis.alerts.cap`` maps signals onto colours the same way.
"""

_COLOURS = {"蓝": "blue", "藍": "blue", "黄": "yellow", "黃": "yellow", "橙": "orange",
            "红": "red", "紅": "red"}
_SIGNAL = re.compile(r"^(?:signal|no\.?|t)?\s*(1|3|8|9|10)\s*(?:ne|se|sw|nw)?\s*"
                     r"(?:号风球|號風球|号|號)?$")

_TOP_KEYS = ("storm", "source", "issued", "level", "points")
_STORM_KEYS = ("id", "name", "name_zh")
_POINT_KEYS = ("time", "lon", "lat", "pressure_hpa", "wind_ms", "forecast", "radii_km")


@dataclass(frozen=True)
class QuadrantRadii:
    """Radii (km) of one threshold per quadrant; None where the advisory gives none."""

    ne: float | None = None
    se: float | None = None
    sw: float | None = None
    nw: float | None = None

    def values(self) -> tuple[float | None, float | None, float | None, float | None]:
        """Return the radii in ``QUADRANTS`` order (NE, SE, SW, NW), km or None."""
        return self.ne, self.se, self.sw, self.nw


@dataclass(frozen=True)
class TrackPoint:
    """One fix or forecast: centre lon/lat (EPSG:4326), radii (km) keyed by threshold."""

    time: datetime
    lon: float
    lat: float
    forecast: bool = False
    pressure_hpa: float | None = None
    wind_ms: float | None = None
    radii_km: Mapping[str, QuadrantRadii] = field(default_factory=dict, hash=False)

    def radii_of(self, tier: str) -> QuadrantRadii | None:
        """Return the radii of the threshold in ``tier`` (gale, storm, hurricane), or None."""
        for key, radii in self.radii_km.items():
            if THRESHOLD_TIERS[key] == tier:
                return radii
        return None


@dataclass(frozen=True)
class Storm:
    """The storm an advisory is about: its number (e.g. CMA ``2411``) and names."""

    id: str
    name: str
    name_zh: str | None = None


@dataclass(frozen=True)
class Advisory:
    """One advisory: storm, source, issue time, level (canonical text) and track in time order."""

    storm: Storm
    source: str
    issued: datetime
    level: str
    points: tuple[TrackPoint, ...]

    @property
    def level_rank(self) -> int:
        """Return the level on gridgis' scale 1-4 (see ``LEVELS``)."""
        return LEVELS[self.level]


def normalise_level(level: object) -> str:
    """Return the canonical text of a warning level (a key of ``LEVELS``)."""
    if isinstance(level, int) and not isinstance(level, bool):
        level = str(level)
    if not isinstance(level, str):
        raise InvalidInput(f"level: expected text such as 'red' or 'signal 8', got {level!r}")
    text = level.strip().lower()
    colour = re.sub(r"(色)?(预警|預警|warning)?$", "", text).strip()
    colour = _COLOURS.get(colour, colour)
    if colour in LEVELS and not colour.startswith("signal"):
        return colour
    signal = _SIGNAL.match(text)
    if signal:
        return f"signal {signal.group(1)}"
    raise InvalidInput(f"level: unknown warning level {level!r}; expected blue, yellow, orange, "
                       "red or a Hong Kong/Macau signal 1, 3, 8, 9, 10")


def level_rank(text: str | int) -> int:
    """Return a warning level's rank on gridgis' one scale, 1 (blue, signal 1) to 4 (red,
    signals 9 and 10); see the table of ``LEVELS``."""
    return LEVELS[normalise_level(text)]


def level_from_wind(wind_ms: float) -> str:
    """Return China's colour for a sustained wind (m/s, 2-min): red from Bft 12 (32.7), orange
    from Bft 10 (24.5), yellow from Bft 8 (17.2), else blue (the lowest an advisory carries)."""
    for limit_ms, colour in ((32.7, "red"), (24.5, "orange"), (17.2, "yellow")):
        if wind_ms >= limit_ms:
            return colour
    return "blue"


def parse_advisory(document: str | bytes | Mapping[str, Any]) -> Advisory:
    """Return the advisory in a JSON document (text, bytes or already decoded), checked."""
    if isinstance(document, str | bytes | bytearray):
        try:
            document = json.loads(document, object_pairs_hook=_refuse_duplicates,
                                  parse_constant=_refuse_constant)
        except json.JSONDecodeError as error:
            raise InvalidInput(f"advisory is not valid JSON: {error.msg} at line "
                               f"{error.lineno} column {error.colno}") from error
        except UnicodeDecodeError as error:
            raise InvalidInput(f"advisory is not UTF-8 text: {error.reason}") from error
    doc = _mapping(document, "advisory", _TOP_KEYS)
    storm = _mapping(_required(doc, "storm", ""), "storm", _STORM_KEYS)
    points_doc = _required(doc, "points", "")
    if not isinstance(points_doc, list) or not points_doc:
        raise InvalidInput("points: expected a non-empty list of track points")
    points = tuple(_parse_point(p, f"points[{i}]") for i, p in enumerate(points_doc))
    _check_track(points)
    name_zh = storm.get("name_zh")
    return Advisory(
        storm=Storm(id=_text(_required(storm, "id", "storm."), "storm.id"),
                    name=_text(_required(storm, "name", "storm."), "storm.name"),
                    name_zh=None if name_zh is None else _text(name_zh, "storm.name_zh")),
        source=_text(_required(doc, "source", ""), "source"),
        issued=_time(_required(doc, "issued", ""), "issued"),
        level=normalise_level(_required(doc, "level", "")),
        points=points,
    )


def dump_advisory(advisory: Advisory) -> dict[str, Any]:
    """Return the advisory as a JSON-ready document in the DESIGN.md format."""
    def point(p: TrackPoint) -> dict[str, Any]:
        doc: dict[str, Any] = {"time": p.time.isoformat(), "lon": p.lon, "lat": p.lat}
        if p.pressure_hpa is not None:
            doc["pressure_hpa"] = p.pressure_hpa
        if p.wind_ms is not None:
            doc["wind_ms"] = p.wind_ms
        doc["forecast"] = p.forecast
        doc["radii_km"] = {key: {q: r for q, r in zip(QUADRANTS, radii.values(), strict=True)
                                 if r is not None}
                           for key, radii in p.radii_km.items()}
        return doc

    storm: dict[str, Any] = {"id": advisory.storm.id, "name": advisory.storm.name}
    if advisory.storm.name_zh is not None:
        storm["name_zh"] = advisory.storm.name_zh
    return {"storm": storm, "source": advisory.source, "issued": advisory.issued.isoformat(),
            "level": advisory.level, "points": [point(p) for p in advisory.points]}


def _parse_point(value: object, path: str) -> TrackPoint:
    doc = _mapping(value, path, _POINT_KEYS)
    forecast = doc.get("forecast", False)
    if not isinstance(forecast, bool):
        raise InvalidInput(f"{path}.forecast: expected true or false, got {forecast!r}")
    pressure, wind = doc.get("pressure_hpa"), doc.get("wind_ms")
    return TrackPoint(
        time=_time(_required(doc, "time", path + "."), f"{path}.time"),
        lon=_number(_required(doc, "lon", path + "."), f"{path}.lon", -180, 180),
        lat=_number(_required(doc, "lat", path + "."), f"{path}.lat", -90, 90),
        forecast=forecast,
        pressure_hpa=None if pressure is None else _number(pressure, f"{path}.pressure_hpa",
                                                           800, 1100),
        wind_ms=None if wind is None else _number(wind, f"{path}.wind_ms", 0, 150),
        radii_km=_parse_radii(doc.get("radii_km"), f"{path}.radii_km"),
    )


def _parse_radii(value: object, path: str) -> dict[str, QuadrantRadii]:
    if value is None:
        return {}
    doc = _mapping(value, path, tuple(THRESHOLD_TIERS))
    radii: dict[str, QuadrantRadii] = {}
    for key, quadrants in doc.items():
        tier = THRESHOLD_TIERS[key]
        twin = next((k for k in radii if THRESHOLD_TIERS[k] == tier), None)
        if twin is not None:
            raise InvalidInput(f"{path}: '{twin}' and '{key}' are both {tier} thresholds; "
                               "give one scale, Beaufort (7, 10, 12) or knots (34kt, 50kt, 64kt)")
        quadrant_doc = _mapping(quadrants, f"{path}.{key}", QUADRANTS)
        radii[key] = QuadrantRadii(**{
            q: None if r is None else _number(r, f"{path}.{key}.{q}", 0, MAX_RADIUS_KM)
            for q, r in quadrant_doc.items()})
    # A stronger wind cannot reach further out than a weaker one in the same quadrant.
    ordered = sorted(radii.items(), key=lambda item: TIERS.index(THRESHOLD_TIERS[item[0]]))
    for i, (outer_key, outer) in enumerate(ordered):
        for inner_key, inner in ordered[i + 1:]:
            for q, r_out, r_in in zip(QUADRANTS, outer.values(), inner.values(), strict=True):
                if r_out is not None and r_in is not None and r_in > r_out:
                    raise InvalidInput(
                        f"{path}.{inner_key}.{q}: {r_in:g} km is larger than the "
                        f"{outer_key} radius {r_out:g} km of the same quadrant")
    return radii


def _check_track(points: tuple[TrackPoint, ...]) -> None:
    scale_of = {True: "knots", False: "Beaufort"}
    seen: tuple[int, str] | None = None
    for i, point in enumerate(points):
        if i:
            before = points[i - 1]
            if point.time == before.time:
                raise InvalidInput(f"points[{i}].time: {point.time.isoformat()} repeats the "
                                   f"time of points[{i - 1}]")
            if point.time < before.time:
                raise InvalidInput(f"points[{i}].time: {point.time.isoformat()} is before "
                                   f"points[{i - 1}].time {before.time.isoformat()}; points "
                                   "must be in time order")
            if before.forecast and not point.forecast:
                raise InvalidInput(f"points[{i}].forecast: an analysis point after the "
                                   f"forecast points[{i - 1}]")
        for key in point.radii_km:
            scale = scale_of[key.endswith("kt")]
            if seen is None:
                seen = (i, scale)
            elif seen[1] != scale:
                raise InvalidInput(f"points[{i}].radii_km.{key}: a {scale} threshold in an "
                                   f"advisory whose points[{seen[0]}] uses {seen[1]}; one "
                                   "advisory uses one scale")


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:
            raise InvalidInput(f"advisory: the key {key!r} appears twice in one object")
        doc[key] = value
    return doc


def _refuse_constant(name: str) -> float:
    raise InvalidInput(f"advisory: {name} is not a number JSON allows")


def _mapping(value: object, path: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{path}: expected an object, got {type(value).__name__}")
    unknown = [key for key in value if key not in allowed]
    if unknown:
        raise InvalidInput(f"{path}: unknown key {unknown[0]!r}; expected one of "
                           f"{', '.join(allowed)}")
    return value


def _required(doc: Mapping[str, Any], key: str, prefix: str) -> Any:
    if doc.get(key) is None:
        raise InvalidInput(f"{prefix}{key}: missing")
    return doc[key]


def _text(value: object, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{path}: expected non-empty text, got {value!r}")
    return value.strip()


def _number(value: object, path: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{path}: expected a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise InvalidInput(f"{path}: {value!r} is outside {low:g}..{high:g}")
    return number


def _time(value: object, path: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidInput(f"{path}: expected an ISO 8601 time, got {value!r}")
    try:
        time = datetime.fromisoformat(value)
    except ValueError as error:
        raise InvalidInput(f"{path}: {value!r} is not an ISO 8601 time") from error
    if time.tzinfo is None or time.utcoffset() is None:
        raise InvalidInput(f"{path}: {value!r} has no timezone; add Z or an offset such as "
                           "+08:00")
    return time
