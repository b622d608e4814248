"""HTTP for one row at a time: read with an ETag, create, change and retire with If-Match.

The ETag of a row is its version (``"7"``). A change sends ``If-Match: "7"``; if the row has
moved on meanwhile the answer is 412 with the current row, and nothing is changed.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response, status
from pydantic import BaseModel

from gridgis.auth import CurrentUser, current_user
from gridgis.db import SessionDep
from gridgis.layers import edits, residency, schemas, summaries
from gridgis.params import CODE, IfMatch

router = APIRouter(prefix="/api", tags=["edits"], dependencies=[Depends(current_user)])
GEOJSON = "application/geo+json"
CodePath = Annotated[str, Path(pattern=CODE)]


class Saved(BaseModel):
    code: str
    version: int




def saved(response: Response, code: str, version: int) -> Saved:
    response.headers["ETag"] = f'"{version}"'
    return Saved(code=code, version=version)


def add_layer_routes(layer: str, patch_model: type[BaseModel],
                     create_model: type[BaseModel] | None) -> None:
    """Register read, change, retire (and create) for one layer."""

    def read_one(session: SessionDep, code: CodePath) -> Response:
        feature, version = edits.read_feature(session, layer, code)
        return Response(feature, media_type=GEOJSON, headers={"ETag": f'"{version}"'})

    def change(session: SessionDep, user: CurrentUser, code: CodePath, version: IfMatch,
               patch: patch_model, response: Response) -> Saved:  # type: ignore[valid-type]
        new_version = edits.update_feature(session, user, layer, code, version, patch)
        session.commit()
        return saved(response, code, new_version)

    def retire(session: SessionDep, user: CurrentUser, code: CodePath, version: IfMatch,
               response: Response) -> Saved:
        edits.retire_feature(session, user, layer, code, version)
        session.commit()
        return saved(response, code, version + 1)

    router.add_api_route(f"/{layer}/{{code}}", read_one, methods=["GET"],
                         response_model=schemas.Feature, summary=f"One of {layer}")
    router.add_api_route(f"/{layer}/{{code}}", change, methods=["PATCH"],
                         response_model=Saved, summary=f"Change one of {layer}")
    router.add_api_route(f"/{layer}/{{code}}/retire", retire, methods=["POST"],
                         response_model=Saved, summary=f"Retire one of {layer}")
    if create_model is None:
        return

    def create(session: SessionDep, user: CurrentUser, body: create_model,  # type: ignore[valid-type]
               response: Response) -> Saved:
        code = edits.create_feature(session, user, layer, body)
        session.commit()
        response.headers["Location"] = f"/api/{layer}/{code}"
        return saved(response, code, 1)

    router.add_api_route(f"/{layer}", create, methods=["POST"], response_model=Saved,
                         status_code=status.HTTP_201_CREATED, summary=f"Add to {layer}")


add_layer_routes("admin-units", schemas.AdminUnitPatch, None)
add_layer_routes("grids", schemas.GridPatch, None)
add_layer_routes("buildings", schemas.BuildingPatch, schemas.BuildingIn)
add_layer_routes("stations", schemas.StationPatch, schemas.StationIn)
add_layer_routes("shelters", schemas.ShelterPatch, schemas.ShelterIn)


@router.get("/admin-units/{code}/summary", response_model=schemas.Summary)
@router.get("/grids/{code}/summary", response_model=schemas.Summary)
def summary(session: SessionDep, code: CodePath) -> schemas.Summary:
    """Counts inside an admin unit or a grid (nothing personal)."""
    return summaries.summarise(session, code)


@router.post("/residents", response_model=Saved, status_code=status.HTTP_201_CREATED)
def register_resident(session: SessionDep, user: CurrentUser, body: schemas.ResidentIn,
                      response: Response) -> Saved:
    """Register a person in a building of the caller's grids (人来登记)."""
    code = residency.register(session, user, body)
    session.commit()
    response.headers["Location"] = f"/api/residents/{code}"
    return saved(response, code, 1)


@router.patch("/residents/{code}", response_model=Saved)
def update_resident(session: SessionDep, user: CurrentUser, code: CodePath, version: IfMatch,
                    patch: schemas.ResidentPatch, response: Response) -> Saved:
    """Change a resident's details (人在更新)."""
    new_version = residency.update(session, user, code, version, patch)
    session.commit()
    return saved(response, code, new_version)


@router.post("/residents/{code}/move-out", response_model=Saved)
def move_out_resident(session: SessionDep, user: CurrentUser, code: CodePath,
                      version: IfMatch, response: Response) -> Saved:
    """Record that a resident has left (人走注销); nothing is deleted."""
    new_version = residency.move_out(session, user, code, version)
    session.commit()
    return saved(response, code, new_version)


@router.post("/residents/{code}/move-in", response_model=Saved)
def move_in_resident(session: SessionDep, user: CurrentUser, code: CodePath,
                     version: IfMatch, body: schemas.MoveIn, response: Response) -> Saved:
    """A resident who moved out lives in a building again."""
    new_version = residency.move_in(session, user, code, version, body)
    session.commit()
    return saved(response, code, new_version)


@router.get("/residents/{code}/history", response_model=list[dict[str, Any]])
def resident_history(session: SessionDep, user: CurrentUser,
                     code: CodePath) -> list[dict[str, Any]]:
    """Every registration, change and move of a resident the caller may see; audited."""
    events = residency.history(session, user, code)
    session.commit()
    return events
