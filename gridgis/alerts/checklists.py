"""Evacuation checklists: made with their alerts, from the data and the rules of each tier.

A checklist is opened in its alert's transaction (``open_checklists``: one row per grid,
cheap), so it is as durable as the alert. Its items take seconds for thousands of grids, so
they are made just after that transaction commits (``make_items``: the caller commits the
alerts first, then asks for the items) while the alerts go out. A checklist still waiting
for its items (``made_at`` null: the process died in between) is made by the dispatcher's
sweep. Two makers never make the same checklist: each locks the ones it makes and skips
those another holds.

The households to move come first (``sql/transfer_households.sql``) and are given their
shelters before their items are written, so each transfer item goes in once, with its
shelter: allocation walks the households soonest gale first and gives each the nearest
shelter (metres on the sphere) that has room for them and meets their needs (wheelchair
access, medical care); full shelters pass them to the next nearest; people left with
nowhere to go are counted on their checklist (``unplaced``) for the command centre. Room
is capacity less occupancy less the people already on their way there under open
checklists; the shelters are locked while allocating, so two warnings at once never
overfill one. Households of one building with the same needs share their nearest
shelters, found in memory for all at once (``nearest``: a k-d tree of the shelters). The
items that do not depend on who moves where (``sql/checklist_items.sql``: inspections,
shelters near the grid, stations) are sent to the server before the allocation, which then
runs in Python while the server writes them; the people to call come last
(``sql/contact_items.sql``: one whose household moves is reached by its transfer).
"""

import json
import tomllib
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from gridgis import db
from gridgis.alerts import nearest, targeting
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
# Where a household is sent from: its building, and whether it needs wheelchair access and
# medical care.
Place = tuple[int, bool, bool]
NONE_NEAR: tuple[list[int], list[float]] = ([], [])
NOT_GIVEN: tuple[None, None] = (None, None)



def _statements(name: str) -> list[str]:
    """Return the statements of ``sql/<name>.sql``, comments left out (their words could read
    as bind parameters or end a statement)."""
    code = "\n".join(line for line in targeting.sql_file(name).splitlines()
                     if not line.lstrip().startswith("--"))
    return [statement for statement in code.split(";") if statement.strip()]


