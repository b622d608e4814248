"""OGC API – Features at /ogc: the public layers for QGIS and other standard clients.

Decision: a thin router of our own over ``queries.LAYERS`` and ``queries.feature_page``,
not tipg (developmentseed's OGC Features and Tiles server for PostGIS). On the merits:

* Access control. tipg publishes what it discovers in the database catalogue (the spatial
  tables, views and functions of the schemas it is pointed at), over its own connection.
  ``resident`` lives in the same database, so keeping people out would rest on an exclude
  list in tipg's settings and on its catalogue rules; here a collection exists only if
  ``ogc.COLLECTIONS`` names it, and residents are not in ``queries.LAYERS`` at all. Our
  bearer tokens (``auth.current_user``) guard every route below as a router dependency;
  tipg has no notion of our users and would need that bolted onto each of its routers.
* Stack. tipg brings an asyncpg pool with its own settings (``DATABASE_URL``/``POSTGRES_*``,
  ``TIPG_*``) and start-up catalogue scan, beside our SQLAlchemy + psycopg engine: a second
  pool, a second configuration of the embedded cluster's URL, and tests that cannot run in
  the rolled-back session every other test uses.
* Fit. tipg serves table columns; our layers' properties come from joins (a grid's community
  code and name, an admin unit's parent code) that tipg would need database views for.
* Speed. The peer baseline (shared/bench-peer) measured tipg at ~307 ms for a 1,000-feature
  page of which PostGIS took ~26 ms: the rest is decoding and re-encoding JSON in Python.
  ``feature_page`` builds the features in PostGIS and we pass the text on untouched.
* Conformance. tipg covers more of the standards (CQL2 filtering, queryables, HTML, tiles).
  What a planner's QGIS needs is Part 1 Core + GeoJSON: landing page, conformance,
  collections, items with bbox/limit/offset, one item. That is small and is all here.

Deviations from the letter of Part 1, kept on purpose: invalid parameters answer 422 (the
domain ``InvalidInput``, as everywhere in gridgis) rather than 400; ``limit`` above the
configured maximum is lowered to it (as OGC's own guidance suggests), not refused;
``datetime`` is accepted and selects every feature, as no collection has a time dimension;
``/openapi.json`` is OpenAPI 3.1, so ``oas30`` is not claimed.
"""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.params import Depends as DependsParam

from gridgis import auth
from gridgis.db import SessionDep
from gridgis.errors import InvalidInput
from gridgis.layers import ogc, queries
from gridgis.layers.schemas import Feature
from gridgis.params import MAX_KEY, BBoxDep, Page
from gridgis.settings import get_settings

router = APIRouter(prefix="/ogc", tags=["ogc"], dependencies=[Depends(auth.current_user)])
Format = Annotated[Literal["json"] | None, Query(description="the only format offered: json")]
CollectionId = Annotated[str, Path(description="admin-units, grids, buildings, stations or "
                                               "shelters")]
Limit = Annotated[int, Query(ge=1, description=(
    "features per page (default 10); more than the server's maximum (setting "
    "page_size_max) is lowered to it"))]
Offset = Annotated[int, Query(ge=0, le=MAX_KEY, description="features to skip first")]
DateTime = Annotated[str | None, Query(alias="datetime", max_length=100, description=(
    "accepted for OGC conformance; no collection has a time dimension, so it selects all"))]


class GeoJSONResponse(Response):
    media_type = ogc.GEOJSON


def known_params(*names: str) -> DependsParam:
    """Return a dependency refusing query parameters the route does not define (OGC core)."""
    allowed = {"f", *names}

    def check(request: Request) -> None:
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            raise InvalidInput(f"unknown query parameter(s): {', '.join(unknown)}")

    return Depends(check)


def base_of(request: Request) -> str:
    """Return the absolute URL of /ogc as the client reached it."""
    return f"{str(request.base_url).rstrip('/')}{router.prefix}"


