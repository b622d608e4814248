"""Working a checklist: reading and changing its items, guarded by grid and version.

A grid head or worker changes the items of their own grids' open checklists (an admin any);
the command centre reads every checklist. A change carries the version read (If-Match): a
stale one is refused with the item as it is now, so two workers never overwrite each other.
Transfers follow to_transfer -> left_home -> checked_in (-> checked_out), never backwards;
a check-in adds its head-count to the shelter's occupancy and is refused when the shelter
has no room for them (the worker picks another shelter first), a check-out takes it off.
Every change is also a ``checklist_event`` row.
"""

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from gridgis import auth
from gridgis.alerts import feed, targeting
from gridgis.alerts.checklist_models import STAGES, Checklist, ChecklistEvent, ChecklistItem
from gridgis.errors import Conflict, Forbidden, InvalidInput, NotFound, StaleVersion
from gridgis.layers.models import Shelter
from gridgis.models import AppUser

READ_ROLES = ("command", "admin", *auth.GRID_ROLES)
WRITE_ROLES = ("admin", *auth.GRID_ROLES)


class ItemOut(BaseModel):
    """One checklist item as the grid team works it (no names: residents are read, audited,
    at /api/residents)."""

    id: int
    checklist_id: int
    grid_id: int
    grid: str
    kind: str
    priority: int
    state: str
    stage: str | None
    people: int
    household_size: int
    head_count: int | None
    needs: list[str]
    resident: str | None
    household: str | None
    building: str | None
    shelter: str | None
    station: str | None
    distance_m: float | None
    reason: str | None
    note: str | None
    updated_by: str | None  # who changed it last (a username)
    updated_at: datetime
    version: int
    lon: float | None
    lat: float | None


class ChecklistProgress(BaseModel):
    """A grid's checklist and how far it is: ``at_risk`` when the work left is a larger share
    than the time left before its due time (gale ETA less the margin), or it is overdue."""

    id: int
    grid: str
    warning: str
    state: str
    due_at: datetime | None
    unplaced: int  # people to move with no shelter found
    ready: bool  # its items are made (they follow the alert within seconds)
    items: int
    finished: int
    unable: int
    to_transfer: int
    on_the_way: int  # left home, not checked in
    checked_in: int
    at_risk: bool


class ItemPatch(BaseModel):
    """What a worker changes; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    state: str | None = Field(default=None, pattern="^(pending|in_progress|done|unable|"
                                                    "not_needed)$")
    stage: str | None = Field(default=None, pattern=f"^({'|'.join(STAGES)})$")
    head_count: int | None = Field(default=None, ge=0, le=10_000)
    shelter: str | None = Field(default=None, max_length=64)
    reason: str | None = Field(default=None, min_length=1, max_length=500)
    note: str | None = Field(default=None, max_length=2000)


def read_item(session: Session, user: AppUser, item_id: int) -> ItemOut:
    """Return one item the user may see; NotFound otherwise."""
    _item_and_checklist(session, user, item_id, READ_ROLES)
    return _rows(session, item_id=item_id)[0]


def list_items(session: Session, user: AppUser, checklist_id: int) -> list[ItemOut]:
    """Return a checklist's items, most urgent first, in one query."""
    auth.require_role(user, *READ_ROLES)
    checklist = session.get(Checklist, checklist_id)
    if checklist is None:
        raise NotFound(f"no checklist {checklist_id}")
    if user.role in auth.GRID_ROLES and checklist.grid_id not in auth.grid_ids_of(session, user):
        raise Forbidden(f"checklist {checklist_id} is another grid's")
    return _rows(session, checklist_id=checklist_id)


def progress(session: Session, user: AppUser, warning: str | None, grid: str | None,
             limit: int, state: str | None = None) -> list[ChecklistProgress]:
    """Return checklists with progress, soonest due first (a grid team: its own grids)."""
    auth.require_role(user, *READ_ROLES)
    grids = (sorted(auth.grid_ids_of(session, user)) if user.role in auth.GRID_ROLES
             else None)
    rows = session.execute(text(targeting.sql_file("checklist_progress")), {
        "warning": warning, "grid": grid, "grids": grids, "state": state,
        "limit": limit}).mappings()
    return [ChecklistProgress(**row) for row in rows]


def _rows(session: Session, item_id: int | None = None,
          checklist_id: int | None = None) -> list[ItemOut]:
    rows = session.execute(text(targeting.sql_file("checklist_item_rows")),
                           {"item_id": item_id, "checklist_id": checklist_id}).mappings()
    return [ItemOut(**row) for row in rows]


