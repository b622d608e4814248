"""Reading one row, creating, changing and retiring: versioned, scoped by role, never deleted.

Every editable row carries a ``version``. A change names the version it was based on (HTTP
``If-Match``); the row is locked, compared and written in one transaction, so of two
workers editing at once the second gets the current state back instead of overwriting.
Geometry arrives as GeoJSON in lon/lat (EPSG:4326) and is checked with shapely first.
"""

import json
from datetime import UTC, datetime
from typing import Any

import shapely
from geoalchemy2.shape import from_shape
from pydantic import BaseModel
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gridgis import auth, spatial
from gridgis.errors import Conflict, Forbidden, InvalidInput, NotFound, StaleVersion
from gridgis.layers import queries, schemas
from gridgis.layers.models import AdminUnit, Building, Grid, Resident, Shelter, Station
from gridgis.models import AppUser
from gridgis.params import Page

MODELS: dict[str, Any] = {"admin-units": AdminUnit, "grids": Grid, "buildings": Building,
                          "stations": Station, "shelters": Shelter}
# Who may change each layer. Grid heads and workers only inside their own grids.
WRITERS = {
    "admin-units": ("admin",),
    "grids": ("admin", "planner"),
    "buildings": ("admin", "planner", "grid_head", "grid_worker"),
    "stations": ("admin", "planner"),
    "shelters": ("admin", "planner", "command"),
}
GRID_SCOPED = ("grid_head", "grid_worker")


def read_feature(session: Session, layer: str, code: str) -> tuple[str, int]:
    """Return one live feature as GeoJSON text and its version; NotFound otherwise."""
    spec = queries.LAYERS[layer]
    page = queries.feature_page(session, spec, bbox=None, page=Page(limit=1, cursor=0),
                                conditions=[spec.code == code])
    if page.number_returned == 0:
        raise NotFound(f"no {layer[:-1]} {code}")
    feature = page.features_json[1:-1]
    return feature, int(json.loads(feature)["properties"]["version"])


def to_geometry(value: schemas.GeoJSONGeometry, kind: str) -> shapely.Geometry:
    """Return the shapely geometry of a GeoJSON body, or InvalidInput saying what is wrong.
    Polygons come back with their rings turned the RFC 7946 way (shell counter-clockwise)."""
    try:  # the body's own lists, not a copy of them: a geometry may be large
        geometry = spatial.read_geojson({"type": value.type, "coordinates": value.coordinates})
    except ValueError as exc:
        raise InvalidInput(f"{kind}: {exc}") from None
    reason = (spatial.point_problem(geometry) if kind == "location"
              else spatial.polygon_problem(geometry))
    if reason:
        raise InvalidInput(f"{kind}: {reason}")
    if kind == "location":
        return geometry
    if kind == "footprint" and geometry.geom_type == "Polygon":
        geometry = shapely.MultiPolygon([geometry])
    return shapely.orient_polygons(geometry)


def check_writer(session: Session, user: AppUser, layer: str,
                 grid_ids: set[int] | None = None) -> None:
    """Raise Forbidden unless ``user`` may change ``layer`` (in all of ``grid_ids``)."""
    auth.require_role(user, *WRITERS[layer])
    if user.role in GRID_SCOPED and not (grid_ids or set()) <= auth.grid_ids_of(session, user):
        raise Forbidden("grid heads and workers change only their own grids")


def _locked_row(session: Session, layer: str, code: str, version: int) -> Any:
    """Return the live row locked for update, or raise NotFound / StaleVersion."""
    model = MODELS[layer]
    row = session.scalar(select(model).where(model.code == code, model.retired_at.is_(None))
                         .with_for_update())
    if row is None:
        raise NotFound(f"no {layer[:-1]} {code}")
    if row.version != version:
        current, _ = read_feature(session, layer, code)
        raise StaleVersion(f"{code} is at version {row.version}, not {version}: reload and "
                           f"redo the change", json.loads(current))
    return row


def _apply(session: Session, row: Any, patch: BaseModel) -> None:
    """Copy the set fields of ``patch`` onto ``row``; geometry through shapely checks."""
    # The values as given: model_dump() would first copy every position of a geometry.
    for field in (name for name in type(patch).model_fields if name in patch.model_fields_set):
        value = getattr(patch, field)
        if field in ("footprint", "location"):
            setattr(row, field, None if value is None
                    else from_shape(to_geometry(value, field), srid=spatial.SRID))
        elif field != "building_code":
            setattr(row, field, value)
    row.version = row.version + 1
    row.updated_at = datetime.now(UTC)


