"""HTTP for vector tiles: ``/tiles/{layer}/{z}/{x}/{y}.pbf`` (EPSG:3857 XYZ, Mapbox vector tiles).

A tile with features is 200 ``application/vnd.mapbox-vector-tile``; a tile no feature touches
is 204 with no body. Both carry a short ``Cache-Control`` (data changes during an emergency)
and an ETag of the bytes; ``If-None-Match`` with that ETag gives 304.
"""

from typing import Annotated

from fastapi import APIRouter, Header, Response

from gridgis.auth import CurrentUser
from gridgis.db import SessionDep
from gridgis.layers import tiles

router = APIRouter(prefix="/tiles", tags=["tiles"])
MVT = "application/vnd.mapbox-vector-tile"
# private: the tiles hold no personal data, but only logged-in users may read them.
CACHE_CONTROL = "private, max-age=60"


@router.get("/{layer}/{z}/{x}/{y}.pbf", response_class=Response, responses={
    200: {"content": {MVT: {}}, "description": "the tile"},
    204: {"description": "no feature touches the tile"},
    304: {"description": "unchanged since the ETag in If-None-Match"},
})
def get_tile(session: SessionDep, user: CurrentUser, layer: str, z: int, x: int, y: int,
             if_none_match: Annotated[str | None, Header()] = None) -> Response:
    """A vector tile of admin-units, grids, buildings, stations or shelters; any role may read."""
    body = tiles.render_tile(session, tiles.check_tile(layer, z, x, y))
    etag = tiles.etag_of(body)
    headers = {"Cache-Control": CACHE_CONTROL, "ETag": etag}
    if tiles.etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    if not body:
        return Response(status_code=204, headers=headers)
    return Response(body, media_type=MVT, headers=headers)