def patch_item(session: Session, user: AppUser, item_id: int, version: int,
               change: ItemPatch) -> ItemOut:
    """Apply ``change`` to one item at ``version``; return it as it now is."""
    item, checklist = _item_and_checklist(session, user, item_id, WRITE_ROLES, lock=True)
    if item.version != version:
        raise StaleVersion(f"item {item_id} is at version {item.version}, not {version}",
                           current=_rows(session, item_id=item_id)[0].model_dump(mode="json"))
    if checklist.state != "open":
        raise Conflict(f"the checklist of item {item_id} is {checklist.state}: "
                       "its items are kept as they were")
    if change.shelter is not None:
        _move_to_shelter(session, item, change.shelter)
    if change.head_count is not None:
        _check_head_count(item, change.head_count)
    if change.stage is not None:
        _advance(session, item, change.stage, change.head_count)
    elif change.head_count is not None:
        item.head_count = change.head_count
    if change.state is not None:
        item.state = change.state
    if change.reason is not None:
        item.reason = change.reason
    if item.state == "unable" and not item.reason:
        raise InvalidInput("an item marked unable needs a reason")
    if change.note is not None:
        item.note = change.note
    item.version += 1
    item.updated_by, item.updated_at = user.id, datetime.now(UTC)
    session.add(ChecklistEvent(item_id=item.id, checklist_id=checklist.id, app_user_id=user.id,
                               state=item.state, stage=item.stage, head_count=item.head_count,
                               shelter_id=item.shelter_id, note=change.note))
    session.flush()
    changed = _rows(session, item_id=item.id)[0]
    feed.publish(session, None, {"kind": "progress", "grid": changed.grid,
                                 "checklist": checklist.id, "item": item.id,
                                 "version": item.version, "stage": item.stage})
    return changed


def _item_and_checklist(session: Session, user: AppUser, item_id: int, roles: tuple[str, ...],
                        lock: bool = False) -> tuple[ChecklistItem, Checklist]:
    auth.require_role(user, *roles)
    item = session.get(ChecklistItem, item_id, with_for_update=lock, populate_existing=lock)
    checklist = session.get(Checklist, item.checklist_id) if item else None
    if item is None or checklist is None:
        raise NotFound(f"no checklist item {item_id}")
    if user.role in auth.GRID_ROLES and checklist.grid_id not in auth.grid_ids_of(session, user):
        raise Forbidden(f"item {item_id} belongs to another grid's checklist")
    return item, checklist


def _check_head_count(item: ChecklistItem, head_count: int) -> None:
    if item.kind != "transfer":
        raise InvalidInput(f"a head-count is for transfers, not {item.kind} items")
    if item.stage in ("checked_in", "checked_out") and head_count != item.head_count:
        raise InvalidInput(f"the household is {item.stage.replace('_', ' ')} with "
                           f"{item.head_count} people: the shelter counted them so")
    if head_count > item.household_size:
        raise InvalidInput(f"head-count {head_count} is more than the household's "
                           f"{item.household_size} people")


def _move_to_shelter(session: Session, item: ChecklistItem, code: str) -> None:
    if item.kind != "transfer" or item.stage in ("checked_in", "checked_out"):
        raise InvalidInput("only a transfer not yet checked in can change its shelter")
    shelter = session.scalar(select(Shelter).where(Shelter.code == code,
                                                   Shelter.retired_at.is_(None)))
    if shelter is None:
        raise InvalidInput(f"unknown shelter {code}")
    item.shelter_id, item.distance_m = shelter.id, None


def _advance(session: Session, item: ChecklistItem, stage: str, head_count: int | None) -> None:
    """Move a transfer along its loop; keep the shelter's occupancy with it."""
    if item.kind != "transfer":
        raise InvalidInput(f"a stage is for transfers, not {item.kind} items")
    now, to = STAGES.index(item.stage or "to_transfer"), STAGES.index(stage)
    if to < now:
        raise InvalidInput(f"a transfer goes forward: {item.stage} cannot become {stage}")
    if to == now:
        return
    count = head_count if head_count is not None else (
        item.head_count if item.head_count is not None else item.people)
    if stage == "checked_in":
        if item.shelter_id is None:
            raise InvalidInput("check in at a shelter: give one (shelter) first")
        shelter = session.get(Shelter, item.shelter_id, with_for_update=True,
                              populate_existing=True)
        assert shelter is not None
        room = shelter.capacity - shelter.occupancy
        if count > room:
            raise Conflict(f"shelter {shelter.code} has room for {room}, not {count}: "
                           "choose another shelter for this household")
        shelter.occupancy += count
    if stage == "checked_out" and item.stage == "checked_in" and item.shelter_id is not None:
        shelter = session.get(Shelter, item.shelter_id, with_for_update=True,
                              populate_existing=True)
        assert shelter is not None
        shelter.occupancy = max(0, shelter.occupancy - (item.head_count or 0))
    if stage == "checked_out" and item.stage != "checked_in":
        raise InvalidInput("only a household checked in can check out")
    item.stage, item.head_count = stage, count
    if stage == "left_home" and item.state == "pending":
        item.state = "in_progress"
    if stage == "checked_in":
        item.state = "done"
