"""Residents' lifecycle (人来登记、人在更新、人走注销): register, update, move out, move in.

Moving out never deletes: the row stays with ``moved_out_at`` and every change is a row of
``resident_event``. Grid heads and workers act only on residents of their own grids (and
move people in only to buildings of their grids); admins act anywhere. Reading the history
is a read of personal data and is audited.
"""

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gridgis import audit, auth
from gridgis.errors import Conflict, Forbidden, InvalidInput, NotFound, StaleVersion
from gridgis.layers import residents, schemas
from gridgis.layers.models import Building, Resident, ResidentEvent
from gridgis.models import AppUser

WRITER_ROLES = ("admin", "grid_head", "grid_worker")


def _building(session: Session, code: str) -> Building:
    building = session.scalar(select(Building).where(Building.code == code,
                                                     Building.retired_at.is_(None)))
    if building is None:
        raise InvalidInput(f"unknown building {code}")
    return building


def _may_act_in(session: Session, user: AppUser, building: Building) -> None:
    auth.require_role(user, *WRITER_ROLES)
    if user.role != "admin" and building.grid_id not in auth.grid_ids_of(session, user):
        raise Forbidden("grid heads and workers act only in their own grids")


def _locked(session: Session, user: AppUser, code: str, version: int) -> Resident:
    """Return the resident locked for update, if ``user`` may see them; check the version."""
    auth.require_role(user, *WRITER_ROLES)
    resident = session.scalar(select(Resident).where(Resident.code == code).with_for_update())
    home = session.get(Building, resident.building_id) if resident else None
    if resident is None or home is None:
        raise NotFound(f"no resident {code}")
    if user.role != "admin" and home.grid_id not in auth.grid_ids_of(session, user):
        raise NotFound(f"no resident {code}")  # not yours: as if it did not exist
    if resident.version != version:
        current = residents.resident_feature(session, user, code)
        raise StaleVersion(f"{code} is at version {resident.version}, not {version}",
                           json.loads(current))
    return resident


def _event(session: Session, user: AppUser, resident: Resident, kind: str,
           changes: dict[str, Any] | None = None) -> None:
    session.add(ResidentEvent(resident_id=resident.id, kind=kind,
                              building_id=resident.building_id,
                              household_code=resident.household_code, app_user_id=user.id,
                              changes=changes))


def register(session: Session, user: AppUser, body: schemas.ResidentIn) -> str:
    """Register a person living in a building; return their new code."""
    building = _building(session, body.building_code)
    _may_act_in(session, user, building)
    values = body.model_dump(exclude={"building_code"}, exclude_unset=True)
    values["household_code"] = body.household_code or _new_household(session, building)
    resident = Resident(**values, building_id=building.id, code=_new_code(session))
    session.add(resident)
    session.flush()
    _event(session, user, resident, "registered", {"building": building.code})
    return resident.code


def update(session: Session, user: AppUser, code: str, version: int,
           patch: schemas.ResidentPatch) -> int:
    """Change a resident's details; return the new version."""
    resident = _locked(session, user, code, version)
    if resident.moved_out_at is not None:
        raise Conflict(f"{code} has moved out: move them in first")
    changes = patch.model_dump(exclude_unset=True)
    for field, value in changes.items():
        setattr(resident, field, value)
    _bump(resident)
    _event(session, user, resident, "updated", {"fields": sorted(changes)})
    return resident.version


def move_out(session: Session, user: AppUser, code: str, version: int) -> int:
    """Record that a resident has left (人走注销); the row and its history stay."""
    resident = _locked(session, user, code, version)
    if resident.moved_out_at is not None:
        raise Conflict(f"{code} has already moved out")
    resident.moved_out_at = datetime.now(UTC)
    _bump(resident)
    _event(session, user, resident, "moved_out")
    return resident.version


def move_in(session: Session, user: AppUser, code: str, version: int,
            body: schemas.MoveIn) -> int:
    """A resident who moved out lives in a building again (elsewhere, or the same)."""
    resident = _locked(session, user, code, version)
    if resident.moved_out_at is None:
        raise Conflict(f"{code} has not moved out: record the move out first")
    building = _building(session, body.building_code)
    _may_act_in(session, user, building)
    resident.building_id = building.id
    resident.household_code = body.household_code or _new_household(session, building)
    resident.moved_out_at = None
    _bump(resident)
    _event(session, user, resident, "moved_in", {"building": building.code})
    return resident.version


def history(session: Session, user: AppUser, code: str) -> list[dict[str, Any]]:
    """Return a resident's events, oldest first, if ``user`` may see them; audited."""
    residents.resident_feature(session, user, code)  # scope check (and audit) as for a read
    rows = session.execute(
        select(ResidentEvent.at, ResidentEvent.kind, Building.code, ResidentEvent.household_code,
               AppUser.username, ResidentEvent.changes)
        .join(Resident, Resident.id == ResidentEvent.resident_id)
        .join(Building, Building.id == ResidentEvent.building_id)
        .outerjoin(AppUser, AppUser.id == ResidentEvent.app_user_id)
        .where(Resident.code == code).order_by(ResidentEvent.id)
    ).all()
    audit.record(session, user, "read-history", "resident", code)
    return [{"at": at.isoformat(), "kind": kind, "building_code": building,
             "household_code": household, "by": by, "changes": changes}
            for at, kind, building, household, by, changes in rows]


def _bump(resident: Resident) -> None:
    resident.version = resident.version + 1
    resident.updated_at = datetime.now(UTC)


def _new_household(session: Session, building: Building) -> str:
    """Return a household code not yet used in a building: ``<building>-NNN``."""
    codes = session.scalars(select(Resident.household_code)
                            .where(Resident.building_id == building.id).distinct())
    taken = [int(c.rsplit("-", 1)[1]) for c in codes if c.rsplit("-", 1)[-1].isdigit()]
    return f"{building.code}-{max(taken, default=0) + 1:03d}"


def _new_code(session: Session) -> str:
    """Return an unused resident code ``R`` + 9 digits (from the id sequence)."""
    next_id = session.scalar(select(func.nextval("resident_id_seq")))
    return f"R{next_id:09d}"
