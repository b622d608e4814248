"""HTTP for the pages under /map/."""

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gridgis.auth import OptionalUser
from gridgis.maps import command, grid_head, planner
from gridgis.settings import get_settings

router = APIRouter(prefix="/map", tags=["pages"])


@router.get("/command", response_class=HTMLResponse)
def command_page(user: OptionalUser) -> Response:
    """The command-centre map of the whole territory (log-in first)."""
    if user is None:
        return RedirectResponse("/login?next=/map/command", status_code=303)
    settings = get_settings()
    page = command.build_command_map(basemap_url=settings.basemap_url,
                                     basemap_attribution=settings.basemap_attribution)
    return HTMLResponse(page.get_root().render())


@router.get("/grid", response_class=HTMLResponse)
def grid_head_page(user: OptionalUser) -> Response:
    """The grid head's checklist page, for a phone (log-in first)."""
    if user is None:
        return RedirectResponse("/login?next=/map/grid", status_code=303)
    settings = get_settings()
    page = grid_head.build_grid_head_page(basemap_url=settings.basemap_url,
                                          basemap_attribution=settings.basemap_attribution)
    return HTMLResponse(page.get_root().render())


@router.get("/planner", response_class=HTMLResponse)
def planner_page(user: OptionalUser) -> Response:
    """The planner's page: changesets drawn and checked on the map (log-in first)."""
    if user is None:
        return RedirectResponse("/login?next=/map/planner", status_code=303)
    settings = get_settings()
    page = planner.build_planner_page(basemap_url=settings.basemap_url,
                                      basemap_attribution=settings.basemap_attribution)
    return HTMLResponse(page.get_root().render())
