"""Targeting: which grids a warning reaches, with tier, gale ETA, coverage and counts.

All in PostGIS, in one statement (``sql/target_grids.sql``): the warning's areas against the
grids' GiST index, the kept per-grid totals (``grid_total``) instead of a live join over
buildings and residents. Creating the alerts and their outbox rows are two more statements
in the caller's transaction.
"""

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

SQL_DIR = Path(__file__).with_name("sql")
# Who hears of an alert: the grid's team, on the channels each person has given. One row
# per (alert, warning, kind, recipient, channel): the idempotency key.
OUTBOX_SQL = """
INSERT INTO outbox (alert_id, app_user_id, channel, idempotency_key, kind, payload)
SELECT a.id, u.id, ch.channel,
       a.id || ':' || w.id || ':' || :kind || ':' || u.id || ':' || ch.channel, :kind,
       jsonb_build_object('kind', :kind, 'alert', a.id, 'warning', w.identifier, 'grid', g.code,
                          'tier', a.tier, 'level', w.level, 'event', w.event,
                          'headline', w.headline, 'gale_eta', a.gale_eta,
                          'exercise', w.status <> 'actual')
FROM alert a
JOIN warning w ON w.id = :warning_id
JOIN grid g ON g.id = a.grid_id
JOIN app_user_grid ug ON ug.grid_id = a.grid_id
JOIN app_user u ON u.id = ug.app_user_id AND u.active
CROSS JOIN LATERAL (VALUES ('feed'), (CASE WHEN u.phone IS NOT NULL THEN 'sms' END),
                           (CASE WHEN u.email IS NOT NULL THEN 'email' END)) ch(channel)
WHERE a.id = ANY(:alert_ids) AND ch.channel IS NOT NULL
ON CONFLICT (idempotency_key) DO NOTHING
"""


@dataclass(frozen=True)
class Target:
    """A grid a warning reaches and why."""

    grid_id: int
    code: str
    tier: str
    share: float  # of the grid's area inside the tier's area, 0..1
    gale_eta: datetime | None
    buildings: int
    risky_buildings: int
    residents: int
    vulnerable: int


@cache
def target_sql() -> str:
    return (SQL_DIR / "target_grids.sql").read_text(encoding="utf-8")


def find_targets(session: Session, warning_id: int, min_share: float = 0.0) -> list[Target]:
    """Return the grids the warning's stored areas reach, soonest gale first."""
    rows = session.execute(text(target_sql() + "\nORDER BY e.gale_eta NULLS LAST, g.code"),
                           {"warning_id": warning_id, "min_share": min_share}).mappings()
    return [Target(**row) for row in rows]


def create_alerts(session: Session, warning_id: int, min_share: float = 0.0) -> list[int]:
    """Write an alert per reached grid and its outbox rows; return the alert ids."""
    alert_ids = list(session.scalars(text(
        "INSERT INTO alert (warning_id, grid_id, tier, gale_eta, coverage, buildings, "
        "risky_buildings, residents, vulnerable) SELECT :warning_id, grid_id, tier, gale_eta, "
        "share, buildings, risky_buildings, residents, vulnerable FROM (" + target_sql()
        + ") t RETURNING id"), {"warning_id": warning_id, "min_share": min_share}))
    queue_messages(session, warning_id, alert_ids, "alert")
    return alert_ids


def queue_messages(session: Session, warning_id: int, alert_ids: list[int], kind: str) -> None:
    """Queue a message of ``kind`` about each alert to its grid's team."""
    if alert_ids:
        session.execute(text(OUTBOX_SQL), {"warning_id": warning_id, "alert_ids": alert_ids,
                                           "kind": kind})
