"""Changesets: open, add operations, validate, preview the impact, publish in one transaction.

Validation runs in PostGIS over the proposed grids (``sql/`` statements, one round trip
each) against the live ones: inside its community, no overlap with any other grid, no new
gap left in the community, size and households within the configured bounds, a grid team
for every grid with households, codes still free, base versions still current. Publishing
re-checks all of it under row locks, refuses a stale base (409 with what changed) and, while
a warning is active on a touched grid, waits for the command centre's override; then it
writes the grids (the history trigger keeps every version with the changeset, author and
reason), moves buildings to the grid now holding them, passes grid teams on, recounts
households and the per-grid totals targeting reads.
"""

from pathlib import Path
from typing import Any

import shapely
from geoalchemy2.shape import from_shape
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from gridgis import audit, auth
from gridgis.errors import Conflict, NotFound
from gridgis.layers import totals
from gridgis.layers.models import Grid
from gridgis.models import AppUser
from gridgis.planning import operations
from gridgis.planning.models import Changeset, ChangesetOperation
from gridgis.planning.operations import OperationIn, Proposed, Rejected, finding
from gridgis.settings import get_settings

PLANNERS = ("planner", "admin")
OVERRIDERS = ("command", "admin")
SQL_DIR = Path(__file__).with_name("sql")


def sql(name: str) -> Any:
    """The statement in ``sql/<name>.sql``."""
    return text((SQL_DIR / f"{name}.sql").read_text(encoding="utf-8"))


def sql_statements(name: str) -> list[Any]:
    """The statements in ``sql/<name>.sql``, one by one (comments left out)."""
    code = "\n".join(line for line in (SQL_DIR / f"{name}.sql").read_text(
        encoding="utf-8").splitlines() if not line.lstrip().startswith("--"))
    return [text(part) for part in code.split(";") if part.strip()]


class StaleBase(Conflict):
    """A changeset based on grid versions that are no longer current: 409 with what changed
    (OpenStreetMap's model: the planner rebases, nothing is overwritten)."""

    def __init__(self, message: str, findings: list[dict[str, Any]]):
        super().__init__(message)
        self.findings = findings


def open_changeset(session: Session, user: AppUser, reason: str) -> Changeset:
    """Open a changeset for ``user`` with ``reason``."""
    auth.require_role(user, *PLANNERS)
    changeset = Changeset(app_user_id=user.id, reason=reason)
    session.add(changeset)
    session.flush()
    return changeset


def get_open(session: Session, changeset_id: int, lock: bool = False) -> Changeset:
    changeset = session.get(Changeset, changeset_id, with_for_update=lock)
    if changeset is None:
        raise NotFound(f"no changeset {changeset_id}")
    if changeset.state != "open":
        raise Conflict(f"changeset {changeset_id} is {changeset.state}")
    return changeset


def operations_of(session: Session, changeset_id: int) -> list[ChangesetOperation]:
    return list(session.scalars(select(ChangesetOperation).where(
        ChangesetOperation.changeset_id == changeset_id).order_by(ChangesetOperation.id)))


