"""Drills: a past storm replayed from its best track as advisories, in time order.

``gridgis drill yagi`` issues one advisory per IBTrACS fix of Super Typhoon Yagi (2024) as
an *exercise* (marked all the way, never sent to public channels), in a chain of its own so
it can be run again, sleeping between fixes so the command centre can watch the flow.
"""

import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from gridgis.alerts import flows, intake, track
from gridgis.errors import InvalidInput

STORMS = {"yagi": (track.YAGI_CSV, track.YAGI)}


def run_drill(engine: Engine, storm: str, *, speed: float, forecast_hours: float = 24,
              report: Callable[[str], None] = print, limit: int | None = None) -> str:
    """Replay a storm; ``speed`` is storm seconds per real second (0: no waiting)."""
    if storm not in STORMS:
        raise InvalidInput(f"unknown drill {storm!r}; drills: {', '.join(STORMS)}")
    if speed < 0:
        raise InvalidInput("speed must be 0 (no waiting) or more")
    csv_path, known = STORMS[storm]
    advisories = track.advisories_from_ibtracs(csv_path, known, forecast_hours)[:limit]
    chain = f"drill-{storm}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    reached = 0
    for n, item in enumerate(advisories):
        if n and speed:
            gap = (item.issued - advisories[n - 1].issued).total_seconds()
            time.sleep(gap / speed)
        with Session(engine) as session:
            incoming = intake.read_advisory(session, item, status="exercise", chain=chain)
            result = flows.issue_committed(session, None, incoming)
        reached = max(reached, result.grids)
        report(f"{item.issued:%Y-%m-%d %H:%MZ} {incoming.level:>6}: {result.message}")
    return f"drill {chain}: {len(advisories)} advisories, at most {reached} grids reached"
