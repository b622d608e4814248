"""A boundary file as a changeset: each feature becomes an operation (``create`` for a new
code, ``modify`` for a live grid), checked as any operation, then the whole validated (and,
when asked and clean, published). ``gridgis import grids FILE --changeset``."""

from pathlib import Path
from typing import Any

import shapely
from sqlalchemy import select
from sqlalchemy.orm import Session

from gridgis.errors import InvalidInput
from gridgis.layers.boundaries import read_layer
from gridgis.layers.models import Grid
from gridgis.models import AppUser
from gridgis.planning import changesets
from gridgis.planning.models import Changeset
from gridgis.planning.operations import OperationIn


def changeset_from_file(session: Session, planner: str, path: Path, reason: str,
                        publish: bool = False) -> tuple[Changeset, list[dict[str, Any]]]:
    """Open a changeset of ``path``'s grids for ``planner`` and validate it (publish it too
    if asked and it validates); return it and its findings. The caller commits."""
    user = session.scalar(select(AppUser).where(AppUser.username == planner,
                                                AppUser.active))
    if user is None:
        raise InvalidInput(f"no user {planner}: name a planner (gridgis user add)")
    frame = read_layer(path, ("code",))
    changeset = changesets.open_changeset(session, user, reason)
    live = set(session.scalars(select(Grid.code).where(Grid.code.in_(list(frame["code"])),
                                                       Grid.retired_at.is_(None))))
    for row in frame.itertuples(index=False):
        body = OperationIn.model_validate({
            "op": "modify" if row.code in live else "create", "grid": row.code,
            "geometry": shapely.geometry.mapping(row.geometry),
            **{key: getattr(row, key) for key in ("name", "kind")
               if isinstance(getattr(row, key, None), str)}})
        changesets.add_operation(session, user, changeset.id, body)
    if publish:
        result = changesets.publish(session, user, changeset.id)
        return changeset, result["findings"]
    return changeset, changesets.validate(session, changeset)
