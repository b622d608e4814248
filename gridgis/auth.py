"""Users, roles and the grid scope of each user; passwords hashed with Argon2."""

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from pwdlib import PasswordHash
from sqlalchemy import TableClause, column, delete, insert, select, table, text
from sqlalchemy.orm import Session

from gridgis import access, audit
from gridgis.db import SessionDep
from gridgis.errors import Forbidden, InvalidInput, TooManyAttempts, Unauthorized
from gridgis.models import NO_PASSWORD, ROLES, AppUser, AuthToken, app_user_grid, app_user_unit
from gridgis.settings import get_settings

# Argon2id with pwdlib's recommended parameters.

password_hash = PasswordHash.recommended()
GRID_ROLES = ("grid_head", "grid_worker")
UNIT_ROLE = "unit_head"  # a community's or street's head: escalations reach them
MIN_PASSWORD_LENGTH = 8
_DUMMY_HASH = password_hash.hash("gridgis timing guard")
# The grid table as auth sees it (the core does not import the layers' models).
_grid = table("grid", column("id"), column("code"))
_unit = table("admin_unit", column("id"), column("code"), column("level"))


def add_user(session: Session, username: str, role: str, password: str,
             grid_codes: list[str], unit_codes: list[str] | None = None,
             phone: str | None = None, email: str | None = None) -> AppUser:
    """Return the created (or updated) user, its grids replaced by ``grid_codes`` (grid
    heads and workers) and its admin units by ``unit_codes`` (unit heads); a phone or e-mail
    address given replaces the one kept (alerts go there by SMS and mail)."""
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if grid_codes and role not in GRID_ROLES:
        raise InvalidInput(f"only {' and '.join(GRID_ROLES)} answer for grids, not {role}")
    unit_codes = unit_codes or []
    if unit_codes and role != UNIT_ROLE:
        raise InvalidInput(f"only a {UNIT_ROLE} answers for communities and streets, not {role}")
    if email is not None and "@" not in email:
        raise InvalidInput(f"{email!r} is not an e-mail address")
    grid_ids = _ids_of(session, _grid, grid_codes, "grid")
    unit_ids = _ids_of(session, _unit, unit_codes, "community or street")
    user = session.scalar(select(AppUser).where(AppUser.username == username))
    if user is None:
        user = AppUser(username=username, role=role, password_hash="")
        session.add(user)
    user.role = role
    user.password_hash = password_hash.hash(password)
    user.phone = phone or user.phone
    user.email = email or user.email
    session.flush()
    session.execute(delete(app_user_grid).where(app_user_grid.c.app_user_id == user.id))
    session.execute(delete(app_user_unit).where(app_user_unit.c.app_user_id == user.id))
    if grid_ids:
        session.execute(insert(app_user_grid),
                        [{"app_user_id": user.id, "grid_id": gid} for gid in grid_ids])
    if unit_ids:
        session.execute(insert(app_user_unit),
                        [{"app_user_id": user.id, "admin_unit_id": uid} for uid in unit_ids])
    return user


def _ids_of(session: Session, table: TableClause, codes: list[str], what: str) -> list[int]:
    """Return the ids of ``codes`` in ``table``; raise InvalidInput naming unknown ones."""
    if not codes:
        return []
    query = select(table.c.code, table.c.id).where(table.c.code.in_(codes))
    if table is _unit:
        query = query.where(table.c.level.in_(("community", "street")))
    found: dict[str, int] = {code: id_ for code, id_ in session.execute(query)}
    unknown = sorted(set(codes) - set(found))
    if unknown:
        raise InvalidInput(f"unknown {what} code(s): {', '.join(unknown)}")
    return list(found.values())


def verify_password(user: AppUser, password: str) -> bool:
    """Return whether ``password`` is the user's (never, for a user given no password)."""
    if user.password_hash == NO_PASSWORD:
        return False
    return password_hash.verify(password, user.password_hash)


LOGIN_FAILURES = 5
LOGIN_WINDOW_S = 900


def authenticate(session: Session, username: str, password: str) -> AppUser:
    """Return the active user with these credentials; raise Unauthorized otherwise.

    Each failure is audited (and committed, whatever the caller does next); after
    LOGIN_FAILURES failures for a username within LOGIN_WINDOW_S, every attempt is refused
    with TooManyAttempts (429) until the window has passed: guessing is slowed to a crawl,
    and the audit log shows who tried. Unknown usernames count the same as known ones.
    """
    failures = session.scalar(text(
        "SELECT count(*) FROM audit_log WHERE action = 'login_failed' AND entity = 'app_user' "
        "AND entity_id = :u AND at > now() - make_interval(secs => :window)"),
        {"u": username, "window": LOGIN_WINDOW_S})
    if (failures or 0) >= LOGIN_FAILURES:
        raise TooManyAttempts(f"too many failed log-ins for {username}: try again in "
                              f"{LOGIN_WINDOW_S // 60} minutes", LOGIN_WINDOW_S)
    user = session.scalar(select(AppUser).where(AppUser.username == username))
    if user is None:
        password_hash.verify(password, _DUMMY_HASH)  # as slow as a real check: no user oracle
    if user is None or not user.active or not verify_password(user, password):
        audit.record(session, None, "login_failed", "app_user", username)
        session.commit()
        raise Unauthorized("unknown user or wrong password")
    return user


