"""HTTP for warnings: one endpoint takes CAP 1.2 XML, a typhoon advisory or a drawn area."""

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from gridgis import idempotency
from gridgis.alerts import flows, intake, schemas
from gridgis.auth import CurrentUser, current_user
from gridgis.db import SessionDep
from gridgis.errors import InvalidInput

router = APIRouter(prefix="/api/warnings", tags=["warnings"],
                   dependencies=[Depends(current_user)])
EXAMPLE = {"area": {"type": "Polygon", "coordinates": [[[113.50, 22.10], [113.56, 22.10],
                                                        [113.56, 22.15], [113.50, 22.10]]]},
           "level": "orange"}


@router.post("", response_model=schemas.IssueResult, openapi_extra={"requestBody": {
    "required": True, "description": "CAP 1.2 XML (application/cap+xml or application/xml), "
    "a typhoon advisory (JSON with `storm`) or a drawn area (JSON with `area`)",
    "content": {"application/json": {"example": EXAMPLE},
                "application/cap+xml": {"schema": {"type": "string"}}}}})
async def issue_warning(
    request: Request, response: Response, session: SessionDep, user: CurrentUser,
    dry_run: bool = False,
    min_share: Annotated[float, Query(ge=0, le=1, description=(
        "share of a grid an area must cover to reach it (0: any overlap)"))] = 0.0,
    idempotency_key: Annotated[str | None, Header(alias=idempotency.HEADER, description=(
        "any unique string: a retry with the same key (after a lost answer) gets the first "
        "answer back and issues nothing twice"))] = None,
) -> schemas.IssueResult:
    """Issue a warning: every grid it reaches gets an alert and its outbox rows in the same
    transaction, then its checklist's items; updates and cancels follow their
    ``references``. ``dry_run`` writes nothing."""
    body = await request.body()
    xml = "xml" in request.headers.get("content-type", "")
    result, replayed = await run_in_threadpool(
        issue_from_body, session, user, body, xml, dry_run, min_share, idempotency_key)
    if replayed:
        response.headers[idempotency.REPLAYED_HEADER] = "true"
    return result


def issue_from_body(session: SessionDep, user: CurrentUser, body: bytes, xml: bool,
                    dry_run: bool, min_share: float,
                    key: str | None) -> tuple[schemas.IssueResult, bool]:
    """Return the result of issuing the warning in ``body``, and whether it is the stored
    result of an earlier request with the same idempotency key."""
    if key is not None and not dry_run:
        stored = idempotency.claim(session, user, key, idempotency.fingerprint(
            "POST /api/warnings", str(xml), str(min_share), body))
        if stored is not None:
            result = schemas.IssueResult.model_validate(stored)
            if result.identifier:  # the sweep may have made them since
                result.checklists_made = flows.checklists_made(session, result.identifier)
            return result, True
    incoming = (intake.read_cap(session, body) if xml
                else read_json(session, user.username, body))

    def keep_answer(result: schemas.IssueResult) -> None:
        if key is not None:
            idempotency.answer(session, user, key, result.model_dump(mode="json"))

    return flows.issue_committed(session, user, incoming, min_share=min_share,
                                 dry_run=dry_run, on_accepted=keep_answer), False


def read_json(session: SessionDep, username: str, body: bytes) -> intake.Incoming:
    """Return a JSON warning: an advisory (it has ``storm``) or a drawn area (``area``)."""
    try:
        document: Any = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"not JSON: {exc}") from None
    except RecursionError:
        raise InvalidInput("JSON nested too deeply") from None
    if isinstance(document, dict) and "storm" in document:
        return intake.read_advisory(session, document)
    try:
        drawn = schemas.DrawnWarningIn.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"{where}: {first['msg']}") from None
    return intake.read_drawn(drawn, username)
