"""Evacuation checklists: made with their alerts, from the data and the rules of each tier.

A checklist is opened in its alert's transaction (``open_checklists``: one row per grid,
cheap), so it is as durable as the alert. Its items take seconds for thousands of grids, so
they are made just after that transaction commits (``make_items``: the caller commits the
alerts first, then asks for the items) while the alerts go out. A checklist still waiting
for its items (``made_at`` null: the process died in between) is made by the dispatcher's
sweep. Two makers never make the same checklist: each locks the ones it makes and skips
those another holds.

The items come from ``sql/checklist_items.sql``, then shelters for the households to move:
allocation walks the households soonest gale first and gives each the nearest shelter (metres on the
sphere) that has room for them and meets their needs (wheelchair access, medical care);
full shelters pass them to the next nearest; people left with nowhere to go are counted on
their checklist (``unplaced``) for the command centre. Room is capacity less occupancy less
the people already on their way there under open checklists; the shelters are locked while
allocating, so two warnings at once never overfill one.
"""

import json
import tomllib
from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from gridgis.alerts import targeting
from gridgis.alerts.models import TIERS
from gridgis.errors import InvalidInput
from gridgis.settings import get_settings

RULES_FILE = Path(__file__).with_name("checklist_rules.toml")
RULE_KEYS: dict[str, type | tuple[type, ...]] = {
    "contact": list, "transfer_people": list, "transfer_buildings": list,
    "inspect_buildings": list, "shelters_within_m": (int, float), "shelters_nearest": int,
    "staff_stations": list}
# Nearest shelters looked at per household: a few first, many for those left without one.
CANDIDATES = (6, 60)

CANDIDATES_SQL = text("""
SELECT i.id AS item_id, i.checklist_id, i.people, s.id AS shelter_id,
       ST_Distance(CAST(s.location AS geography), CAST(b.location AS geography), false)
       AS metres
FROM checklist_item i
JOIN checklist c ON c.id = i.checklist_id
JOIN building b ON b.id = i.building_id
CROSS JOIN LATERAL (
    SELECT s.id, s.location FROM shelter s
    WHERE s.retired_at IS NULL
      AND (NOT 'wheelchair' = ANY(i.needs) OR s.wheelchair_access)
      AND (NOT 'medical' = ANY(i.needs) OR s.medical)
    ORDER BY s.location <-> b.location
    LIMIT :candidates
) s
WHERE c.alert_id = ANY(:alert_ids) AND i.kind = 'transfer' AND i.shelter_id IS NULL
  AND i.stage = 'to_transfer' AND i.people > 0
ORDER BY c.due_at NULLS LAST, cardinality(i.needs) DESC, i.id, metres
""")
# Room left: capacity - occupancy - people on their way under open checklists (summed in one
# pass). The shelters are locked.
ROOM_SQL = text("""
WITH on_way AS (
    SELECT i.shelter_id, sum(i.people) AS people
    FROM checklist_item i JOIN checklist c ON c.id = i.checklist_id
    WHERE i.shelter_id = ANY(:ids) AND i.kind = 'transfer' AND c.state = 'open'
      AND i.stage IN ('to_transfer', 'left_home') AND i.state NOT IN ('unable', 'not_needed')
    GROUP BY i.shelter_id)
SELECT s.id, s.capacity - s.occupancy - coalesce(w.people, 0) AS room
FROM shelter s LEFT JOIN on_way w ON w.shelter_id = s.id
WHERE s.id = ANY(:ids) ORDER BY s.id FOR UPDATE OF s
""")
ASSIGN_SQL = text("""
UPDATE checklist_item i SET shelter_id = a.shelter_id, distance_m = a.metres
FROM unnest(CAST(:items AS int[]), CAST(:shelters AS int[]), CAST(:metres AS float8[]))
     AS a(item_id, shelter_id, metres)
WHERE i.id = a.item_id
""")
UNPLACED_SQL = text("""
UPDATE checklist c SET unplaced = coalesce((
    SELECT sum(i.people) FROM checklist_item i
    WHERE i.checklist_id = c.id AND i.kind = 'transfer' AND i.shelter_id IS NULL
      AND i.stage = 'to_transfer'), 0)
WHERE c.alert_id = ANY(:alert_ids)
""")
OPEN_ASSIGNED_SQL = text("""
INSERT INTO checklist_item (checklist_id, kind, subject, priority, shelter_id)
SELECT DISTINCT i.checklist_id, 'open_shelter', 'shelter:' || i.shelter_id, 1, i.shelter_id
FROM checklist_item i JOIN checklist c ON c.id = i.checklist_id
WHERE c.alert_id = ANY(:alert_ids) AND i.kind = 'transfer' AND i.shelter_id IS NOT NULL
ON CONFLICT ON CONSTRAINT uq_checklist_item_subject DO NOTHING
""")
OPEN_SQL = text("""
INSERT INTO checklist (alert_id, grid_id, due_at)
SELECT a.id, a.grid_id, a.gale_eta - make_interval(secs => 60 * :margin_minutes)
FROM alert a
WHERE a.id = ANY(:alert_ids) AND a.state = 'active'
ON CONFLICT (alert_id) DO UPDATE SET due_at = EXCLUDED.due_at, made_at = NULL
""")
# The checklists to make now (of a warning, or all), locked; those another maker holds are
# skipped.
TO_MAKE_SQL = text("""
SELECT c.alert_id FROM checklist c
WHERE c.made_at IS NULL AND c.state = 'open'
  AND (CAST(:warning AS text) IS NULL OR c.alert_id IN (
      SELECT a.id FROM alert a JOIN warning w ON w.id = a.warning_id
      WHERE w.identifier = :warning))
  AND c.created_at <= now() - make_interval(secs => :older_than_s)
ORDER BY c.due_at NULLS LAST, c.id
LIMIT :limit
FOR UPDATE OF c SKIP LOCKED
""")
# Shelters are allocated by one maker at a time (a transaction-scoped advisory lock): two
# makers locking overlapping sets of shelters in two passes could otherwise deadlock.
ALLOCATION_LOCK_SQL = text("SELECT pg_advisory_xact_lock(7324001)")
MADE_SQL = text("UPDATE checklist SET made_at = now() WHERE alert_id = ANY(:alert_ids)")
STAND_DOWN_SQL = text("""
UPDATE checklist SET state = 'stood_down', closed_at = now()
WHERE alert_id = ANY(:alert_ids) AND state = 'open'
""")