def page_links(request: Request, collection_id: str, limit: int, offset: int,
               has_more: bool) -> list[ogc.Link]:
    """Return self, collection, and next/prev links of an items page (offset paging)."""
    def at(start: int) -> str:
        return str(request.url.include_query_params(limit=limit, offset=start))

    links = [ogc.Link(href=str(request.url), rel="self", type=ogc.GEOJSON),
             ogc.Link(href=f"{base_of(request)}/collections/{collection_id}",
                      rel="collection", title=ogc.COLLECTIONS[collection_id].title)]
    if has_more:
        links.append(ogc.Link(href=at(offset + limit), rel="next", type=ogc.GEOJSON))
    if offset > 0:
        links.append(ogc.Link(href=at(max(0, offset - limit)), rel="prev", type=ogc.GEOJSON))
    return links


@router.get("", response_model=ogc.LandingPage, dependencies=[known_params()])
@router.get("/", response_model=ogc.LandingPage, dependencies=[known_params()],
            include_in_schema=False)
def landing(request: Request, f: Format = None) -> ogc.LandingPage:
    """The OGC API landing page: links to the API definition, conformance and data."""
    root = str(request.base_url).rstrip("/")
    return ogc.landing_page(base_of(request), f"{root}{request.app.openapi_url}",
                            f"{root}/docs")


@router.get("/conformance", response_model=ogc.Conformance, dependencies=[known_params()])
def conformance(f: Format = None) -> ogc.Conformance:
    """The OGC API conformance classes this server implements."""
    return ogc.Conformance(conformsTo=ogc.CONFORMANCE)


@router.get("/collections", response_model=ogc.Collections, response_model_exclude_none=True,
            dependencies=[known_params()])
def list_collections(request: Request, session: SessionDep,
                     f: Format = None) -> ogc.Collections:
    """The public layers as feature collections, with their extents."""
    extents = ogc.layer_extents(session, list(ogc.COLLECTIONS))
    return ogc.collections_doc(base_of(request), extents)


@router.get("/collections/{collection_id}", response_model=ogc.Collection,
            response_model_exclude_none=True, dependencies=[known_params()])
def get_collection(request: Request, session: SessionDep, collection_id: CollectionId,
                   f: Format = None) -> ogc.Collection:
    """One feature collection: title, description, extent, links."""
    extent = ogc.layer_extents(session, [collection_id])[collection_id]
    return ogc.collection_doc(base_of(request), collection_id, extent)


@router.get("/collections/{collection_id}/items", response_model=ogc.ItemsPage,
            response_class=GeoJSONResponse,
            dependencies=[known_params("bbox", "limit", "offset", "datetime")])
def list_items(request: Request, session: SessionDep, collection_id: CollectionId,
               bbox: BBoxDep, limit: Limit = 10, offset: Offset = 0, when: DateTime = None,
               f: Format = None) -> Response:
    """One page of a collection's features (GeoJSON built in PostGIS), ordered by key."""
    spec = ogc.layer_of(collection_id)
    limit = min(limit, get_settings().page_size_max)
    page = queries.feature_page(session, spec, bbox=bbox, page=Page(limit, 0), offset=offset)
    links = page_links(request, collection_id, limit, offset, page.next_cursor is not None)
    body = ogc.items_body(page, ogc.count_matched(session, spec, bbox), links)
    return GeoJSONResponse(body)


@router.get("/collections/{collection_id}/items/{feature_id}", response_model=Feature,
            response_class=GeoJSONResponse, dependencies=[known_params()])
def get_item(request: Request, session: SessionDep, collection_id: CollectionId,
             feature_id: Annotated[str, Path(description="the feature's code")],
             f: Format = None) -> Response:
    """One feature, by its code."""
    feature = ogc.feature_by_code(session, collection_id, feature_id)
    links = [ogc.Link(href=str(request.url), rel="self", type=ogc.GEOJSON),
             ogc.Link(href=f"{base_of(request)}/collections/{collection_id}", rel="collection")]
    return GeoJSONResponse(ogc.item_body(feature, links))
