"""Counts per admin unit or grid: buildings, residents, vulnerable people, stations, shelters.

Codes nest by prefix (see ``codes``), so "inside 440115001" is "grid code starts with it".
Stations and shelters are counted by the community they belong to, or for a grid by the
points inside its boundary. Nothing personal: any logged-in role may read these.
"""

from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from gridgis.errors import NotFound
from gridgis.layers.models import AdminUnit, Building, Grid, Resident, Shelter, Station
from gridgis.layers.schemas import Summary


def summarise(session: Session, code: str) -> Summary:
    """Return the counts inside the admin unit or grid ``code``."""
    grid = session.scalar(select(Grid).where(Grid.code == code, Grid.retired_at.is_(None)))
    if grid is None and session.scalar(select(func.count()).where(
            AdminUnit.code == code, AdminUnit.retired_at.is_(None))) == 0:
        raise NotFound(f"no admin unit or grid {code}")
    in_scope = Grid.code.startswith(code, autoescape=True) & Grid.retired_at.is_(None)
    live_building = Building.retired_at.is_(None)
    current = Resident.moved_out_at.is_(None)

    def place(model: Any) -> ColumnElement[bool]:
        if grid is not None:
            return func.ST_Covers(grid.boundary, model.location) & model.retired_at.is_(None)
        community = select(AdminUnit.id).where(AdminUnit.level == "community",
                                               AdminUnit.code.startswith(code, autoescape=True))
        return model.community_id.in_(community.scalar_subquery()) & model.retired_at.is_(None)

    buildings = select(Building).join(Grid, Grid.id == Building.grid_id).where(
        in_scope, live_building)
    people = (select(Resident).join(Building, Building.id == Resident.building_id)
              .join(Grid, Grid.id == Building.grid_id).where(in_scope, live_building, current))
    shelter_totals = session.execute(
        select(func.count(), func.coalesce(func.sum(Shelter.capacity), 0),
               func.coalesce(func.sum(Shelter.occupancy), 0)).where(place(Shelter))).one()
    return Summary(
        code=code,
        grids=session.scalar(select(func.count()).where(in_scope)) or 0,
        buildings_by_use=_counts(session, buildings.subquery().c.use),
        buildings_by_risk=_counts(session, func.unnest(buildings.subquery().c.risk_flags)),
        residents_by_residency=_counts(session, people.subquery().c.residency),
        vulnerable_by_kind=_counts(session, func.unnest(people.subquery().c.vulnerabilities)),
        stations_by_level=_counts(session, Station.level, place(Station)),
        shelters=shelter_totals[0], shelter_capacity=shelter_totals[1],
        shelter_occupancy=shelter_totals[2],
    )


def _counts(session: Session, column: Any, *where: Any) -> dict[str, int]:
    """Return ``{value: count}`` of a column (or a set-returning expression)."""
    label = column.label("value")
    inner = select(label).where(*where).subquery()
    rows = session.execute(select(inner.c.value, func.count()).group_by(inner.c.value)).all()
    return {str(value): int(count) for value, count in rows}
