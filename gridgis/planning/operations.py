"""Operations on grids and what they propose: the territory as it would be once published.

An operation names one grid by code: ``create`` (a new code, its area), ``modify`` (a new
area and/or name or kind), ``split`` (a line across it, and the codes of the parts),
``merge`` (neighbours of the same community into it), ``retire``, and ``restore`` (an
earlier version, as a new change). Operations are checked one by one as they are added
(``check``): geometry that arrives is valid (or explicitly made valid), codes follow the
scheme, a split line crosses the grid, merged grids share a community and touch. Whatever
is wrong is refused with the geometry at fault. ``propose`` replays a changeset's operations
with shapely over the grids they touch and returns the grids as they would be.
"""

from dataclasses import dataclass, field
from typing import Any

import shapely
import shapely.ops
from geoalchemy2.shape import to_shape
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from gridgis import spatial
from gridgis.errors import InvalidInput
from gridgis.layers import codes
from gridgis.layers.models import GRID_KINDS, AdminUnit, Grid
from gridgis.planning.models import OPERATIONS, ChangesetOperation, GridVersion


class Rejected(InvalidInput):
    """An operation or changeset that cannot be accepted: ``findings`` say why and where
    (answered 422 with them)."""

    def __init__(self, message: str, findings: list[dict[str, Any]]):
        super().__init__(message)
        self.findings = findings


class OperationIn(BaseModel):
    """One operation as it arrives (``params`` hold what the operation needs)."""

    model_config = ConfigDict(extra="forbid")

    op: str = Field(pattern=f"^({'|'.join(OPERATIONS)})$")
    grid: str = Field(pattern=r"^\d{15}$", description="the grid's code (new for create)")
    geometry: dict[str, Any] | None = Field(
        default=None, description="GeoJSON: the area (create, modify) or the line (split)")
    name: str | None = Field(default=None, min_length=1, max_length=100)
    kind: str | None = Field(default=None, pattern=f"^({'|'.join(GRID_KINDS)})$")
    codes: list[str] | None = Field(default=None, description="split: the parts' codes")
    merge_with: list[str] | None = Field(default=None, alias="with",
                                         description="merge: the grids merged into it")
    version: int | None = Field(default=None, description="restore: the version to restore")
    heads: list[str] | None = Field(default=None,
                                    description="create: the usernames of its grid team")
    make_valid: bool = Field(default=False, description="repair an invalid area (reported)")
    base_version: int | None = Field(default=None, description=(
        "the grid's version the planner saw (refused when it is no longer current)"))


@dataclass
class Proposed:
    """A grid as the changeset would leave it."""

    code: str
    action: str  # keep (untouched so far), create, change, retire
    grid_id: int | None
    community_id: int
    community: str
    name: str
    kind: str
    geometry: Any  # shapely (Multi)Polygon
    base_version: int | None
    team_from: list[int] = field(default_factory=list)  # grids whose team it takes
    heads: list[str] = field(default_factory=list)
    made_valid: str | None = None
    reshaped: bool = False  # its area changes (its buildings may change grid)


def finding(check: str, grid: str, message: str, geometry: Any = None,
            severity: str = "error") -> dict[str, Any]:
    """One finding, with the geometry at fault as GeoJSON (for a map)."""
    shape = shapely.geometry.mapping(geometry) if geometry is not None else None
    return {"severity": severity, "check": check, "grid": grid, "message": message,
            "geometry": shape}


