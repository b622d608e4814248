"""Hostile typhoon advisories (the JSON of DESIGN.md): bad track points, bad tracks.

Each case is a change to ``ADVISORY`` (a good two-point track towards Hengqin) and what the
refusal must say (a regular expression).
"""

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

ADVISORY: dict[str, Any] = {
    "storm": {"id": "2499", "name": "Hostile"}, "source": "CMA",
    "issued": "2024-09-05T09:00:00Z", "level": "red",
    "points": [
        {"time": "2024-09-05T09:00:00Z", "lon": 114.7, "lat": 19.3, "forecast": False,
         "radii_km": {"7": {"ne": 380, "se": 300, "sw": 260, "nw": 350}}},
        {"time": "2024-09-06T09:00:00Z", "lon": 113.5, "lat": 22.1, "forecast": True,
         "radii_km": {"7": {"ne": 350, "se": 300, "sw": 250, "nw": 320}}},
    ],
}


@dataclass(frozen=True)
class Track:
    name: str
    change: Callable[[dict[str, Any]], Any]  # changes a copy of ADVISORY, or returns JSON text
    reason: str  # a regular expression the refusal must match

    def text(self) -> str:
        """Return the advisory, changed, as JSON text."""
        document = copy.deepcopy(ADVISORY)
        changed = self.change(document)
        return changed if isinstance(changed, str) else json.dumps(document)


def first_point(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda document: document["points"][0].__setitem__(key, value)


def hourly(count: int, start: datetime = datetime(2024, 9, 1, tzinfo=UTC),
           step: timedelta = timedelta(hours=1)) -> Callable[[dict[str, Any]], None]:
    """Replace the points by ``count`` points ``step`` apart, drifting west."""
    def change(document: dict[str, Any]) -> None:
        document["points"] = [{"time": (start + step * i).isoformat(),
                               "lon": 120 - i * 1e-4, "lat": 20.0,
                               "radii_km": {"7": {"ne": 100}}} for i in range(count)]
    return change


TRACKS = [
    Track("NaN longitude", first_point("lon", float("nan")), r"points\[0\]\.lon"),
    Track("infinite latitude", first_point("lat", float("-inf")), r"points\[0\]\.lat"),
    Track("huge numbers", first_point("lon", 1e308), r"points\[0\]\.lon: 1e\+308 is outside"),
    Track("lat/lon swapped", lambda d: d["points"][0].update(lon=19.3, lat=114.7),
          r"points\[0\]\.lat: 114\.7 is outside -90\.\.90"),
    Track("non-numeric coordinates", first_point("lon", "114.7"),
          r"points\[0\]\.lon: expected a number"),
    Track("across the antimeridian", lambda d: (d["points"][0].update(lon=179.5),
                                                d["points"][1].update(lon=-179.5)),
          r"antimeridian"),
    Track("negative radius", first_point("radii_km", {"7": {"ne": -5}}),
          r"radii_km\.7\.ne: -5 is outside 0\.\.2000"),
    Track("NaN radius", first_point("radii_km", {"7": {"ne": float("nan")}}),
          r"radii_km\.7\.ne: nan is outside"),
    Track("no points", lambda d: d.__setitem__("points", []), r"points: expected a non-empty"),
    Track("100,000 points", hourly(100_000), r"request body is over 8 MB"),
    Track("5,000 points", hourly(5_000), r"5,000 track points"),
    Track("a century long", hourly(2, step=timedelta(days=36_500)), r"spans 36500 days"),
    Track("deeply nested JSON",
          lambda d: '{"storm": ' + "[" * 100_000 + "]" * 100_000 + "}", r"nest|depth|JSON"),
]
