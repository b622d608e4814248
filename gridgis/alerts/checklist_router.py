"""HTTP for checklists: a warning's checklists with progress, one checklist's items in
order of urgency, and one item read (ETag) and changed (If-Match)."""

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel
from sqlalchemy import text

from gridgis import auth
from gridgis.alerts import checklist_items
from gridgis.alerts.checklist_items import ItemOut, ItemPatch
from gridgis.auth import CurrentUser
from gridgis.db import SessionDep
from gridgis.errors import NotFound
from gridgis.params import IfMatch

router = APIRouter(prefix="/api/checklists", tags=["checklists"])

PROGRESS_SQL = text("""
SELECT c.id, g.code AS grid, w.identifier AS warning, c.state, c.due_at, c.unplaced,
       count(i.id) AS items,
       count(i.id) FILTER (WHERE i.state IN ('done', 'not_needed')) AS finished,
       count(i.id) FILTER (WHERE i.state = 'unable') AS unable,
       coalesce(sum(i.people) FILTER (WHERE i.kind = 'transfer'), 0) AS to_transfer,
       coalesce(sum(i.head_count) FILTER (WHERE i.stage = 'left_home'), 0) AS on_the_way,
       coalesce(sum(i.head_count) FILTER (WHERE i.stage = 'checked_in'), 0) AS checked_in,
       c.state = 'open' AND c.due_at IS NOT NULL AND count(i.id) > 0 AND (
           now() >= c.due_at AND count(i.id) FILTER (WHERE i.state NOT IN
                                                      ('done', 'not_needed', 'unable')) > 0
           OR (count(i.id) FILTER (WHERE i.state NOT IN ('done', 'not_needed', 'unable')))::float
              / count(i.id) > extract(epoch FROM c.due_at - now())
              / greatest(extract(epoch FROM c.due_at - c.created_at), 1)) AS at_risk
FROM checklist c
JOIN alert a ON a.id = c.alert_id
JOIN warning w ON w.id = a.warning_id
JOIN grid g ON g.id = c.grid_id
LEFT JOIN checklist_item i ON i.checklist_id = c.id
WHERE (CAST(:warning AS text) IS NULL OR w.identifier = :warning
       OR a.warning_id IN (SELECT id FROM warning WHERE :warning = ANY("references")))
  AND (CAST(:grid AS text) IS NULL OR g.code = :grid)
  AND (CAST(:grids AS int[]) IS NULL OR c.grid_id = ANY(:grids))
GROUP BY c.id, g.code, w.identifier
ORDER BY c.due_at NULLS LAST, g.code
LIMIT :limit
""")


class ChecklistProgress(BaseModel):
    """A grid's checklist and how far it is: ``at_risk`` when the work left is a larger share
    than the time left before its due time (gale ETA less the margin), or it is overdue."""

    id: int
    grid: str
    warning: str
    state: str
    due_at: object
    unplaced: int  # people to move with no shelter found
    items: int
    finished: int
    unable: int
    to_transfer: int
    on_the_way: int  # left home, not checked in
    checked_in: int
    at_risk: bool


@router.get("", response_model=list[ChecklistProgress])
def list_checklists(session: SessionDep, user: CurrentUser, warning: str | None = None,
                    grid: str | None = None,
                    limit: Annotated[int, Query(ge=1, le=20000)] = 5000
                    ) -> list[ChecklistProgress]:
    """Checklists with progress, soonest due first (a grid team: its own grids)."""
    auth.require_role(user, *checklist_items.READ_ROLES)
    grids = (sorted(auth.grid_ids_of(session, user)) if user.role in auth.GRID_ROLES
             else None)
    rows = session.execute(PROGRESS_SQL, {"warning": warning, "grid": grid, "grids": grids,
                                          "limit": limit}).mappings()
    return [ChecklistProgress(**row) for row in rows]


@router.get("/{checklist_id}/items", response_model=list[ItemOut])
def list_items(session: SessionDep, user: CurrentUser, checklist_id: int) -> list[ItemOut]:
    """A checklist's items, most urgent first."""
    ids = session.scalars(text(
        "SELECT id FROM checklist_item WHERE checklist_id = :c "
        "ORDER BY priority, cardinality(needs) DESC, state <> 'pending', id"),
        {"c": checklist_id}).all()
    if not ids:
        raise NotFound(f"no checklist {checklist_id} with items")
    return [checklist_items.read_item(session, user, item_id) for item_id in ids]


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