def issue_token(session: Session, user: AppUser) -> tuple[str, datetime]:
    """Return a new bearer token for ``user`` and when it expires (only its hash is kept)."""
    token = secrets.token_urlsafe(32)
    expires_at = datetime.now(UTC) + timedelta(minutes=get_settings().token_minutes)
    session.add(AuthToken(token_hash=token_digest(token), app_user_id=user.id,
                          expires_at=expires_at))
    return token, expires_at


def user_for_token(session: Session, token: str) -> AppUser | None:
    """Return the user a live (unexpired, unrevoked) token belongs to, or None."""
    return session.scalar(
        select(AppUser)
        .join(AuthToken, AuthToken.app_user_id == AppUser.id)
        .where(AuthToken.token_hash == token_digest(token), AuthToken.revoked_at.is_(None),
               AuthToken.expires_at > datetime.now(UTC), AppUser.active)
    )


def grid_ids_of(session: Session, user: AppUser) -> set[int]:
    """Return the ids of the grids a user answers for."""
    rows = session.scalars(
        select(app_user_grid.c.grid_id).where(app_user_grid.c.app_user_id == user.id)
    )
    return set(rows)


def watched_grid_ids(session: Session, user: AppUser) -> set[int]:
    """Return the ids of the grids a user follows alerts for: a grid team's own grids, a unit
    head's grids in their communities and streets. Not for personal data: that is
    ``grid_ids_of``, and a unit head reads no residents."""
    if user.role != UNIT_ROLE:
        return grid_ids_of(session, user)
    units = select(app_user_unit.c.admin_unit_id).where(app_user_unit.c.app_user_id == user.id)
    community = table("admin_unit", column("id"), column("parent_id")).alias("community")
    grid = table("grid", column("id"), column("community_id"))
    rows = session.scalars(
        select(grid.c.id).join(community, community.c.id == grid.c.community_id)
        .where(community.c.id.in_(units) | community.c.parent_id.in_(units)))
    return set(rows)


def token_digest(token: str) -> str:
    """Return what is kept of a token: its SHA-256, hex (``auth_token.token_hash``)."""
    return hashlib.sha256(token.encode()).hexdigest()


oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)
# Pages log in with a cookie holding the same kind of token as the API's bearer tokens.
SESSION_COOKIE = "gridgis_session"
# A request that changes something on the strength of the cookie alone must carry this header:
# a form on another site cannot set it (with SameSite=Strict, a second guard against CSRF).
CSRF_HEADER = "X-Requested-With"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def caller(request: Request, session: SessionDep,
           token: Annotated[str | None, Depends(oauth2_scheme)]) -> AppUser | None:
    """Return the caller by bearer token or session cookie, or None (a FastAPI dependency).
    Raise Forbidden when the caller's role may not use the route (``gridgis.access``)."""
    if token:
        user = user_for_token(session, token)
    elif cookie := request.cookies.get(SESSION_COOKIE):
        if request.method not in SAFE_METHODS and not request.headers.get(CSRF_HEADER):
            raise Forbidden(
                f"a change made with the session cookie needs the {CSRF_HEADER} header")
        user = user_for_token(session, cookie)
    else:
        return None
    if user is not None:
        try:
            access.check(request, user.role)
        except Forbidden:  # kept, whatever the request does next: who tried what
            audit.record(session, user, "access-denied", "route", access.describe(request))
            session.commit()
            raise
    return user


def presented_token(request: Request, bearer: str | None) -> str | None:
    """Return the token a request presents: its bearer token, else its session cookie, else
    None. For routes that only read: ``caller`` also wants the CSRF header of a change."""
    return bearer or request.cookies.get(SESSION_COOKIE) or None


LOG_IN_FIRST = "log in first: a bearer token from /api/auth/token, or /login"


def current_user(user: Annotated[AppUser | None, Depends(caller)]) -> AppUser:
    """Return the caller (a FastAPI dependency); raise Unauthorized when not logged in."""
    if user is None:
        raise Unauthorized(LOG_IN_FIRST)
    return user


CurrentUser = Annotated[AppUser, Depends(current_user)]
OptionalUser = Annotated[AppUser | None, Depends(caller)]


def revoke_token(session: Session, token: str) -> None:
    """Revoke a token (log out); unknown tokens are ignored."""
    row = session.scalar(select(AuthToken).where(AuthToken.token_hash == token_digest(token)))
    if row is not None and row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)


def require_role(user: AppUser, *roles: str) -> None:
    """Raise Forbidden unless the user has one of ``roles``."""
    if user.role not in roles:
        raise Forbidden(f"the {user.role} role may not do this")


def seconds_until(moment: datetime) -> int:
    """Return whole seconds from now until ``moment`` (0 if past)."""
    return max(0, int((moment - datetime.now(UTC)).total_seconds()))
