"""Best tracks as advisories: an IBTrACS CSV replayed fix by fix (for ``gridgis drill``).

The CSV is the column subset described in ``data/typhoons/SOURCES.md``: times in UTC,
positions in degrees (EPSG:4326), winds in knots, JTWC 34/50/64-kt radii per quadrant in
nautical miles (blank = not given). The advisories use the knot thresholds (``34kt``...), not
CMA's R7/R10/R12, which IBTrACS does not carry.
"""

import csv
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gridgis.alerts.advisory import (
    QUADRANTS,
    Advisory,
    Storm,
    level_from_wind,
    parse_advisory,
)
from gridgis.errors import InvalidInput
from gridgis.settings import PROJECT_DIR

NM_KM = 1.852
KT_MS = 0.514444
SOURCE = "IBTrACS v04r01 best track (JTWC radii)"
YAGI = Storm(id="2411", name="Yagi", name_zh="摩羯")
YAGI_CSV = PROJECT_DIR / "data" / "typhoons" / "yagi_2024.csv"
# Whose wind sets the level: CMA's 2-minute wind (China's levels are defined on it), then
# JTWC's 1-minute, then WMO/JMA's 10-minute (only every 6 h).
WIND_COLUMNS = ("cma_wind_kt", "usa_wind_kt", "wmo_wind_kt")
PRESSURE_COLUMNS = ("cma_pres_hpa", "wmo_pres_hpa", "usa_pres_hpa")


def advisories_from_ibtracs(csv_path: Path | str, storm: Storm = YAGI,
                            forecast_hours: float = 0) -> list[Advisory]:
    """Return one advisory per best-track fix, in time order.

    Each holds the fixes up to its time as analysis points (``issued`` = that time) and, with
    ``forecast_hours``, the fixes of the next hours as forecast points (a perfect forecast, so
    a drill has gale ETAs ahead of the storm). Radii are the JTWC 34/50/64-kt ones in km
    (nm x 1.852); the level is ``level_from_wind`` of the strongest wind now or forecast. The
    CSV carries no storm name: pass ``storm`` for another storm than Yagi.
    """
    fixes = read_fixes(csv_path)
    ahead = timedelta(hours=forecast_hours)
    advisories = []
    for i, fix in enumerate(fixes):
        now = datetime.fromisoformat(fix["time"])
        forecasts = [dict(f, forecast=True) for f in fixes[i + 1:]
                     if datetime.fromisoformat(f["time"]) <= now + ahead]
        winds = [p["wind_ms"] for p in (fix, *forecasts) if "wind_ms" in p]
        advisories.append(parse_advisory({
            "storm": {k: v for k, v in asdict(storm).items() if v is not None},
            "source": SOURCE, "issued": fix["time"],
            "level": level_from_wind(max(winds, default=0.0)),
            "points": [*fixes[:i + 1], *forecasts]}))
    return advisories


def read_fixes(csv_path: Path | str) -> list[dict[str, Any]]:
    """Return the best-track fixes as track-point documents of the advisory format."""
    path = Path(csv_path)
    try:
        with path.open(newline="", encoding="utf-8") as file:
            rows = list(csv.DictReader(file))
    except OSError as error:
        raise InvalidInput(f"{path.name}: cannot be read: {error.strerror}") from error
    missing = {"iso_time_utc", "lat", "lon"} - set(rows[0] if rows else ())
    if missing:
        raise InvalidInput(f"{path.name}: no column {sorted(missing)[0]} (not an IBTrACS "
                           "subset?)")
    return [_fix(row, f"{path.name} line {i + 2}") for i, row in enumerate(rows)]


def _fix(row: dict[str, str], where: str) -> dict[str, Any]:
    try:
        time = datetime.fromisoformat(row["iso_time_utc"]).replace(tzinfo=UTC)
        point: dict[str, Any] = {"time": time.isoformat(), "lon": float(row["lon"]),
                                 "lat": float(row["lat"]), "forecast": False}
        pressure = _first(row, PRESSURE_COLUMNS)
        wind_kt = _first(row, WIND_COLUMNS)
        radii: dict[str, dict[str, float]] = {}
        for knots in (34, 50, 64):
            quadrants = {q: float(row[f"usa_r{knots}_{q}_nm"]) * NM_KM for q in QUADRANTS
                         if row.get(f"usa_r{knots}_{q}_nm", "").strip()}
            if quadrants:
                radii[f"{knots}kt"] = quadrants
    except ValueError as error:
        raise InvalidInput(f"{where}: {error}") from error
    if pressure is not None:
        point["pressure_hpa"] = pressure
    if wind_kt is not None:
        point["wind_ms"] = round(wind_kt * KT_MS, 1)
    point["radii_km"] = radii
    return point


def _first(row: dict[str, str], columns: tuple[str, ...]) -> float | None:
    """Return the first non-blank of the columns as a number, or None."""
    for column in columns:
        if (value := row.get(column, "").strip()):
            return float(value)
    return None