# The households to move, each with its item if it has one, in the order they are served.
HOUSEHOLDS_SQL = text(_statements("transfer_households")[0])
# The transfer items, each with the shelter it was given (if any), in the order given (their
# ids follow the households' turns).
TRANSFERS_SQL = text("""
INSERT INTO checklist_item (checklist_id, kind, subject, priority, household_code,
                            building_id, people, household_size, needs, stage, shelter_id,
                            distance_m)
SELECT h.checklist_id, 'transfer', 'household:' || h.household_code, 1, h.household_code,
       h.building_id, h.people, h.household_size,
       array_remove(ARRAY[CASE WHEN h.wheelchair THEN 'wheelchair' END,
                          CASE WHEN h.medical THEN 'medical' END], NULL),
       'to_transfer', h.shelter_id, h.metres
FROM unnest(CAST(:checklists AS int[]), CAST(:households AS text[]),
            CAST(:buildings AS int[]), CAST(:people AS int[]), CAST(:sizes AS int[]),
            CAST(:wheelchair AS bool[]), CAST(:medical AS bool[]), CAST(:shelters AS int[]),
            CAST(:metres AS float8[]))
     WITH ORDINALITY AS h(checklist_id, household_code, building_id, people, household_size,
                          wheelchair, medical, shelter_id, metres, ord)
ORDER BY h.ord
ON CONFLICT ON CONSTRAINT uq_checklist_item_subject DO UPDATE
SET people = greatest(checklist_item.people, EXCLUDED.people), needs = EXCLUDED.needs,
    household_size = EXCLUDED.household_size, version = checklist_item.version + 1,
    updated_at = now()
WHERE checklist_item.stage = 'to_transfer'  -- a new version only when something changed
  AND (checklist_item.people < EXCLUDED.people OR checklist_item.needs <> EXCLUDED.needs
       OR checklist_item.household_size <> EXCLUDED.household_size)
""")
# Room left in every shelter in use: capacity - occupancy - people on their way under open
# checklists (summed in one pass). The shelters are locked, all of them: the allocation then
# runs in Python alone, while the other items are written.
ROOM_SQL = text("""
WITH on_way AS (
    SELECT i.shelter_id, sum(i.people) AS people
    FROM checklist_item i JOIN checklist c ON c.id = i.checklist_id
    WHERE i.shelter_id IS NOT NULL AND i.kind = 'transfer' AND c.state = 'open'
      AND i.stage IN ('to_transfer', 'left_home') AND i.state NOT IN ('unable', 'not_needed')
    GROUP BY i.shelter_id)
SELECT s.id, s.capacity - s.occupancy - coalesce(w.people, 0) AS room
FROM shelter s LEFT JOIN on_way w ON w.shelter_id = s.id
WHERE s.retired_at IS NULL ORDER BY s.id FOR UPDATE OF s
""")
# The transfer items the checklists already have, locked before the shelters: a check-in
# locks its item, then its shelter; a maker takes them in the same order, or the two could
# each wait for the other.
LOCK_TRANSFERS_SQL = text("""
SELECT i.id FROM checklist_item i JOIN checklist c ON c.id = i.checklist_id
WHERE c.alert_id = ANY(:alert_ids) AND i.kind = 'transfer'
ORDER BY i.id FOR UPDATE OF i
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
    return _statements("checklist_items")


@cache
def contact_statement() -> str:
    """Return the statement of ``sql/contact_items.sql``, comments left out."""
    (statement,) = _statements("contact_items")
    return statement



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
    rules = json.dumps(load_rules())
    params = {"alert_ids": made, "rules": rules}
    placed = make_transfers(session, made, rules, meanwhile=checklist_statements())
    session.execute(text(contact_statement()), params)  # reads the transfer items
    if placed:
        session.execute(OPEN_ASSIGNED_SQL, {"alert_ids": made})
    session.execute(UNPLACED_SQL, {"alert_ids": made})
    session.execute(MADE_SQL, {"alert_ids": made})
    return len(made)


def make_transfers(session: Session, alert_ids: list[int], rules: str,
                   meanwhile: Sequence[str] = ()) -> int:
    """Write the transfer items of the checklists of ``alert_ids`` (``rules``: JSON), each
    household to move with the nearest shelter that has room and meets its needs; items
    already there keep their work, and those still without a shelter get one. Return how
    many households got a shelter. The shelters are allocated before the items are written,
    so each item goes in once, with its shelter. The statements ``meanwhile`` (of
    ``alert_ids`` and ``rules``) run while the shelters are allocated."""
    households = read_households(session, alert_ids, rules)
    waiting = households_waiting(households)
    session.execute(ALLOCATION_LOCK_SQL)
    session.execute(LOCK_TRANSFERS_SQL, {"alert_ids": alert_ids})
    room: dict[int, int] = dict(session.execute(ROOM_SQL).all()) if waiting else {}
    shelters = nearest.Shelters.load(session)
    places = nearest.Places.of_buildings(session, sorted({place[0] for _, _, place in waiting}))
    with db.running(session, meanwhile, {"alert_ids": alert_ids, "rules": rules}):
        given = allocate_shelters(waiting, shelters, places, room)
        new, assigned = transfer_params(households, given)
    if new["checklists"] != "{}":
        session.execute(TRANSFERS_SQL, new)
    if assigned["items"] != "{}":
        session.execute(ASSIGN_SQL, assigned)
    return len(given)


def read_households(session: Session, alert_ids: list[int], rules: str) -> dict[str, list[Any]]:
    """Return the rows of ``HOUSEHOLDS_SQL`` as columns (name -> values, in the rows' order):
    tens of thousands of rows are read and turned into arrays column by column."""
    result = session.execute(HOUSEHOLDS_SQL, {"alert_ids": alert_ids, "rules": rules})
    names = list(result.keys())
    rows = result.all()
    return {name: list(values) for name, values in
            zip(names, zip(*rows, strict=True) if rows else [()] * len(names), strict=True)}


def households_waiting(households: dict[str, list[Any]]) -> list[tuple[int, int, Place]]:
    """Return the households (``read_households``, in the order they are served) to give a
    shelter, as (row number, people, place)."""
    waiting = []
    for n, (people, item_people, item_shelter, item_stage, building, wheelchair, medical) in (
            enumerate(zip(households["people"], households["item_people"],
                          households["item_shelter_id"], households["item_stage"],
                          households["building_id"], households["wheelchair"],
                          households["medical"], strict=True))):
        people = max(people, item_people or 0)  # an item keeps its larger count
        if item_shelter is None and item_stage in (None, "to_transfer") and people > 0:
            waiting.append((n, people, (building, wheelchair, medical)))
    return waiting


def transfer_params(households: dict[str, list[Any]], given: dict[int, tuple[int, float]]
                    ) -> tuple[dict[str, str], dict[str, str]]:
    """Return the parameters of ``TRANSFERS_SQL`` (the households of the rules, new items
    with the shelter they were given) and of ``ASSIGN_SQL`` (items there were, given a
    shelter now), as array literals."""
    item_ids, turns = households["item_id"], households["turn"]
    new = sorted((n for n, size in enumerate(households["household_size"]) if size is not None),
                 key=turns.__getitem__)  # ids follow the turns
    shelters = [given.get(n, NOT_GIVEN) if item_ids[n] is None else NOT_GIVEN for n in new]
    assigned = [(item_ids[n], *given[n]) for n in sorted(given) if item_ids[n] is not None]

    def column(name: str) -> str:
        values = households[name]
        return db.array_literal(values[n] for n in new)

    return ({"checklists": column("checklist_id"), "households": column("household_code"),
             "buildings": column("building_id"), "people": column("people"),
             "sizes": column("household_size"), "wheelchair": column("wheelchair"),
             "medical": column("medical"),
             "shelters": db.array_literal(shelter for shelter, _ in shelters),
             "metres": db.array_literal(metres for _, metres in shelters)},
            {"items": db.array_literal(item for item, _, _ in assigned),
             "shelters": db.array_literal(shelter for _, shelter, _ in assigned),
             "metres": db.array_literal(metres for _, _, metres in assigned)})


def allocate_shelters(waiting: list[tuple[int, int, Place]], shelters: nearest.Shelters,
                      places: nearest.Places, room: dict[int, int]
                      ) -> dict[int, tuple[int, float]]:
    """Give each of ``waiting`` (key, people, place), in that order, the nearest shelter with
    room that meets its needs; return the shelter and its distance (metres on the sphere)
    of each key that got one. The few nearest shelters are tried for everyone first;
    households whose few are full try many more in a second pass. ``room``: the room left
    in each shelter (taken from as households are placed)."""
    given: dict[int, tuple[int, float]] = {}
    for candidates in CANDIDATES:
        left = [household for household in waiting if household[0] not in given]
        if not left:
            break
        options = _nearest(shelters, places, list(dict.fromkeys(place for _, _, place in left)),
                           candidates)
        for key, people, place in left:
            ids, distances = options.get(place, NONE_NEAR)
            for shelter, metres in zip(ids, distances, strict=True):
                if room.get(shelter, 0) >= people:
                    room[shelter] -= people
                    given[key] = (shelter, round(metres, 1))
                    break
    return given


def _nearest(shelters: nearest.Shelters, known: nearest.Places, places: list[Place],
             candidates: int) -> dict[Place, tuple[list[int], list[float]]]:
    """Return the ``candidates`` nearest shelters meeting the needs of each place, nearest
    first, and their distances (metres on the sphere); one search per kind of needs."""
    by_needs: dict[tuple[bool, bool], list[Place]] = {}
    for place in places:
        by_needs.setdefault((place[1], place[2]), []).append(place)
    found: dict[Place, tuple[list[int], list[float]]] = {}
    for (wheelchair, medical), group in by_needs.items():
        located, vectors = known.points_of([building for building, _, _ in group])
        group = [place for place, here in zip(group, located.tolist(), strict=True) if here]
        found.update(zip(group, shelters.nearest(vectors, wheelchair, medical, candidates),
                         strict=True))
    return found


def stand_down(session: Session, alert_ids: list[int]) -> None:
    """Close the open checklists of stood-down alerts, keeping every item as it is."""
    if alert_ids:
        session.execute(STAND_DOWN_SQL, {"alert_ids": alert_ids})