@cache
def load_rules(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """Return the checklist rules by tier, checked: every tier, every key, known values."""
    from gridgis.layers.models import RISK_FLAGS, STATION_LEVELS, VULNERABILITIES

    source = path or get_settings().checklist_rules or RULES_FILE
    try:
        tiers = tomllib.loads(Path(source).read_text(encoding="utf-8"))["tier"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
        raise InvalidInput(f"checklist rules {source}: {exc}") from None
    known = {"contact": VULNERABILITIES, "transfer_people": VULNERABILITIES,
             "transfer_buildings": RISK_FLAGS, "inspect_buildings": RISK_FLAGS,
             "staff_stations": STATION_LEVELS}
    for tier in TIERS:
        rule = tiers.get(tier)
        if not isinstance(rule, dict) or set(rule) != set(RULE_KEYS):
            raise InvalidInput(f"checklist rules {source}: tier {tier} needs exactly "
                               f"{', '.join(RULE_KEYS)}")
        for key, kind in RULE_KEYS.items():
            if not isinstance(rule[key], kind):
                raise InvalidInput(f"checklist rules {source}: {tier}.{key} has the wrong type")
            if key in known and (unknown := set(rule[key]) - set(known[key])):
                raise InvalidInput(f"checklist rules {source}: {tier}.{key}: unknown "
                                   f"{', '.join(sorted(unknown))}")
    return {tier: tiers[tier] for tier in TIERS}


@cache
def checklist_statements() -> list[str]:
    """Return the statements of ``sql/checklist_items.sql``, comments left out."""
    code = "\n".join(line for line in targeting.sql_file("checklist_items").splitlines()
                     if not line.lstrip().startswith("--"))
    return [statement for statement in code.split(";") if statement.strip()]


def open_checklists(session: Session, alert_ids: list[int]) -> None:
    """Open (or, for a changed alert, reopen for amending) the checklists of ``alert_ids``,
    in the alerts' transaction; their items are made by ``make_items`` after it commits."""
    if alert_ids:
        session.execute(OPEN_SQL, {"alert_ids": alert_ids,
                                   "margin_minutes": get_settings().checklist_margin_minutes})


def make_items(session: Session, warning: str | None = None, older_than_s: float = 0,
               limit: int | None = None) -> int:
    """Make the items of the open checklists still waiting for them (of ``warning``'s
    alerts, or all; opened at least ``older_than_s`` ago; at most ``limit``), give their
    households shelters, and mark them made; return how many checklists. The caller
    commits."""
    made = list(session.scalars(TO_MAKE_SQL, {"warning": warning, "limit": limit,
                                              "older_than_s": older_than_s}))
    if not made:
        return 0
    params = {"alert_ids": made, "rules": json.dumps(load_rules())}
    for statement in checklist_statements():
        session.execute(text(statement), params)
    allocate_shelters(session, made)
    session.execute(MADE_SQL, {"alert_ids": made})
    return len(made)


def allocate_shelters(session: Session, alert_ids: list[int]) -> int:
    """Give each household to move without a shelter the nearest one with room that meets
    its needs; return how many households got one. The few nearest shelters are tried for
    everyone first; households whose few are full try many more in a second pass."""
    session.execute(ALLOCATION_LOCK_SQL)
    placed = sum(_allocate(session, alert_ids, candidates) for candidates in CANDIDATES)
    if placed:
        session.execute(OPEN_ASSIGNED_SQL, {"alert_ids": alert_ids})
    session.execute(UNPLACED_SQL, {"alert_ids": alert_ids})
    return placed


def _allocate(session: Session, alert_ids: list[int], candidates: int) -> int:
    rows = session.execute(CANDIDATES_SQL, {"alert_ids": alert_ids,
                                            "candidates": candidates}).all()
    if not rows:
        return 0
    shelter_ids = sorted({row.shelter_id for row in rows})
    room = {id_: left for id_, left in session.execute(ROOM_SQL, {"ids": shelter_ids})}
    options: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        options[row.item_id].append(row)
    items, shelters, metres = [], [], []
    for item_id, nearest in options.items():  # in urgency order (dicts keep it)
        for option in nearest:
            if room[option.shelter_id] >= option.people:
                room[option.shelter_id] -= option.people
                items.append(item_id)
                shelters.append(option.shelter_id)
                metres.append(round(float(option.metres), 1))
                break
    if items:
        session.execute(ASSIGN_SQL, {"items": items, "shelters": shelters, "metres": metres})
    return len(items)


def stand_down(session: Session, alert_ids: list[int]) -> None:
    """Close the open checklists of stood-down alerts, keeping every item as it is."""
    if alert_ids:
        session.execute(STAND_DOWN_SQL, {"alert_ids": alert_ids})
