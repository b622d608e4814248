"""Users, roles and the grid scope of each user; passwords hashed with Argon2."""

from pwdlib import PasswordHash
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from gridgis.errors import InvalidInput
from gridgis.layers.models import Grid
from gridgis.models import ROLES, AppUser, app_user_grid

# Argon2id with pwdlib's recommended parameters.
password_hash = PasswordHash.recommended()
GRID_ROLES = ("grid_head", "grid_worker")
MIN_PASSWORD_LENGTH = 8


def add_user(session: Session, username: str, role: str, password: str,
             grid_codes: list[str]) -> AppUser:
    """Return the created (or updated) user, with its grids replaced by ``grid_codes``."""
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if grid_codes and role not in GRID_ROLES:
        raise InvalidInput(f"only {' and '.join(GRID_ROLES)} answer for grids, not {role}")
    grid_ids = dict(
        session.execute(select(Grid.code, Grid.id).where(Grid.code.in_(grid_codes))).all()
    )
    unknown = sorted(set(grid_codes) - set(grid_ids))
    if unknown:
        raise InvalidInput(f"unknown grid code(s): {', '.join(unknown)}")
    user = session.scalar(select(AppUser).where(AppUser.username == username))
    if user is None:
        user = AppUser(username=username, role=role, password_hash="")
        session.add(user)
    user.role = role
    user.password_hash = password_hash.hash(password)
    session.flush()
    session.execute(delete(app_user_grid).where(app_user_grid.c.app_user_id == user.id))
    if grid_ids:
        session.execute(
            insert(app_user_grid),
            [{"app_user_id": user.id, "grid_id": gid} for gid in grid_ids.values()],
        )
    return user


def verify_password(user: AppUser, password: str) -> bool:
    """Return whether ``password`` is the user's."""
    return password_hash.verify(password, user.password_hash)
