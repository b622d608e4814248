"""HTTP for the pages under /map/."""

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from gridgis.db import SessionDep
from gridgis.layers import queries as layer_queries
from gridgis.maps import command
from gridgis.settings import get_settings

router = APIRouter(prefix="/map", tags=["pages"])


@router.get("/command", response_class=HTMLResponse)
def command_page(session: SessionDep) -> HTMLResponse:
    """The command-centre map of the whole territory."""
    settings = get_settings()
    page = command.build_command_map(
        layer_queries.territory_bounds(session), basemap_url=settings.basemap_url,
        basemap_attribution=settings.basemap_attribution,
    )
    return HTMLResponse(page.get_root().render())
