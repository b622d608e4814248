"""The layers' spatial SQL. GeoJSON is built inside PostGIS and handed on as text.

Building FeatureCollections in SQL avoids decoding and re-encoding JSON in Python, which is
most of what a Python feature server spends on a page (see the peer baseline in DESIGN.md).
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    FromClause,
    Select,
    Text,
    cast,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session, aliased

from gridgis.layers.models import AdminUnit, Building, Grid, Shelter, Station
from gridgis.params import BBox, Page

COORDINATE_DECIMALS = 7  # ~1 cm in lon/lat
Parent = aliased(AdminUnit, name="parent")
Community = aliased(AdminUnit, name="community")
GridOf = aliased(Grid, name="grid_of")


@dataclass(frozen=True)
class LayerSpec:
    """How one layer reads as GeoJSON: its rows, geometry, properties and filters."""

    # Column expressions are typed Any: mapped attributes and SQL functions both fit.
    name: str
    source: FromClause
    key: Any
    code: Any
    geometry: Any
    properties: dict[str, Any]
    live: Any
    # The code prefixed by an admin unit's or grid's code: filters `within=CODE`.
    within: Any
    filters: dict[str, Any] = field(default_factory=dict)


LAYERS: dict[str, LayerSpec] = {
    "admin-units": LayerSpec(
        name="admin-units",
        source=AdminUnit.__table__.outerjoin(Parent, Parent.id == AdminUnit.parent_id),
        key=AdminUnit.id, code=AdminUnit.code, geometry=AdminUnit.boundary,
        properties={"code": AdminUnit.code, "name": AdminUnit.name,
                    "name_en": AdminUnit.name_en, "level": AdminUnit.level,
                    "kind": AdminUnit.kind, "parent_code": Parent.code,
                    "version": AdminUnit.version},
        live=AdminUnit.retired_at.is_(None), within=AdminUnit.code,
        filters={"level": AdminUnit.level},
    ),
    "grids": LayerSpec(
        name="grids",
        source=Grid.__table__.join(Community, Community.id == Grid.community_id),
        key=Grid.id, code=Grid.code, geometry=Grid.boundary,
        properties={"code": Grid.code, "name": Grid.name, "kind": Grid.kind,
                    "households": Grid.households, "community_code": Community.code,
                    "community_name": Community.name, "version": Grid.version},
        live=Grid.retired_at.is_(None), within=Grid.code,
        filters={"kind": Grid.kind},
    ),
    "buildings": LayerSpec(
        name="buildings",
        source=Building.__table__.join(GridOf, GridOf.id == Building.grid_id),
        key=Building.id, code=Building.code, geometry=Building.location,
        properties={"code": Building.code, "name": Building.name, "use": Building.use,
                    "floors": Building.floors, "households": Building.households,
                    "risk_flags": Building.risk_flags, "grid_code": GridOf.code,
                    "version": Building.version},
        live=Building.retired_at.is_(None), within=Building.code,
        filters={"use": Building.use},
    ),
    "stations": LayerSpec(
        name="stations",
        source=Station.__table__.join(Community, Community.id == Station.community_id),
        key=Station.id, code=Station.code, geometry=Station.location,
        properties={"code": Station.code, "name": Station.name, "level": Station.level,
                    "community_code": Community.code, "contact_name": Station.contact_name,
                    "contact_phone": Station.contact_phone, "version": Station.version},
        live=Station.retired_at.is_(None), within=Community.code,
        filters={"level": Station.level},
    ),
    "shelters": LayerSpec(
        name="shelters",
        source=Shelter.__table__.join(Community, Community.id == Shelter.community_id),
        key=Shelter.id, code=Shelter.code, geometry=Shelter.location,
        properties={"code": Shelter.code, "name": Shelter.name, "kind": Shelter.kind,
                    "capacity": Shelter.capacity, "occupancy": Shelter.occupancy,
                    "wheelchair_access": Shelter.wheelchair_access,
                    "medical": Shelter.medical, "community_code": Community.code,
                    "version": Shelter.version},
        live=Shelter.retired_at.is_(None), within=Community.code,
        filters={"kind": Shelter.kind},
    ),
}


@dataclass(frozen=True)
class FeaturePage:
    """One page of a layer: the features as GeoJSON text, and where the next page starts."""

    features_json: str
    number_returned: int
    next_cursor: int | None
    codes: list[str] = field(default_factory=list)  # only when asked for (audits)


def feature_page(session: Session, spec: LayerSpec, *, bbox: BBox | None, page: Page,
                 within: str | None = None, equals: dict[str, str] | None = None,
                 conditions: Sequence[ColumnElement[bool]] = (),
                 collect_codes: bool = False, offset: int = 0) -> FeaturePage:
    """Return one page of live features, ordered by key, filtered, in one round trip.

    With ``collect_codes``, the page's feature codes come back too (for the audit log).
    ``offset`` skips that many matching rows first (OGC API paging; keyset is cheaper).
    """
    feature = func.json_build_object(
        "type", "Feature",
        "id", spec.code,
        "geometry", cast(func.ST_AsGeoJSON(spec.geometry, COORDINATE_DECIMALS), JSON),
        "properties", func.json_build_object(
            *[part for name, column in spec.properties.items() for part in (name, column)]
        ),
    )
    rows = (
        select(spec.key.label("key"), spec.code.label("code"), feature.label("feature"))
        .select_from(spec.source)
        .where(spec.live, spec.key > page.cursor, *conditions)
        .order_by(spec.key)
        .limit(page.limit + 1)
        .offset(offset)
    )
    if bbox is not None:
        envelope = func.ST_MakeEnvelope(bbox.west, bbox.south, bbox.east, bbox.north, 4326)
        rows = rows.where(func.ST_Intersects(spec.geometry, envelope))
    if within:
        rows = rows.where(spec.within.startswith(within, autoescape=True))
    for name, value in (equals or {}).items():
        rows = rows.where(spec.filters[name] == value)
    ranked = rows.add_columns(func.row_number().over(order_by=spec.key).label("rank")).subquery()
    on_page = ranked.c.rank <= offset + page.limit  # ranks count the skipped rows too
    result = session.execute(
        select(
            cast(func.coalesce(
                func.json_agg(aggregate_order_by(ranked.c.feature, ranked.c.key)).filter(on_page),
                literal_column("'[]'::json"),
            ), Text),
            func.count(),
            func.max(ranked.c.key).filter(on_page),
            (func.array_agg(aggregate_order_by(ranked.c.code, ranked.c.key)).filter(on_page)
             if collect_codes else literal_column("NULL")),
        )
    ).one()
    features_json, fetched, last_key, codes = result
    has_more = fetched > page.limit
    return FeaturePage(features_json, min(fetched, page.limit), last_key if has_more else None,
                       codes or [])


def majority_point(footprint: Any) -> Select[Any]:
    """Select a point inside the part of ``footprint`` lying in the grid that holds most of it
    (areas compared in degrees², fine for ranking neighbours); no row if it is in no grid."""
    part = func.ST_Intersection(Grid.boundary, footprint)
    return (select(func.ST_PointOnSurface(part))
            .where(Grid.retired_at.is_(None), func.ST_Intersects(Grid.boundary, footprint))
            .order_by(func.ST_Area(part).desc()).limit(1))


def community_at(location: Any) -> Select[Any]:
    """Select the live community covering a point."""
    return (select(AdminUnit.id)
            .where(AdminUnit.level == "community", AdminUnit.retired_at.is_(None),
                   func.ST_Covers(AdminUnit.boundary, location))
            .order_by(AdminUnit.id).limit(1))
