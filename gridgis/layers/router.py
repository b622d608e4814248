"""HTTP for the layers: GeoJSON FeatureCollections with bbox, filters and keyset paging."""

import json
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from gridgis.auth import CurrentUser, current_user
from gridgis.db import SessionDep
from gridgis.errors import GridGisError
from gridgis.layers import queries, residents
from gridgis.layers.models import Building
from gridgis.layers.schemas import Feature, FeatureCollection
from gridgis.params import CODE, WORD, BBoxDep, PageDep

# Every layer needs a logged-in user; residents further depend on who it is.
router = APIRouter(prefix="/api", tags=["layers"], dependencies=[Depends(current_user)])
GEOJSON = "application/geo+json"
Within = Annotated[str | None, Query(pattern=CODE, description=(
    "code of an admin unit (or, for grids, buildings and residents, a grid) to look inside"))]
Word = Annotated[str | None, Query(pattern=WORD)]


def geojson_page(request: Request, page: queries.FeaturePage) -> Response:
    """Return the page as GeoJSON bytes assembled around the SQL-built features."""
    links = [{"rel": "self", "href": str(request.url), "type": GEOJSON}]
    if page.next_cursor is not None:
        href = request.url.include_query_params(cursor=str(page.next_cursor))
        links.append({"rel": "next", "href": str(href), "type": GEOJSON})
    body = (f'{{"type":"FeatureCollection","features":{page.features_json},'
            f'"numberReturned":{page.number_returned},"links":{json.dumps(links)}}}')
    return Response(body, media_type=GEOJSON)


def layer_page(request: Request, session: SessionDep, layer: str, bbox: BBoxDep,
               page: PageDep, within: str | None, conditions: Sequence[Any] = (),
               **equals: str | None) -> Response:
    """Return one page of a non-personal layer."""
    result = queries.feature_page(
        session, queries.LAYERS[layer], bbox=bbox, page=page, within=within,
        equals={k: v for k, v in equals.items() if v is not None}, conditions=conditions,
    )
    return geojson_page(request, result)


@router.get("/admin-units", response_model=FeatureCollection)
def list_admin_units(request: Request, session: SessionDep, bbox: BBoxDep,
                     page: PageDep,
                     within: Within = None,
                     level: Annotated[str | None, Query(pattern="^(district|street|community)$")]
                     = None) -> Response:
    """Districts, streets and communities."""
    return layer_page(request, session, "admin-units", bbox, page, within, level=level)


@router.get("/grids", response_model=FeatureCollection)
def list_grids(request: Request, session: SessionDep, bbox: BBoxDep,
               page: PageDep,
               within: Within = None, kind: Word = None) -> Response:
    """Grids (网格) with their community."""
    return layer_page(request, session, "grids", bbox, page, within, kind=kind)


@router.get("/buildings", response_model=FeatureCollection)
def list_buildings(request: Request, session: SessionDep, bbox: BBoxDep,
                   page: PageDep,
                   within: Within = None, use: Word = None,
                   risk: Annotated[str | None, Query(pattern=WORD, description=(
                       "a risk flag the building carries, e.g. dilapidated"))] = None
                   ) -> Response:
    """Buildings as points, with risk flags and their grid."""
    conditions = [Building.risk_flags.contains([risk])] if risk else []
    return layer_page(request, session, "buildings", bbox, page, within, conditions, use=use)


@router.get("/stations", response_model=FeatureCollection)
def list_stations(request: Request, session: SessionDep, bbox: BBoxDep,
                  page: PageDep,
                  within: Within = None,
                  level: Annotated[str | None, Query(pattern="^(centre|station|post)$")] = None
                  ) -> Response:
    """Party-mass service positions: community centres, stations, building posts."""
    return layer_page(request, session, "stations", bbox, page, within, level=level)


@router.get("/shelters", response_model=FeatureCollection)
def list_shelters(request: Request, session: SessionDep, bbox: BBoxDep,
                  page: PageDep,
                  within: Within = None, kind: Word = None) -> Response:
    """Shelters with capacity and occupancy."""
    return layer_page(request, session, "shelters", bbox, page, within, kind=kind)


@router.get("/residents", response_model=FeatureCollection)
def list_residents(request: Request, session: SessionDep, user: CurrentUser, bbox: BBoxDep,
                   page: PageDep, within: Within = None, residency: Word = None,
                   vulnerability: Word = None, include_moved_out: bool = False
                   ) -> Response:
    """Residents the caller may see (their grids; masked for the command centre); audited."""
    try:
        result = residents.resident_page(
            session, user, bbox=bbox, page=page, within=within, residency=residency,
            vulnerability=vulnerability, include_moved_out=include_moved_out,
        )
    except GridGisError:
        session.commit()  # the audit entry of a refusal stands
        raise
    session.commit()
    return geojson_page(request, result)


@router.get("/residents/{code}", response_model=Feature)
def get_resident(session: SessionDep, user: CurrentUser,
                 code: Annotated[str, Path(pattern=CODE)]) -> Response:
    """One resident, if the caller may see them; audited."""
    try:
        feature = residents.resident_feature(session, user, code)
    except GridGisError:
        session.commit()  # the audit entry of a refusal stands
        raise
    session.commit()
    version = json.loads(feature)["properties"]["version"]
    return Response(feature, media_type=GEOJSON, headers={"ETag": f'"{version}"'})