def read_geometry(value: dict[str, Any] | None, op: OperationIn) -> tuple[Any, str | None]:
    """Return the operation's geometry (repaired if asked, with what was done) or Rejected.
    Areas come back with their rings turned the RFC 7946 way (shell counter-clockwise)."""
    if value is None:
        raise Rejected(f"{op.op} {op.grid}: a geometry is needed",
                       [finding("geometry", op.grid, "no geometry")])
    try:
        geometry = spatial.read_geojson(value)
    except ValueError as exc:
        raise Rejected(f"{op.op} {op.grid}: {exc}",
                       [finding("geometry", op.grid, str(exc))]) from None
    if op.op == "split":
        if (problem := spatial.line_problem(geometry)):
            raise Rejected(f"split {op.grid}: {problem}",
                           [finding("split", op.grid, problem, geometry)])
        return geometry, None
    problem = spatial.polygon_problem(geometry)
    if problem and problem.startswith("invalid geometry") and op.make_valid:
        repaired = shapely.make_valid(geometry)
        polygons = [g for g in getattr(repaired, "geoms", [repaired])
                    if g.geom_type in ("Polygon", "MultiPolygon")]
        return shapely.orient_polygons(shapely.MultiPolygon(shapely.get_parts(polygons))), problem
    if problem:
        at = _fault_location(geometry) if problem.startswith("invalid geometry") else None
        raise Rejected(f"{op.op} {op.grid}: {problem}",
                       [finding("valid", op.grid, problem, at or geometry)])
    return shapely.orient_polygons(geometry), None


def _fault_location(geometry: Any) -> Any:
    """The point an invalid polygon fails at (shapely says it in its reason), if any."""
    try:
        reason = shapely.is_valid_reason(geometry)
        x, y = reason[reason.index("[") + 1:reason.index("]")].split()
        return shapely.Point(float(x), float(y))
    except (ValueError, TypeError, AttributeError):
        return None


def check_code(session: Session, code: str, community: str, taken: set[str]) -> None:
    """Refuse a new grid code that breaks the scheme, lies outside its community's code, or
    exists (a retired grid keeps its code for ever)."""
    if not codes.COMPILED["grid"].match(code) or not code.startswith(community):
        raise Rejected(f"grid code {code} does not follow the scheme (community {community} "
                       f"+ 3 digits from 001)",
                       [finding("code", code, "not in the code scheme")])
    if code in taken or session.scalar(select(Grid.id).where(Grid.code == code)):
        raise Rejected(f"grid code {code} is taken", [finding("code", code, "code taken")])


def propose(session: Session, operations: list[ChangesetOperation]) -> dict[str, Proposed]:
    """Return the grids the operations touch, as they would be after them (by code)."""
    state: dict[str, Proposed] = {}

    def current(code: str) -> Proposed:
        if code in state:
            found = state[code]
            if found.action == "retire":
                raise Rejected(f"grid {code} is retired by an earlier operation",
                               [finding("retired", code, "retired earlier in the changeset")])
            return found
        grid = session.scalar(select(Grid).where(Grid.code == code, Grid.retired_at.is_(None)))
        if grid is None:
            raise Rejected(f"no grid {code}", [finding("grid", code, "no such live grid")])
        community = session.get(AdminUnit, grid.community_id)
        assert community is not None
        state[code] = Proposed(code, "keep", grid.id, grid.community_id, community.code,
                               grid.name, grid.kind, to_shape(grid.boundary), grid.version)
        return state[code]

    for operation in operations:
        _apply(session, state, current, operation)
    return {code: p for code, p in state.items() if p.action != "keep"}


