"""HTTP for the pages under /map/ and the live state they draw (/api/map/state)."""

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import text

from gridgis.auth import CurrentUser, OptionalUser
from gridgis.db import SessionDep
from gridgis.maps import command, grid_head, planner, state
from gridgis.settings import get_settings

router = APIRouter(prefix="/map", tags=["pages"])
api_router = APIRouter(prefix="/api/map", tags=["maps"])


@api_router.get("/state")
def read_state(session: SessionDep, user: CurrentUser) -> Any:
    """The live state grids are coloured by: alerts, acknowledgements, checklist progress,
    vulnerable residents; the territory's figures; the active warnings' hazard areas."""
    return state.map_state(session, user)


Lang = Annotated[Literal["zh", "en"], Query(description="the page's language")]


def basemap() -> dict[str, Any]:
    """The base map settings every page builder takes."""
    settings = get_settings()
    return {"basemap_url": settings.basemap_url,
            "basemap_attribution": settings.basemap_attribution}


def rendered(page: Any) -> HTMLResponse:
    return HTMLResponse(page.get_root().render())


def to_login(path: str, lang: str) -> RedirectResponse:
    """The log-in form, then back to ``path`` (in the same language)."""
    back = f"{path}?lang={lang}" if lang != "zh" else path
    return RedirectResponse(f"/login?next={quote(back, safe='/')}", status_code=303)


@router.get("/command", response_class=HTMLResponse)
def command_page(session: SessionDep, user: OptionalUser, lang: Lang = "zh",
                 tiles: Annotated[bool | None, Query(description=(
                     "grids as vector tiles (default: above GRIDGIS_MAP_VECTOR_TILES_ABOVE "
                     "grids)"))] = None) -> Response:
    """The command-centre map of the whole territory (log-in first)."""
    if user is None:
        return to_login("/map/command", lang)
    if tiles is None:
        grids = session.scalar(text("SELECT count(*) FROM grid WHERE retired_at IS NULL"))
        tiles = (grids or 0) > get_settings().map_vector_tiles_above
    return rendered(command.build_command_map(**basemap(), lang=lang, vector_tiles=tiles))


@router.get("/grid", response_class=HTMLResponse)
def grid_head_page(user: OptionalUser, lang: Lang = "zh") -> Response:
    """The grid head's checklist page, for a phone (log-in first)."""
    if user is None:
        return to_login("/map/grid", lang)
    return rendered(grid_head.build_grid_head_page(**basemap(), lang=lang))


@router.get("/planner", response_class=HTMLResponse)
def planner_page(user: OptionalUser, lang: Lang = "zh") -> Response:
    """The planner's page: changesets drawn and checked on the map (log-in first)."""
    if user is None:
        return to_login("/map/planner", lang)
    return rendered(planner.build_planner_page(**basemap(), lang=lang))


@router.get("/grid/{code}", response_class=HTMLResponse)
def one_grid_page(user: OptionalUser, code: Annotated[str, Path(pattern=r"^\d{15}$")],
                  lang: Lang = "zh") -> Response:
    """One grid's page for its head: the grid, its buildings and checklist on the map, the
    nearest shelters, its alert to acknowledge (log-in first)."""
    if user is None:
        return to_login(f"/map/grid/{code}", lang)
    return rendered(grid_head.build_grid_head_page(**basemap(), grid=code, lang=lang))
