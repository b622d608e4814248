"""Dead letters: messages the dispatcher gave up on, for the command centre to see and resend.

A message goes dead after ``dispatch_max_attempts`` failures or at once on a failure no retry
mends (a refusal, an unconfigured channel, a recipient with no phone). The command centre
lists them (``GET /api/dead-letters``, ``gridgis dispatch --dead``) and, once the cause is
mended, queues them again with the same keys, so receivers still drop repeats.
"""

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.orm import Session

LIST_SQL = text("""
SELECT o.id AS outbox_id, o.payload->>'warning' AS warning, o.payload->>'grid' AS grid,
       o.channel, o.kind, u.username AS recipient, o.attempts, o.last_error, o.created_at
FROM outbox o LEFT JOIN app_user u ON u.id = o.app_user_id
WHERE o.state = 'dead' AND (CAST(:warning AS text) IS NULL OR o.payload->>'warning' = :warning)
ORDER BY o.id DESC LIMIT :limit
""")
REQUEUE_SQL = text("""
UPDATE outbox SET state = 'queued', attempts = 0, next_attempt_at = now()
WHERE state = 'dead' AND (CAST(:warning AS text) IS NULL OR payload->>'warning' = :warning)
  AND (CAST(:channel AS text) IS NULL OR channel = :channel)
""")


class DeadLetter(BaseModel):
    """A message that will not be sent, and why."""

    outbox_id: int
    warning: str | None
    grid: str | None
    channel: str
    kind: str
    recipient: str | None
    attempts: int
    last_error: str | None
    created_at: datetime


def listed(session: Session, warning_identifier: str | None = None,
           limit: int = 1000) -> list[DeadLetter]:
    """Return the dead messages, newest first; of one warning (its identifier) if given."""
    rows = session.execute(LIST_SQL, {"warning": warning_identifier, "limit": limit})
    return [DeadLetter(**row) for row in rows.mappings()]


def requeue(session: Session, warning_identifier: str | None = None,
            channel: str | None = None) -> int:
    """Queue the dead messages again (of one warning, one channel, if given); return how
    many. The caller commits (the outbox trigger wakes the dispatcher)."""
    result = session.execute(REQUEUE_SQL, {"warning": warning_identifier, "channel": channel})
    return int(getattr(result, "rowcount", 0))
