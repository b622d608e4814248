"""Targeting: which grids a warning reaches, with tier, gale ETA, coverage and counts.

All in PostGIS, in one statement (``sql/target_grids.sql``): the warning's areas against the
grids' GiST index, the kept per-grid totals (``grid_total``) instead of a live join over
buildings and residents. Creating the alerts (from the targets found, without running the
query again) and their outbox rows are two more statements in the caller's transaction.
"""

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

from gridgis.alerts import channels
from gridgis.settings import DEFAULT_ACK_WINDOWS, Colour, Settings, get_settings

SQL_DIR = Path(__file__).with_name("sql")
LEVELS: tuple[Colour, ...] = ("blue", "yellow", "orange", "red")  # level_rank 1..4
# The acknowledgement windows by level rank (1 blue .. 4 red), in minutes, as SQL reads them.
SCHEDULE_ACKS_SQL = """
UPDATE alert a SET ack_due_at = now() + make_interval(
           secs => 60 * (CAST(:windows AS float8[]))[w.level_rank])
FROM warning w
WHERE w.id = :warning_id AND a.id = ANY(:alert_ids) AND a.state = 'active'
  AND a.acknowledged_at IS NULL AND a.ack_due_at IS NULL
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
def sql_file(name: str) -> str:
    """Return the text of ``sql/<name>.sql``."""
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


def target_sql() -> str:
    return sql_file("target_grids")


def ack_windows(settings: Settings) -> list[float]:
    """Return the acknowledgement windows in minutes by level rank, blue to red."""
    return [settings.ack_window_minutes.get(level, DEFAULT_ACK_WINDOWS[level])
            for level in LEVELS]


def find_targets(session: Session, warning_id: int, min_share: float = 0.0) -> list[Target]:
    """Return the grids the warning's stored areas reach, soonest gale first."""
    rows = session.execute(text(target_sql() + "\nORDER BY e.gale_eta NULLS LAST, g.code"),
                           {"warning_id": warning_id, "min_share": min_share}).mappings()
    return [Target(**row) for row in rows]


# A new alert's acknowledgement clock starts as it is written: setting it by a later UPDATE
# re-checked the foreign keys of every row written in the same transaction (42 ms at 2,000
# grids, 367 ms at 20,000).
INSERT_ALERTS_SQL = """
INSERT INTO alert (warning_id, grid_id, tier, gale_eta, coverage, buildings, risky_buildings,
                   residents, vulnerable, grid_version, ack_due_at)
SELECT :warning_id, t.grid_id, t.tier, t.gale_eta, t.share, t.buildings, t.risky_buildings,
       t.residents, t.vulnerable, g.version,
       now() + make_interval(secs => 60 * (CAST(:windows AS float8[]))[w.level_rank])
FROM warning w,
     unnest(CAST(:grid_ids AS int[]), CAST(:tiers AS text[]), CAST(:etas AS timestamptz[]),
            CAST(:shares AS float8[]), CAST(:buildings AS int[]), CAST(:risky AS int[]),
            CAST(:residents AS int[]), CAST(:vulnerable AS int[]))
     AS t(grid_id, tier, gale_eta, share, buildings, risky_buildings, residents, vulnerable)
JOIN grid g ON g.id = t.grid_id
WHERE w.id = :warning_id
RETURNING alert.id
"""


def insert_alerts(session: Session, warning_id: int, targets: list[Target]) -> list[int]:
    """Write an alert per target, in one statement, from the targets already found (the
    targeting query is not run again), its acknowledgement clock started; return the alert
    ids."""
    if not targets:
        return []
    return list(session.scalars(text(INSERT_ALERTS_SQL), {
        "warning_id": warning_id, "windows": ack_windows(get_settings()),
        "grid_ids": [t.grid_id for t in targets],
        "tiers": [t.tier for t in targets], "etas": [t.gale_eta for t in targets],
        "shares": [t.share for t in targets], "buildings": [t.buildings for t in targets],
        "risky": [t.risky_buildings for t in targets],
        "residents": [t.residents for t in targets],
        "vulnerable": [t.vulnerable for t in targets]}))


def create_alerts(session: Session, warning_id: int, targets: list[Target]) -> list[int]:
    """Write an alert per reached grid and its outbox rows; return the alert ids."""
    alert_ids = insert_alerts(session, warning_id, targets)
    queue_messages(session, warning_id, alert_ids, "alert")
    return alert_ids


def queue_messages(session: Session, warning_id: int, alert_ids: list[int], kind: str) -> None:
    """Queue a message of ``kind`` about each alert to its grid's team (people and team
    robots); for a changed alert not yet acknowledged, start its acknowledgement clock (a new
    one's started as it was written)."""
    if not alert_ids:
        return
    settings = get_settings()
    params = {"warning_id": warning_id, "alert_ids": alert_ids}
    session.execute(text(sql_file("queue_messages")),
                    {**params, "kind": kind, "routes": channels.team_routes(settings)})
    if kind == "update":
        session.execute(text(SCHEDULE_ACKS_SQL), {**params, "windows": ack_windows(settings)})
