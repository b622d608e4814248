"""HTTP for boundary planning: changesets, their operations, validation, impact preview,
the command centre's override, publishing; grid history and the grids as of any time."""

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from geoalchemy2.shape import to_shape
from pydantic import AwareDatetime, BaseModel, Field
from shapely.geometry import mapping
from sqlalchemy import select, text

from gridgis import auth
from gridgis.auth import CurrentUser
from gridgis.db import SessionDep
from gridgis.errors import NotFound
from gridgis.planning import changesets
from gridgis.planning.models import Changeset, ChangesetOperation
from gridgis.planning.operations import OperationIn

router = APIRouter(tags=["planning"])
GridCode = Annotated[str, Path(pattern=r"^\d{15}$")]
READERS = ("planner", "admin", "command")


class ChangesetIn(BaseModel):
    reason: str = Field(min_length=3, max_length=1000, description="why the grids change")


def _changeset_out(session: SessionDep, changeset: Changeset) -> dict[str, Any]:
    ops = changesets.operations_of(session, changeset.id)
    return {"id": changeset.id, "reason": changeset.reason, "state": changeset.state,
            "author": session.scalar(text("SELECT username FROM app_user WHERE id = :i"),
                                     {"i": changeset.app_user_id}),
            "created_at": changeset.created_at, "published_at": changeset.published_at,
            "override": changeset.override_by is not None, "findings": changeset.findings,
            "operations": [_operation_out(o) for o in ops]}


def _operation_out(operation: ChangesetOperation) -> dict[str, Any]:
    geometry = (mapping(to_shape(operation.geometry)) if operation.geometry is not None
                else None)
    return {"id": operation.id, "op": operation.op, "grid": operation.grid,
            "base_version": operation.base_version, "params": operation.params,
            "geometry": geometry}


@router.post("/api/changesets", status_code=201)
def open_changeset(session: SessionDep, user: CurrentUser, body: ChangesetIn) -> dict[str, Any]:
    """Open a changeset (planners and admins)."""
    changeset = changesets.open_changeset(session, user, body.reason)
    session.commit()
    return _changeset_out(session, changeset)


@router.get("/api/changesets")
def list_changesets(session: SessionDep, user: CurrentUser,
                    state: str | None = None) -> list[dict[str, Any]]:
    """Changesets, newest first."""
    auth.require_role(user, *READERS)
    query = select(Changeset).order_by(Changeset.id.desc()).limit(500)
    if state:
        query = query.where(Changeset.state == state)
    return [{"id": c.id, "reason": c.reason, "state": c.state, "created_at": c.created_at,
             "published_at": c.published_at} for c in session.scalars(query)]


@router.get("/api/changesets/{changeset_id}")
def read_changeset(session: SessionDep, user: CurrentUser, changeset_id: int) -> dict[str, Any]:
    """A changeset with its operations and its last findings."""
    auth.require_role(user, *READERS)
    changeset = session.get(Changeset, changeset_id)
    if changeset is None:
        raise NotFound(f"no changeset {changeset_id}")
    return _changeset_out(session, changeset)


@router.post("/api/changesets/{changeset_id}/operations", status_code=201)
def add_operation(session: SessionDep, user: CurrentUser, changeset_id: int,
                  body: OperationIn) -> dict[str, Any]:
    """Add one operation; 422 with the geometry at fault when it cannot be done."""
    operation = changesets.add_operation(session, user, changeset_id, body)
    session.commit()
    return _operation_out(operation)


@router.post("/api/changesets/{changeset_id}/validate")
def validate(session: SessionDep, user: CurrentUser, changeset_id: int) -> dict[str, Any]:
    """Validate: the findings, each with its geometry (errors block publishing)."""
    auth.require_role(user, *changesets.PLANNERS)
    findings = changesets.validate(session, changesets.get_open(session, changeset_id))
    session.commit()
    return {"id": changeset_id, "ok": not any(f["severity"] == "error" for f in findings),
            "findings": findings}


@router.get("/api/changesets/{changeset_id}/preview")
def preview(session: SessionDep, user: CurrentUser, changeset_id: int) -> dict[str, Any]:
    """What publishing would move, and the open alerts and checklists it touches."""
    auth.require_role(user, *READERS)
    return changesets.preview(session, changesets.get_open(session, changeset_id))


@router.post("/api/changesets/{changeset_id}/abandon")
def abandon(session: SessionDep, user: CurrentUser, changeset_id: int) -> dict[str, Any]:
    """Put a changeset aside for good; it stays as a record."""
    changeset = changesets.abandon(session, user, changeset_id)
    session.commit()
    return _changeset_out(session, changeset)


@router.post("/api/changesets/{changeset_id}/override")
def override(session: SessionDep, user: CurrentUser, changeset_id: int) -> dict[str, Any]:
    """The command centre lets the changeset publish over grids under an active warning."""
    changeset = changesets.override(session, user, changeset_id)
    session.commit()
    return _changeset_out(session, changeset)


@router.post("/api/changesets/{changeset_id}/publish")
def publish(session: SessionDep, user: CurrentUser, changeset_id: int) -> dict[str, Any]:
    """Publish in one transaction: 409 when stale or under a warning, 422 with the findings
    when it does not validate; nothing is written then."""
    result = changesets.publish(session, user, changeset_id)
    session.commit()
    return result


@router.get("/api/grids/{code}/history")
def grid_history(session: SessionDep, user: CurrentUser, code: GridCode) -> list[dict[str, Any]]:
    """Every version of a grid: valid from / to, author, changeset, reason, boundary."""
    auth.require_role(user, *READERS)
    rows = session.execute(text("""
        SELECT v.version, v.name, v.valid_from, v.valid_to, u.username AS author,
               v.changeset_id AS changeset, v.reason, CAST(ST_AsGeoJSON(v.boundary, 7) AS json)
               AS boundary
        FROM grid_version v LEFT JOIN app_user u ON u.id = v.app_user_id
        WHERE v.grid_id = (SELECT id FROM grid WHERE code = :code)
        ORDER BY v.valid_from, v.id"""), {"code": code}).mappings().all()
    if not rows:
        raise NotFound(f"no grid {code}")
    return [dict(row) for row in rows]


@router.get("/api/planning/grids")
def grids_as_of(session: SessionDep, user: CurrentUser, at: AwareDatetime,
                within: Annotated[str | None, Query(pattern=r"^\d{6,15}$")] = None
                ) -> Response:
    """The grids as they were at ``at`` (GeoJSON), from their versions."""
    auth.require_role(user, *READERS)
    body = session.execute(text("""
        SELECT json_build_object('type', 'FeatureCollection', 'features', coalesce(json_agg(
            json_build_object('type', 'Feature', 'id', v.code,
                              'geometry', CAST(ST_AsGeoJSON(v.boundary, 7) AS json),
                              'properties', json_build_object(
                                  'code', v.code, 'name', v.name, 'version', v.version,
                                  'valid_from', v.valid_from, 'valid_to', v.valid_to))
            ORDER BY v.code), '[]'))
        FROM grid_version v
        WHERE v.valid_from <= :at AND (v.valid_to IS NULL OR v.valid_to > :at)
          AND (CAST(:within AS text) IS NULL OR starts_with(v.code, :within))"""),
        {"at": at, "within": within}).scalar_one()
    return Response(json.dumps(body, default=str), media_type="application/geo+json")