def add_operation(session: Session, user: AppUser, changeset_id: int,
                  body: OperationIn) -> ChangesetOperation:
    """Check one operation against the changeset so far and keep it; Rejected (with the
    geometry at fault) if it cannot be done, and nothing kept."""
    auth.require_role(user, *PLANNERS)
    changeset = get_open(session, changeset_id, lock=True)
    geometry, repaired = (operations.read_geometry(body.geometry, body)
                          if body.op in ("create", "modify", "split") and
                          (body.geometry is not None or body.op != "modify")
                          else (None, None))
    params: dict[str, Any] = {k: v for k, v in {
        "name": body.name, "kind": body.kind, "codes": body.codes, "with": body.merge_with,
        "version": body.version, "heads": body.heads, "made_valid": repaired}.items()
        if v is not None and v != []}
    current = session.scalar(select(Grid.version).where(Grid.code == body.grid,
                                                        Grid.retired_at.is_(None)))
    if body.base_version is not None and body.base_version != current:
        raise StaleBase(f"grid {body.grid} is at version {current}, not {body.base_version}: "
                        "reload it", [finding("stale", body.grid, f"based on version "
                                              f"{body.base_version}, now {current}")])
    operation = ChangesetOperation(
        changeset_id=changeset.id, op=body.op, grid=body.grid, params=params,
        geometry=from_shape(geometry, 4326) if geometry is not None else None,
        base_version=current)
    earlier = operations_of(session, changeset.id)
    proposed = operations.propose(session, [*earlier, operation])  # raises Rejected
    taken = {code for code, p in operations.propose(session, earlier).items()
             if p.action == "create"} if earlier else set()
    for code in [body.grid] if body.op == "create" else (body.codes or []):
        operations.check_code(session, code, proposed[code].community, taken)
    if body.op == "merge":
        params["bases"] = {other: session.scalar(select(Grid.version).where(
            Grid.code == other, Grid.retired_at.is_(None))) for other in body.merge_with or []}
    session.add(operation)
    changeset.findings = None  # to be validated again
    changeset.override_by = None  # an override covers what it was given, nothing added later
    session.flush()
    return operation


def validate(session: Session, changeset: Changeset) -> list[dict[str, Any]]:
    """Return the findings of the changeset as it stands (errors block publishing), and
    keep them on it."""
    ops = operations_of(session, changeset.id)
    findings: list[dict[str, Any]] = []
    if not ops:
        findings.append(finding("empty", "", "the changeset has no operations"))
    try:
        proposed = operations.propose(session, ops)
    except Rejected as exc:  # the grids changed since the operations were added
        changeset.findings = exc.findings
        return exc.findings
    findings += _stale(session, ops)
    for p in proposed.values():
        if p.action == "create" and session.execute(text(
                "SELECT 1 FROM grid WHERE code = :c"), {"c": p.code}).first():
            findings.append(finding("code", p.code, "code taken since it was added"))
        if p.made_valid:
            findings.append(finding("made_valid", p.code, f"repaired on request: {p.made_valid}",
                                    p.geometry, severity="warning"))
    findings += _spatial_findings(session, proposed)
    changeset.findings = findings
    return findings


def _stale(session: Session, ops: list[ChangesetOperation]) -> list[dict[str, Any]]:
    """The grids changed since the operations were based on them (read afresh, never from
    the session's cache)."""
    stale = []
    for base in _bases(ops):
        grid = session.execute(text("SELECT version, retired_at FROM grid WHERE code = :c"),
                               {"c": base[0]}).first()
        if grid is None or grid.retired_at is not None:
            stale.append(finding("stale", base[0], f"based on version {base[1]}, now retired"))
        elif grid.version != base[1]:
            stale.append(finding("stale", base[0],
                                 f"based on version {base[1]}, now {grid.version}"))
    return stale


def _bases(ops: list[ChangesetOperation]) -> list[tuple[str, int]]:
    bases = [(o.grid, o.base_version) for o in ops if o.base_version is not None]
    bases += [(code, version) for o in ops for code, version in
              (o.params.get("bases") or {}).items() if version is not None]
    return list(dict.fromkeys(bases))


def _rows(proposed: dict[str, Proposed]) -> dict[str, Any]:
    """The proposed grids as arrays, for the SQL statements' ``unnest``."""
    rows = list(proposed.values())
    return {"codes": [p.code for p in rows], "actions": [p.action for p in rows],
            "grid_ids": [p.grid_id for p in rows],
            "community_ids": [p.community_id for p in rows],
            "wkbs": [shapely.to_wkb(p.geometry) if p.geometry is not None else None
                     for p in rows]}