def update_feature(session: Session, user: AppUser, layer: str, code: str, version: int,
                   patch: BaseModel) -> int:
    """Change one row if ``version`` is current; return the new version."""
    row = _locked_row(session, layer, code, version)
    check_writer(session, user, layer, _grids_of(layer, row))
    if isinstance(row, Grid):  # the grid's history names who changed it
        session.execute(text("SELECT set_config('gridgis.author', :u, true), "
                             "set_config('gridgis.reason', 'attributes edited', true)"),
                        {"u": str(user.id)})
    if isinstance(row, Building) and ("location" in patch.model_fields_set
                                      or "footprint" in patch.model_fields_set):
        setattr(row, "grid_id", None)  # noqa: B010 (the trigger finds the grid containing it)
    _apply(session, row, patch)
    if isinstance(row, Building) and "location" not in patch.model_fields_set \
            and "footprint" in patch.model_fields_set and row.footprint is not None:
        setattr(row, "location", None)  # noqa: B010 (placed again by its new footprint)
        _place_building(session, row)
    if isinstance(row, Building) and row.location is None:
        raise InvalidInput("a building needs a location (or a footprint to place it by)")
    _flush(session)
    if isinstance(row, Building):
        session.refresh(row)
        check_writer(session, user, layer, {row.grid_id})
    return int(row.version)


def create_feature(session: Session, user: AppUser, layer: str, body: BaseModel) -> str:
    """Add a row (buildings, stations, shelters); return its code."""
    model = MODELS[layer]
    code = body.code  # type: ignore[attr-defined]
    if session.scalar(select(func.count()).where(model.code == code)):
        raise Conflict(f"{layer[:-1]} {code} exists already (retired ones keep their code)")
    row = model(code=code, version=0)
    _apply(session, row, body)
    if isinstance(row, Building):
        _place_building(session, row)
    if isinstance(row, Station):
        _place_station(session, row, getattr(body, "building_code", None))
    if isinstance(row, Shelter):
        row.community_id = _community_at(session, row.location)
    session.add(row)
    _flush(session)
    session.refresh(row)
    check_writer(session, user, layer, _grids_of(layer, row))
    return str(code)


def retire_feature(session: Session, user: AppUser, layer: str, code: str,
                   version: int) -> None:
    """Retire a row that nothing live depends on (it stays, with ``retired_at``). Grids are
    retired through planning, where gaps, teams and warnings are checked."""
    if layer == "grids":
        raise Conflict("a grid is retired through planning: a changeset with a retire "
                       "operation (POST /api/changesets)")
    row = _locked_row(session, layer, code, version)
    check_writer(session, user, layer, _grids_of(layer, row))
    blockers = _dependants(session, row)
    if blockers:
        raise Conflict(f"{code} cannot be retired while {blockers} depend on it")
    row.retired_at = datetime.now(UTC)
    row.version = row.version + 1


def _grids_of(layer: str, row: Any) -> set[int]:
    if layer == "buildings":
        return {row.grid_id} if row.grid_id else set()
    if layer == "grids":
        return {row.id}
    return set()


def _dependants(session: Session, row: Any) -> str:
    """Return what still depends on ``row`` ("" if nothing)."""
    checks: list[tuple[str, Any]] = []
    if isinstance(row, Building):
        checks = [("residents", select(func.count()).where(
                      Resident.building_id == row.id, Resident.moved_out_at.is_(None))),
                  ("stations", select(func.count()).where(
                      Station.building_id == row.id, Station.retired_at.is_(None)))]
    elif isinstance(row, Grid):
        checks = [("buildings", select(func.count()).where(
            Building.grid_id == row.id, Building.retired_at.is_(None)))]
    elif isinstance(row, AdminUnit):
        checks = [("admin units", select(func.count()).where(
                      AdminUnit.parent_id == row.id, AdminUnit.retired_at.is_(None))),
                  ("grids", select(func.count()).where(
                      Grid.community_id == row.id, Grid.retired_at.is_(None)))]
    found = [f"{n} {what}" for what, query in checks if (n := session.scalar(query))]
    return ", ".join(found)


def _place_building(session: Session, row: Building) -> None:
    """Give a building with only a footprint the point inside the grid holding most of it."""
    if row.location is not None or row.footprint is None:
        if row.location is None:
            raise InvalidInput("a building needs a location or a footprint")
        return
    with session.no_autoflush:  # the row is not complete until it has its point
        point = session.scalar(queries.majority_point(row.footprint))
    if point is None:
        raise InvalidInput("the footprint lies in no grid of the territory")
    row.location = point


def _place_station(session: Session, row: Station, building_code: str | None) -> None:
    if building_code:
        building = session.scalar(select(Building).where(Building.code == building_code,
                                                         Building.retired_at.is_(None)))
        if building is None:
            raise InvalidInput(f"unknown building {building_code}")
        row.building_id = building.id
        if row.location is None:
            row.location = building.location
    if row.location is None:
        raise InvalidInput("a station needs a location or a building_code")
    row.community_id = _community_at(session, row.location)


def _community_at(session: Session, location: Any) -> int:
    community = session.scalar(queries.community_at(location))
    if community is None:
        raise InvalidInput("the location lies in no community of the territory "
                           "(lat/lon swapped?)")
    return int(community)


def _flush(session: Session) -> None:
    """Flush, turning the database's refusals (constraints, triggers) into InvalidInput."""
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise InvalidInput(f"refused by the database: {reason}") from None