def _apply(session: Session, state: dict[str, Proposed], current: Any,
           operation: ChangesetOperation) -> None:
    op, code, params = operation.op, operation.grid, operation.params
    geometry = to_shape(operation.geometry) if operation.geometry is not None else None
    if op == "create":
        community = session.scalar(select(AdminUnit).where(
            AdminUnit.code == codes.parent_code_of(code), AdminUnit.retired_at.is_(None)))
        if community is None:
            raise Rejected(f"no community {codes.parent_code_of(code)} for grid {code}",
                           [finding("community", code, "its community does not exist")])
        state[code] = Proposed(code, "create", None, community.id, community.code,
                               params.get("name") or code, params.get("kind") or "residential",
                               geometry, None, heads=list(params.get("heads") or []),
                               made_valid=params.get("made_valid"), reshaped=True)
    elif op in ("modify", "restore"):
        grid = current(code)
        if op == "restore":
            if params.get("version") is None:
                raise Rejected(f"restore {code}: say which version",
                               [finding("restore", code, "no version given")])
            old = session.scalar(select(GridVersion).where(
                GridVersion.grid_id == grid.grid_id, GridVersion.version == params["version"]))
            if old is None:
                raise Rejected(f"grid {code} has no version {params['version']}",
                               [finding("restore", code, "no such version")])
            geometry, params = to_shape(old.boundary), {"name": old.name, "kind": old.kind}
        if geometry is not None:
            grid.geometry, grid.reshaped = geometry, True
        grid.name, grid.kind = params.get("name") or grid.name, params.get("kind") or grid.kind
        grid.made_valid = params.get("made_valid") or grid.made_valid
        grid.action = "change" if grid.action == "keep" else grid.action
    elif op == "split":
        _split(state, current(code), geometry, list(params.get("codes") or []))
    elif op == "merge":
        _merge(state, current(code), [current(other) for other in params.get("with") or []])
    elif op == "retire":
        _retire(state, current(code))


def _retire(state: dict[str, Proposed], grid: Proposed) -> None:
    """Retire a grid; one created earlier in the changeset is simply not created."""
    if grid.action == "create":
        del state[grid.code]
    else:
        grid.action, grid.reshaped = "retire", True


def _split(state: dict[str, Proposed], grid: Proposed, line: Any, new_codes: list[str]) -> None:
    area = shapely.unary_union(grid.geometry)
    before = len(shapely.get_parts(area))
    parts = [p for p in shapely.ops.split(area, line).geoms if p.area > 0]
    if len(parts) <= before:
        raise Rejected(f"the split line does not cross grid {grid.code}",
                       [finding("split", grid.code, "the line does not cross the grid", line)])
    if len(set(new_codes)) != len(new_codes):
        raise Rejected(f"split {grid.code}: the parts need different codes",
                       [finding("split", grid.code, "codes repeat", line)])
    if len(new_codes) != len(parts):
        raise Rejected(f"the line cuts grid {grid.code} in {len(parts)}: give {len(parts)} "
                       f"codes", [finding("split", grid.code, f"{len(parts)} parts", line)])
    for n, (part, new_code) in enumerate(zip(parts, new_codes, strict=True), start=1):
        state[new_code] = Proposed(new_code, "create", None, grid.community_id,
                                   grid.community, f"{grid.name}（{n}）", grid.kind,
                                   shapely.MultiPolygon([part]), None,
                                   team_from=[*grid.team_from, *([grid.grid_id] if grid.grid_id
                                                                 else [])],
                                   heads=list(grid.heads), reshaped=True)
    _retire(state, grid)


def _merge(state: dict[str, Proposed], grid: Proposed, others: list[Proposed]) -> None:
    if not others or any(o.code == grid.code for o in others):
        raise Rejected(f"merge {grid.code}: name the other grids merged into it (with)",
                       [finding("merge", grid.code, "nothing to merge")])
    strangers = [o for o in others if o.community_id != grid.community_id]
    if strangers:
        raise Rejected(f"grids {', '.join(o.code for o in strangers)} are not in the community "
                       f"of {grid.code}: merge only within a community",
                       [finding("merge", o.code, "another community", o.geometry)
                        for o in strangers])
    merged = shapely.unary_union([grid.geometry, *(o.geometry for o in others)])
    if merged.geom_type != "Polygon":
        raise Rejected(f"merge {grid.code}: the grids do not touch",
                       [finding("merge", grid.code, "not neighbours", merged)])
    grid.geometry, grid.reshaped = shapely.MultiPolygon([merged]), True
    grid.action = "change" if grid.action == "keep" else grid.action
    for other in others:
        grid.team_from += [*other.team_from, *([other.grid_id] if other.grid_id else [])]
        grid.heads += other.heads
        _retire(state, other)