def _spatial_findings(session: Session, proposed: dict[str, Proposed]) -> list[dict[str, Any]]:
    settings = get_settings()
    smallest, largest = settings.planning_grid_m2
    fewest, most = settings.planning_households
    rows = session.execute(sql("validate"), {
        **_rows(proposed), "tolerance": settings.planning_tolerance_m2,
        "smallest": smallest, "largest": largest, "fewest": fewest, "most": most}).mappings()
    findings = []
    for row in rows:
        geometry = shapely.from_geojson(row["geometry"]) if row["geometry"] else None
        findings.append(finding(row["check"], row["grid"], row["message"], geometry))
    teams = _teams(session, proposed)
    households = {row.code: row.households for row in session.execute(
        sql("households"), _rows(proposed))}
    for p in proposed.values():
        if p.action != "retire" and households.get(p.code, 0) > 0 and not teams.get(p.code):
            # a new grid must come with its team; an existing one without is said, not held
            findings.append(finding("team", p.code, f"{households[p.code]} households would "
                                    "have no grid head: name the team (heads)", p.geometry,
                                    severity="error" if p.action == "create" else "warning"))
    return findings


def _teams(session: Session, proposed: dict[str, Proposed]) -> dict[str, set[int]]:
    """The users who would answer for each proposed grid."""
    teams: dict[str, set[int]] = {}
    for p in proposed.values():
        ids = [*p.team_from, *([p.grid_id] if p.grid_id else [])]
        members = set(session.scalars(text(
            "SELECT app_user_id FROM app_user_grid WHERE grid_id = ANY(:ids)"), {"ids": ids}))
        if p.heads:
            members |= set(session.scalars(text(
                "SELECT id FROM app_user WHERE username = ANY(:u) AND role = ANY(:roles)"),
                {"u": p.heads, "roles": list(auth.GRID_ROLES)}))
        teams[p.code] = members
    return teams


def preview(session: Session, changeset: Changeset) -> dict[str, Any]:
    """Return what publishing would move: buildings, residents and households between
    grids, stations and shelters changing grid, grid heads gaining or losing people, the
    open alerts and checklists touched; and a map (the proposed grids, the moved buildings)."""
    proposed = operations.propose(session, operations_of(session, changeset.id))
    params = _rows(proposed)
    moves = [dict(row) for row in session.execute(sql("impact_moves"), params).mappings()]
    places = [dict(row) for row in session.execute(sql("impact_places"), params).mappings()]
    touched = [p.grid_id for p in proposed.values() if p.grid_id]
    alerts = [dict(row) for row in session.execute(text("""
        SELECT a.id AS alert, w.identifier AS warning, g.code AS grid, a.tier,
               c.id AS checklist, c.state AS checklist_state
        FROM alert a JOIN warning w ON w.id = a.warning_id JOIN grid g ON g.id = a.grid_id
        LEFT JOIN checklist c ON c.alert_id = a.id
        WHERE a.grid_id = ANY(:ids) AND a.state = 'active' ORDER BY g.code"""),
        {"ids": touched}).mappings()]
    heads = _heads_change(session, proposed, moves)
    features = [{"type": "Feature", "geometry": shapely.geometry.mapping(p.geometry),
                 "properties": {"grid": p.code, "action": p.action, "name": p.name}}
                for p in proposed.values() if p.geometry is not None]
    moved = session.execute(sql("impact_buildings"), params).scalar_one()
    return {"moves": moves, "places": places, "heads": heads, "alerts": alerts,
            "totals": {"buildings": sum(m["buildings"] for m in moves),
                       "residents": sum(m["residents"] for m in moves),
                       "households": sum(m["households"] for m in moves),
                       "alerts": len(alerts)},
            "map": {"type": "FeatureCollection",
                    "features": features + list(moved or [])}}


