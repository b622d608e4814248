"""The delivery backlog: what is still to go, per channel, for the command centre.

When a channel is down (an SMS gateway, a robot, the mail server) its messages wait and are
retried with backoff, in order per recipient; this is where the command centre sees them
pile up, how long the oldest has waited, when the next try is, and the last error.
"""

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.orm import Session

BACKLOG_SQL = text("""
SELECT channel,
       count(*) AS waiting,
       count(*) FILTER (WHERE state = 'failed') AS retrying,
       min(created_at) AS oldest,
       min(next_attempt_at) AS next_attempt_at,
       (array_agg(last_error ORDER BY id DESC) FILTER (WHERE last_error IS NOT NULL))[1]
           AS last_error
FROM outbox WHERE state IN ('queued', 'failed', 'sending')
GROUP BY channel ORDER BY channel
""")


class ChannelBacklog(BaseModel):
    """One channel's messages still to go."""

    channel: str
    waiting: int  # queued, being sent, or failed and to be retried
    retrying: int  # failed at least once, waiting for their next try
    oldest: datetime  # when the oldest waiting message was queued
    next_attempt_at: datetime
    last_error: str | None  # of the newest message that failed


def backlog(session: Session) -> list[ChannelBacklog]:
    """Return the channels with messages still to go (none listed: nothing waits)."""
    return [ChannelBacklog(**row) for row in session.execute(BACKLOG_SQL).mappings()]
