"""Per-grid totals (``grid_total``): buildings, risky buildings, residents, vulnerable people.

Targeting a warning reads these instead of counting buildings and residents live: the peer
baseline measured 48 ms with kept totals against over a second for a live join. Bulk loads
and imports refresh them; a single edit leaves them a row behind until the next refresh
(checklists count live rows).
"""

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session


def refresh_totals(conn: Connection | Session, concurrently: bool = False) -> None:
    """Recount every grid's totals, in the caller's transaction; ``concurrently`` lets
    targeting read the old totals meanwhile (a little slower, for live systems). Through a
    function running as the view's owner: the application's role does not own it."""
    conn.execute(text("SELECT refresh_grid_total(:keep_reading)"),
                 {"keep_reading": concurrently})