def _heads_change(session: Session, proposed: dict[str, Proposed],
                  moves: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per grid head or worker: residents gained and lost."""
    teams = _teams(session, proposed)
    codes = sorted({m["from_grid"] for m in moves} | {m["to_grid"] for m in moves
                                                       if m["to_grid"]})
    now: dict[str, set[int]] = {}
    for code, user_id in session.execute(text(  # every team involved, in one query
            "SELECT g.code, ug.app_user_id FROM app_user_grid ug JOIN grid g "
            "ON g.id = ug.grid_id WHERE g.code = ANY(:codes)"), {"codes": codes}):
        now.setdefault(code, set()).add(user_id)
    change: dict[int, int] = {}
    for m in moves:
        before = now.get(m["from_grid"], set())
        after = teams[m["to_grid"]] if m["to_grid"] in teams else now.get(m["to_grid"], set())
        for user_id in before - (after or set()):
            change[user_id] = change.get(user_id, 0) - m["residents"]
        for user_id in (after or set()) - before:
            change[user_id] = change.get(user_id, 0) + m["residents"]
    names: dict[int, str] = {id_: name for id_, name in session.execute(
        text("SELECT id, username FROM app_user WHERE id = ANY(:i)"), {"i": list(change)})}
    return [{"user": names[u], "residents": n} for u, n in sorted(change.items()) if n]


def abandon(session: Session, user: AppUser, changeset_id: int) -> Changeset:
    """Put a changeset aside for good (it stays, with its operations, as a record)."""
    auth.require_role(user, *PLANNERS)
    changeset = get_open(session, changeset_id, lock=True)
    changeset.state = "abandoned"
    return changeset


def override(session: Session, user: AppUser, changeset_id: int) -> Changeset:
    """The command centre lets a changeset publish over grids under an active warning."""
    auth.require_role(user, *OVERRIDERS)
    changeset = get_open(session, changeset_id, lock=True)
    changeset.override_by = user.id
    audit.record(session, user, "override", "changeset", str(changeset_id))
    return changeset


def publish(session: Session, user: AppUser, changeset_id: int) -> dict[str, Any]:
    """Publish the changeset in the caller's transaction; the caller commits. Refused with
    StaleBase (409) over newer grid versions, Conflict (409) over an active warning
    without an override, Rejected (422) with the findings when validation fails."""
    auth.require_role(user, *PLANNERS)
    changeset = get_open(session, changeset_id, lock=True)
    ops = operations_of(session, changeset.id)
    # One publish at a time per community (two could otherwise each fill the same gap),
    # then the based-on grids locked.
    communities = session.scalars(text(
        "SELECT DISTINCT cu.id FROM admin_unit cu WHERE cu.level = 'community' AND ("
        "cu.code = ANY(:prefixes) OR cu.id IN (SELECT community_id FROM grid "
        "WHERE code = ANY(:codes))) ORDER BY cu.id"),
        {"prefixes": sorted({o.grid[:12] for o in ops}), "codes": [o.grid for o in ops]}).all()
    for community in communities:
        session.execute(text("SELECT pg_advisory_xact_lock(7324100, :c)"), {"c": community})
    codes = sorted({code for code, _ in _bases(ops)})
    session.execute(text("SELECT id FROM grid WHERE code = ANY(:c) ORDER BY id FOR UPDATE"),
                    {"c": codes})
    if stale := _stale(session, ops):
        raise StaleBase(f"changeset {changeset_id} is based on grids changed since: "
                        + "; ".join(f"{s['grid']} {s['message']}" for s in stale), stale)
    proposed = operations.propose(session, ops)
    touched = [p.grid_id for p in proposed.values() if p.grid_id]
    warned = session.scalars(text(
        "SELECT DISTINCT g.code FROM alert a JOIN grid g ON g.id = a.grid_id "
        "WHERE a.grid_id = ANY(:ids) AND a.state = 'active' ORDER BY g.code"),
        {"ids": touched}).all()
    if warned and changeset.override_by is None:
        raise Conflict(f"grids {', '.join(warned)} are under an active warning: the command "
                       f"centre must override (POST /api/changesets/{changeset_id}/override)")
    findings = validate(session, changeset)
    if errors := [f for f in findings if f["severity"] == "error"]:
        raise Rejected(f"changeset {changeset_id} does not validate: "
                       + "; ".join(f"{f['grid']} {f['message']}" for f in errors[:5]), findings)
    for key, value in (("changeset", changeset.id), ("author", user.id),
                       ("reason", changeset.reason)):
        session.execute(text("SELECT set_config(:k, :v, true)"),
                        {"k": f"gridgis.{key}", "v": str(value)})
    ids = _write_grids(session, proposed)
    for statement in sql_statements("publish_after"):
        session.execute(statement, {
            "reshaped": [p.grid_id for p in proposed.values() if p.reshaped and p.grid_id]
            + list(ids.values()),
            "retired": [p.grid_id for p in proposed.values() if p.action == "retire"]})
    for p in proposed.values():
        if p.action == "create":
            session.execute(text(
                "INSERT INTO app_user_grid (app_user_id, grid_id) "
                "SELECT app_user_id, :g FROM app_user_grid WHERE grid_id = ANY(:f) "
                "UNION SELECT id, :g FROM app_user WHERE username = ANY(:h) AND role = ANY(:r) "
                "ON CONFLICT DO NOTHING"), {"g": ids[p.code], "f": p.team_from, "h": p.heads,
                                            "r": list(auth.GRID_ROLES)})
        elif p.action == "change" and p.team_from:
            session.execute(text(
                "INSERT INTO app_user_grid (app_user_id, grid_id) SELECT app_user_id, :g "
                "FROM app_user_grid WHERE grid_id = ANY(:f) ON CONFLICT DO NOTHING"),
                {"g": p.grid_id, "f": p.team_from})
    # A retired grid's team leaves it, unless a warning is active on it: then the team keeps
    # working its checklist (made with the old boundary) until the warning ends.
    session.execute(text(
        "DELETE FROM app_user_grid ug WHERE ug.grid_id = ANY(:r) AND NOT EXISTS ("
        "SELECT 1 FROM alert a WHERE a.grid_id = ug.grid_id AND a.state = 'active')"),
        {"r": [p.grid_id for p in proposed.values() if p.action == "retire"]})
    totals.refresh_totals(session, concurrently=True)  # targeting reads on meanwhile
    changeset.state = "published"
    changeset.published_at = session.scalar(text("SELECT now()"))
    audit.record(session, user, "publish", "changeset", str(changeset.id),
                 {"grids": sorted(proposed), "reason": changeset.reason})
    return {"id": changeset.id, "state": changeset.state, "findings": findings,
            "grids": {p.code: p.action for p in proposed.values()}}


def _write_grids(session: Session, proposed: dict[str, Proposed]) -> dict[str, int]:
    """Write the proposed grids; return the ids of the new ones by code."""
    new_ids = {}
    for p in proposed.values():
        wkb = shapely.to_wkb(shapely.MultiPolygon(shapely.get_parts(p.geometry))) \
            if p.geometry is not None else None
        if p.action == "create":
            new_ids[p.code] = session.execute(text(
                "INSERT INTO grid (code, name, community_id, kind, boundary) VALUES "
                "(:code, :name, :community, :kind, ST_GeomFromWKB(:wkb, 4326)) RETURNING id"),
                {"code": p.code, "name": p.name, "community": p.community_id, "kind": p.kind,
                 "wkb": wkb}).scalar_one()
        elif p.action == "change":
            session.execute(text(
                "UPDATE grid SET boundary = ST_GeomFromWKB(:wkb, 4326), name = :name, "
                "kind = :kind, version = version + 1, updated_at = now() WHERE id = :id"),
                {"wkb": wkb, "name": p.name, "kind": p.kind, "id": p.grid_id})
        elif p.action == "retire":
            session.execute(text("UPDATE grid SET retired_at = now(), version = version + 1, "
                                 "updated_at = now() WHERE id = :id"), {"id": p.grid_id})
    return new_ids
