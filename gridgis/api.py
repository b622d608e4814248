"""HTTP of the core: health and log-in."""

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from gridgis import auth, db
from gridgis.db import SessionDep
from gridgis.errors import DatabaseUnavailable

router = APIRouter(tags=["core"])
logger = logging.getLogger(__name__)


class Health(BaseModel):
    status: str
    database: str
    postgresql: str | None = None
    postgis: str | None = None


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


@router.get("/health", response_model=Health)
def health(response: Response) -> Health:
    """Whether the database answers and has PostGIS (503 when it does not)."""
    try:
        server, postgis = db.postgis_version(db.get_engine())
    except DatabaseUnavailable as exc:
        logger.error("health: %s", exc)  # the address stays in the log, not the answer
        response.status_code = 503
        return Health(status="unavailable", database="down")
    return Health(status="ok", database="up", postgresql=server, postgis=postgis)


@router.post("/api/auth/token", response_model=Token)
def log_in(session: SessionDep,
           form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Token:
    """Exchange a user name and password (OAuth2 password form) for a bearer token."""
    user = auth.authenticate(session, form.username, form.password)
    token, expires_at = auth.issue_token(session, user)
    session.commit()
    return Token(access_token=token, expires_in=auth.seconds_until(expires_at))
