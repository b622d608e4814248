"""HTTP for checklists: a warning's checklists with progress, its roll-up by unit (now, at a
past moment, or as a time series), one checklist's items in order of urgency, and one item
read (ETag) and changed (If-Match)."""

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import AwareDatetime

from gridgis.alerts import checklist_items, rollup
from gridgis.alerts.checklist_items import ItemOut, ItemPatch
from gridgis.auth import CurrentUser
from gridgis.db import SessionDep
from gridgis.params import IfMatch

router = APIRouter(prefix="/api/checklists", tags=["checklists"])
Warning = Annotated[str, Query(min_length=1, max_length=200,
                               description="a warning's identifier (its chain is read)")]


@router.get("", response_model=list[checklist_items.ChecklistProgress])
def list_checklists(session: SessionDep, user: CurrentUser, warning: str | None = None,
                    grid: str | None = None,
                    state: Literal["open", "closed", "stood_down"] | None = None,
                    limit: Annotated[int, Query(ge=1, le=20000)] = 5000
                    ) -> list[checklist_items.ChecklistProgress]:
    """Checklists with progress, soonest due first (a grid team: its own grids)."""
    return checklist_items.progress(session, user, warning, grid, limit, state)


@router.get("/rollup", response_model=list[rollup.UnitProgress])
def read_rollup(session: SessionDep, user: CurrentUser, warning: Warning,
                level: rollup.Level = "district", at: AwareDatetime | None = None
                ) -> list[rollup.UnitProgress]:
    """Progress, head-counts and shelters per unit under a warning, now or at ``at``."""
    return rollup.rollup(session, user, warning, level, at)


@router.get("/series", response_model=list[rollup.UnitProgress])
def read_series(session: SessionDep, user: CurrentUser, warning: Warning,
                level: rollup.Level = "district",
                step: Annotated[int | None, Query(ge=10, le=86400)] = None,
                since: AwareDatetime | None = None, until: AwareDatetime | None = None
                ) -> list[rollup.UnitProgress]:
    """Progress per unit every ``step`` seconds, for the after-action review."""
    return rollup.series(session, user, warning, level, step, since, until)


@router.get("/{checklist_id}/items", response_model=list[ItemOut])
def list_items(session: SessionDep, user: CurrentUser, checklist_id: int) -> list[ItemOut]:
    """A checklist's items, most urgent first."""
    return checklist_items.list_items(session, user, checklist_id)


@router.get("/items/{item_id}", response_model=ItemOut)
def read_item(session: SessionDep, user: CurrentUser, item_id: int,
              response: Response) -> ItemOut:
    """One item; its ETag is its version."""
    item = checklist_items.read_item(session, user, item_id)
    response.headers["ETag"] = f'"{item.version}"'
    return item


@router.patch("/items/{item_id}", response_model=ItemOut)
def patch_item(session: SessionDep, user: CurrentUser, item_id: int, version: IfMatch,
               change: ItemPatch, response: Response) -> ItemOut:
    """Change one item (If-Match: its version): 412 with the current item when stale."""
    item = checklist_items.patch_item(session, user, item_id, version, change)
    session.commit()
    response.headers["ETag"] = f'"{item.version}"'
    return item
