"""Residents as GeoJSON, guarded: what a reader sees depends on their role and grids.

* admin: everyone, unmasked.
* grid_head, grid_worker: the residents of their own grids, unmasked; nobody else exists.
* command: everyone, with names, phones and ID numbers masked.
* planner: no personal data at all.

Every read is written to the audit log in the same transaction as the answer.
"""

from typing import Any

from sqlalchemy import ColumnElement, case, false, func
from sqlalchemy.orm import Session, aliased

from gridgis import audit, auth
from gridgis.errors import Forbidden, NotFound
from gridgis.layers import queries
from gridgis.layers.models import Building, Grid, Resident
from gridgis.models import AppUser
from gridgis.params import BBox, Page

UNMASKED_ROLES = ("admin", "grid_head", "grid_worker")
READER_ROLES = (*UNMASKED_ROLES, "command")
HomeGrid = aliased(Grid, name="home_grid")
Home = aliased(Building, name="home")


def mask_name(name: Any) -> ColumnElement[str]:
    """王小明 -> 王**: the surname stays, the rest is starred."""
    return func.concat(func.left(name, 1),
                       func.repeat("*", func.greatest(func.char_length(name) - 1, 1)))


def mask_tail(value: Any, keep_head: int, keep_tail: int) -> ColumnElement[str]:
    """13812345678 -> 138****5678: the first and last characters stay, the rest starred.

    A value too short to hide at least four characters that way keeps only its first.
    """
    length = func.char_length(value)
    return case(
        (length <= keep_head + keep_tail + 4, mask_name(value)),
        else_=func.concat(func.left(value, keep_head),
                          func.repeat("*", length - keep_head - keep_tail),
                          func.right(value, keep_tail)),
    )


def resident_spec(masked: bool) -> queries.LayerSpec:
    """Return the residents layer, masked or not; the geometry is the home's point."""
    name: Any = Resident.name
    phone: Any = Resident.phone
    id_number: Any = Resident.id_number
    if masked:
        name, phone, id_number = (mask_name(name), mask_tail(phone, 3, 4),
                                  mask_tail(id_number, 4, 4))
    return queries.LayerSpec(
        name="residents",
        source=Resident.__table__.join(Home, Home.id == Resident.building_id)
        .join(HomeGrid, HomeGrid.id == Home.grid_id),
        key=Resident.id, code=Resident.code, geometry=Home.location,
        properties={"code": Resident.code, "name": name, "gender": Resident.gender,
                    "birth_year": Resident.birth_year, "phone": phone, "id_number": id_number,
                    "residency": Resident.residency, "vulnerabilities": Resident.vulnerabilities,
                    "household_code": Resident.household_code, "building_code": Home.code,
                    "grid_code": HomeGrid.code, "registered_at": Resident.registered_at,
                    "moved_out_at": Resident.moved_out_at, "version": Resident.version},
        live=HomeGrid.retired_at.is_(None), within=HomeGrid.code,
        filters={"residency": Resident.residency},
    )


def _scope(session: Session, user: AppUser) -> tuple[bool, list[Any]]:
    """Return (masked, conditions) limiting what ``user`` may read of residents."""
    if user.role not in READER_ROLES:
        audit.record(session, user, "read-denied", "resident")
        raise Forbidden(f"the {user.role} role sees no personal data")
    if user.role in ("grid_head", "grid_worker"):
        grids = auth.grid_ids_of(session, user)
        return False, [HomeGrid.id.in_(grids) if grids else false()]
    return user.role == "command", []


def resident_page(session: Session, user: AppUser, *, bbox: BBox | None, page: Page,
                  within: str | None, residency: str | None, vulnerability: str | None,
                  include_moved_out: bool) -> queries.FeaturePage:
    """Return one page of the residents ``user`` may see, and audit the read."""
    masked, conditions = _scope(session, user)
    if not include_moved_out:
        conditions.append(Resident.moved_out_at.is_(None))
    if vulnerability:
        conditions.append(Resident.vulnerabilities.contains([vulnerability]))
    result = queries.feature_page(
        session, resident_spec(masked), bbox=bbox, page=page, within=within,
        equals={"residency": residency} if residency else None, conditions=conditions,
        collect_codes=True,
    )
    audit.record(session, user, "read", "resident", None, {
        "masked": masked, "within": within, "bbox": bbox and list(vars(bbox).values()),
        "cursor": page.cursor, "returned": result.number_returned, "codes": result.codes,
    })
    return result


def resident_feature(session: Session, user: AppUser, code: str) -> str:
    """Return one resident as a GeoJSON Feature; NotFound if absent or out of the reader's scope.

    The attempt is audited either way; the caller commits even when this raises.
    """
    masked, conditions = _scope(session, user)
    result = queries.feature_page(
        session, resident_spec(masked), bbox=None, page=Page(limit=1, cursor=0),
        conditions=[*conditions, Resident.code == code],
    )
    found = result.number_returned == 1
    audit.record(session, user, "read" if found else "read-not-found", "resident", code,
                 {"masked": masked})
    if not found:
        raise NotFound(f"no resident {code}")
    return result.features_json[1:-1]
