"""HTTP for layer files: import an upload (plan or apply), export a layer as a file."""

import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel
from starlette.background import BackgroundTask

from gridgis import auth
from gridgis.auth import CurrentUser
from gridgis.db import SessionDep
from gridgis.errors import GridGisError, InvalidInput, status_of
from gridgis.layers import export, files
from gridgis.layers.file_checks import ImportRefused
from gridgis.params import CODE

router = APIRouter(prefix="/api", tags=["files"])
CODES_SHOWN = 1000
Layer = Annotated[str, PathParam(pattern=r"^[a-z-]{1,20}$")]
Flag = Annotated[bool, Form()]


class ImportAnswer(BaseModel):
    """What an import did (or, for a dry run, would do); codes: the first 1000 of each."""

    layer: str
    source: str
    rows: int
    applied: bool
    added: int
    changed: int
    retired: int
    added_codes: list[str]
    changed_codes: list[str]
    retired_codes: list[str]


class BadRow(BaseModel):
    row: int
    field: str
    reason: str
    code: str | None


class Refusal(BaseModel):
    # A message; FastAPI's list when the request itself does not fit (no file sent).
    detail: str | list[dict[str, Any]]
    problems: list[BadRow] = []


@router.post("/import/{layer}", response_model=ImportAnswer, responses={
    413: {"model": Refusal}, 422: {"model": Refusal, "description": "every bad row"}})
def import_file(session: SessionDep, user: CurrentUser, layer: Layer, file: UploadFile,
                dry_run: Flag = False, gcj02: Flag = False,
                retire_missing: Flag = False) -> Any:
    """Import a layer file (planners and admins; residents: admins): all rows or none."""
    auth.require_role(user, *files.import_roles(layer))
    with tempfile.TemporaryDirectory(prefix="gridgis-import-") as folder:
        try:
            path = files.save_upload(file.file, file.filename, Path(folder),
                                     files.import_limit_mb())
            plan = (files.plan_import(session, layer, path, gcj02=gcj02,
                                      retire_missing=retire_missing) if dry_run else
                    files.apply_import(session, layer, path, gcj02=gcj02,
                                       retire_missing=retire_missing, user=user))
        except InvalidInput as exc:
            return refusal(exc)
    session.commit()  # a dry run wrote nothing but its temporary table
    return ImportAnswer(layer=layer, source=plan.source, rows=plan.rows, applied=plan.applied,
                        added=len(plan.added), changed=len(plan.changed),
                        retired=len(plan.retired), added_codes=plan.added[:CODES_SHOWN],
                        changed_codes=plan.changed[:CODES_SHOWN],
                        retired_codes=plan.retired[:CODES_SHOWN])


def refusal(exc: InvalidInput) -> JSONResponse:
    """Answer a refused file with its status, message and every bad row."""
    status = status_of(exc)
    problems = [asdict(p) for p in exc.problems] if isinstance(exc, ImportRefused) else []
    return JSONResponse({"detail": str(exc), "problems": problems}, status_code=status)


@router.get("/export/{layer}", response_class=FileResponse, responses={200: {"content": {
    media: {} for _, _, media in export.EXPORT_FORMATS.values()}}})
def export_file(session: SessionDep, user: CurrentUser, layer: Layer,
                file_format: Annotated[str, Query(alias="format",
                                                  pattern="^(geojson|gpkg|shp|csv)$")] = "geojson",
                within: Annotated[str | None, Query(pattern=CODE)] = None) -> FileResponse:
    """A layer's live rows as a file in EPSG:4326; residents: admins only, audited."""
    _, suffix, media = export.EXPORT_FORMATS[file_format]
    folder = Path(tempfile.mkdtemp(prefix="gridgis-export-"))
    path = folder / f"{layer}{suffix}"
    try:
        export.export_layer(session, layer, path, file_format=file_format, within=within,
                           user=user)
    except GridGisError:
        session.commit()  # the audit entry of a refusal stands
        shutil.rmtree(folder, ignore_errors=True)
        raise
    session.commit()
    return FileResponse(path, media_type=media, filename=path.name,
                        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))
