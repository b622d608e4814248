"""Escalation: an alert its grid team has not acknowledged in time goes up the hierarchy.

Each alert gets an acknowledgement window by its warning's level when it is queued (settings
``ack_window_minutes``). The dispatcher runs ``escalate`` about once a second: an alert still
unacknowledged at its due time is told to the heads of the grid's community (step 1), and
after a second window to the heads of its street and to the command centre (step 2), on the
feed and on a second channel (``escalation_channels``: SMS, e-mail). The outbox rows join
the alert's history with kind ``escalation``; an acknowledgement or a stand-down stops it.
"""

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from gridgis.alerts import targeting
from gridgis.settings import Settings

BATCH = 500  # alerts escalated per statement


@dataclass(frozen=True)
class Escalated:
    alerts: int
    messages: int


def escalate(session: Session, settings: Settings, limit: int = BATCH) -> Escalated:
    """Take due, unacknowledged alerts one step up and queue their messages; the caller
    commits. Alerts another dispatcher holds are skipped, not waited for."""
    row = session.execute(text(targeting.sql_file("escalate")), {
        "limit": limit, "windows": targeting.ack_windows(settings),
        "channels": list(settings.escalation_channels)}).one()
    return Escalated(int(row.alerts), int(row.messages))
