"""The live state of the map: what the command centre colours grids by, read in one query.

Pages fetch it when they open and again when the live feed says something changed (a
warning, an acknowledgement, an escalation, checklist progress), and redraw only the grids
whose state moved. ``sql/map_state.sql`` builds the JSON inside PostGIS.
"""

from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from gridgis import auth
from gridgis.models import AppUser

STATE_SQL = text((Path(__file__).parent / "sql" / "map_state.sql").read_text(encoding="utf-8"))
SEES_ALL = ("command", "admin", "planner")


def map_state(session: Session, user: AppUser) -> Any:
    """Return the map's live state for ``user`` (a grid team or unit head: its grids)."""
    grids = None if user.role in SEES_ALL else sorted(auth.watched_grid_ids(session, user))
    state = session.execute(STATE_SQL, {"grids": grids}).scalar_one()
    if user.role not in ("command", "admin"):
        state["totals"]["dead_letters"] = None  # the command centre's business
        state["totals"]["waiting_messages"] = None
    return state
