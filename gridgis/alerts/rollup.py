"""Roll-up of a warning's checklists: grid -> community -> street -> district, at any moment.

One statement (``sql/checklist_series.sql``) reads the warning's whole chain (the message
and its updates) and adds up, per unit and moment, the items made by then, each as its last
change left it (``checklist_event``): the command centre's "now", a look back to any past
moment, and the time series of the after-action review are the same numbers. Shelter
occupancy is read beside it, taken back to the moment by the check-ins and check-outs since.
"""

import math
from datetime import datetime
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.orm import Session

from gridgis import auth
from gridgis.alerts import targeting
from gridgis.errors import InvalidInput, NotFound
from gridgis.models import AppUser

Level = Literal["grid", "community", "street", "district"]
READ_ROLES = ("command", "admin", auth.UNIT_ROLE, *auth.GRID_ROLES)
MAX_MOMENTS = 2000
NICE_STEPS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)

SPAN_SQL = text("""
SELECT min(c.created_at) AS since,
       CASE WHEN bool_and(c.state <> 'open')
            THEN greatest(max(c.closed_at), max((SELECT max(e.at) FROM checklist_event e
                                                 WHERE e.checklist_id = c.id)))
            ELSE now() END AS until,
       now() AS now
FROM checklist c JOIN alert a ON a.id = c.alert_id
JOIN warning_chain(:warning) chain ON chain.warning_id = a.warning_id
""")


class UnitProgress(BaseModel):
    """A unit's evacuation work at one moment: items made and finished (done or not
    needed), people contacted, moved and checked in, grids at risk of not finishing in time;
    shelters the unit holds, when read at one moment."""

    at: datetime
    level: Level
    unit: str
    unit_name: str
    grids: int  # checklists
    items: int
    finished: int
    unable: int
    contacted: int  # contact items done
    to_transfer: int  # people
    on_the_way: int  # left home, not yet checked in
    checked_in: int
    at_risk: int  # grids
    closed: int  # grids whose checklist was closed (stood down) by then
    shelter_capacity: int | None = None
    shelter_occupancy: int | None = None


def rollup(session: Session, user: AppUser, warning: str, level: Level,
           at: datetime | None = None) -> list[UnitProgress]:
    """Return each unit's progress under ``warning`` at ``at`` (default now), with its
    shelters."""
    moment = at or session.scalar(text("SELECT now()"))
    rows = _series(session, user, warning, level, moment, moment, 60)
    if rows:
        occupancy = {row.unit: row for row in session.execute(
            text(targeting.sql_file("shelter_occupancy")),
            {"level": level, "at": moment, "units": [r.unit for r in rows]})}
        for row in rows:
            if found := occupancy.get(row.unit):
                row.shelter_capacity, row.shelter_occupancy = found.capacity, found.occupancy
    return rows


def series(session: Session, user: AppUser, warning: str, level: Level,
           step: int | None = None, since: datetime | None = None,
           until: datetime | None = None) -> list[UnitProgress]:
    """Return each unit's progress under ``warning`` every ``step`` seconds from ``since``
    (default: its first checklist) to ``until`` (default: now, or when the last checklist
    closed); ``step`` by default gives about a hundred moments."""
    span = session.execute(SPAN_SQL, {"warning": warning}).one()
    start, end = since or span.since or span.now, until or span.until or span.now
    if end < start:
        raise InvalidInput(f"until ({end.isoformat()}) is before since ({start.isoformat()})")
    seconds = (end - start).total_seconds()
    if step is None:
        step = next((s for s in NICE_STEPS if seconds / s <= 120), NICE_STEPS[-1])
    if seconds / step > MAX_MOMENTS:
        raise InvalidInput(f"{math.ceil(seconds / step)} moments asked for; at most "
                           f"{MAX_MOMENTS}: take a longer step")
    return _series(session, user, warning, level, start, end, step)


def _series(session: Session, user: AppUser, warning: str, level: Level, since: datetime,
            until: datetime, step: int) -> list[UnitProgress]:
    auth.require_role(user, *READ_ROLES)
    if session.scalar(text("SELECT 1 FROM warning WHERE identifier = :w"),
                      {"w": warning}) is None:
        raise NotFound(f"no warning {warning}")
    grids = (None if user.role in ("command", "admin")
             else sorted(auth.watched_grid_ids(session, user)))
    rows = session.execute(text(targeting.sql_file("checklist_series")), {
        "warning": warning, "level": level, "since": since, "until": until, "step": step,
        "grids": grids}).mappings()
    return [UnitProgress(level=level, **row) for row in rows]
