"""OGC API – Features (Part 1: Core, GeoJSON) documents for the public layers.

Which layers are collections is an explicit allow-list (``COLLECTIONS``), not every entry of
``queries.LAYERS``: residents are personal data and are never a collection here, and a
layer added to ``LAYERS`` later stays private until it is listed below on purpose.

Features come from ``queries.feature_page`` (GeoJSON built in PostGIS, passed on as text);
this module adds what OGC asks around them: collection metadata, extents (from the data,
lon/lat degrees, CRS84 axis order), the matched count and single features by code.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.orm import Session

from gridgis.errors import NotFound
from gridgis.layers import queries
from gridgis.layers.schemas import FeatureCollection
from gridgis.params import BBox, Page

JSON = "application/json"
GEOJSON = "application/geo+json"
OPENAPI = "application/vnd.oai.openapi+json;version=3.1"  # FastAPI writes OpenAPI 3.1
HTML = "text/html"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    # Not oas30: /openapi.json is OpenAPI 3.1. Not html: answers are JSON only.
]


@dataclass(frozen=True)
class CollectionInfo:
    """How a public layer presents itself as an OGC collection."""

    title: str
    description: str


COLLECTIONS: dict[str, CollectionInfo] = {
    "admin-units": CollectionInfo(
        "Administrative units (区 / 街道·镇 / 社区·村)",
        "Districts, streets and towns, communities and villages, nested by code "
        "(property level: district, street, community)."),
    "grids": CollectionInfo(
        "Grids (网格)",
        "The smallest management units, each inside one community, with its households."),
    "buildings": CollectionInfo(
        "Buildings (楼栋)",
        "Buildings as points, with use, floors, households, risk flags and their grid."),
    "stations": CollectionInfo(
        "Party-mass service positions (党群服务中心 / 服务站 / 楼宇驿站)",
        "Community centres, village and residence stations, building posts (property level)."),
    "shelters": CollectionInfo(
        "Shelters (避护场所)",
        "Places to take people to in an emergency, with capacity and occupancy."),
}


class Link(BaseModel):
    href: str
    rel: str
    type: str = JSON
    title: str | None = None


class SpatialExtent(BaseModel):
    bbox: list[list[float]]  # [[west, south, east, north]] in lon/lat degrees
    crs: str = CRS84


class Extent(BaseModel):
    spatial: SpatialExtent


class Collection(BaseModel):
    id: str
    title: str
    description: str
    extent: Extent | None = None  # none while the layer is empty
    itemType: str = "feature"
    crs: list[str] = [CRS84]
    links: list[Link]


class Collections(BaseModel):
    collections: list[Collection]
    links: list[Link]


class LandingPage(BaseModel):
    title: str
    description: str
    links: list[Link]


class Conformance(BaseModel):
    conformsTo: list[str]


class ItemsPage(FeatureCollection):
    """The OpenAPI shape of an items page (the body itself is assembled from SQL text)."""

    numberMatched: int | None = None
    timeStamp: str


def layer_of(collection_id: str) -> queries.LayerSpec:
    """Return the layer behind a public collection; raise NotFound for anything else."""
    if collection_id not in COLLECTIONS:
        raise NotFound(f"no collection {collection_id!r}; see /ogc/collections")
    return queries.LAYERS[collection_id]


def layer_extents(session: Session, collection_ids: list[str]
                  ) -> dict[str, list[float] | None]:
    """Return each collection's [west, south, east, north] of its live features (degrees).

    One round trip; None for an empty layer.
    """
    columns = []
    for collection_id in collection_ids:
        spec = layer_of(collection_id)
        box = func.ST_Extent(spec.geometry)
        corners = array([func.ST_XMin(box), func.ST_YMin(box), func.ST_XMax(box),
                          func.ST_YMax(box)])
        extent = select(corners).select_from(spec.source).where(spec.live).scalar_subquery()
        columns.append(extent.label(collection_id.replace("-", "_")))
    row = session.execute(select(*columns)).one()
    return {cid: ([float(v) for v in box] if box and box[0] is not None else None)
            for cid, box in zip(collection_ids, row, strict=True)}


def count_matched(session: Session, spec: queries.LayerSpec, bbox: BBox | None) -> int:
    """Return how many live features of the layer the request selects (all pages)."""
    rows = select(func.count()).select_from(spec.source).where(spec.live)
    if bbox is not None:
        envelope = func.ST_MakeEnvelope(bbox.west, bbox.south, bbox.east, bbox.north, 4326)
        rows = rows.where(func.ST_Intersects(spec.geometry, envelope))
    return int(session.execute(rows).scalar_one())


def feature_by_code(session: Session, collection_id: str, code: str) -> dict[str, Any]:
    """Return one live feature of a collection as GeoJSON; raise NotFound if there is none."""
    spec = layer_of(collection_id)
    page = queries.feature_page(session, spec, bbox=None, page=Page(1, 0),
                                conditions=[spec.code == code])
    features = json.loads(page.features_json)
    if not features:
        raise NotFound(f"no feature {code!r} in collection {collection_id!r}")
    feature: dict[str, Any] = features[0]
    return feature


def landing_page(base: str, openapi_url: str, docs_url: str) -> LandingPage:
    """Return the landing page; ``base`` is the absolute URL of /ogc."""
    return LandingPage(
        title="gridgis OGC API – Features",
        description="Grids, administrative units, buildings, party-mass service positions "
                    "and shelters (no personal data). Send a bearer token from "
                    "/api/auth/token.",
        links=[
            Link(href=base, rel="self", title="this document"),
            Link(href=openapi_url, rel="service-desc", type=OPENAPI,
                 title="the API definition"),
            Link(href=docs_url, rel="service-doc", type=HTML, title="the API documentation"),
            Link(href=f"{base}/conformance", rel="conformance",
                 title="OGC API conformance classes implemented by this server"),
            Link(href=f"{base}/collections", rel="data", title="the feature collections"),
        ],
    )


def collection_doc(base: str, collection_id: str, bbox: list[float] | None) -> Collection:
    """Return one collection's description, with links to itself and its items."""
    info = COLLECTIONS[collection_id]
    href = f"{base}/collections/{collection_id}"
    return Collection(
        id=collection_id, title=info.title, description=info.description,
        extent=Extent(spatial=SpatialExtent(bbox=[bbox])) if bbox else None,
        links=[Link(href=href, rel="self", title=info.title),
               Link(href=f"{href}/items", rel="items", type=GEOJSON, title="its features")],
    )


def collections_doc(base: str, extents: dict[str, list[float] | None]) -> Collections:
    """Return the list of collections (``extents`` from ``layer_extents``)."""
    return Collections(
        collections=[collection_doc(base, cid, box) for cid, box in extents.items()],
        links=[Link(href=f"{base}/collections", rel="self", title="the feature collections")],
    )


def items_body(page: queries.FeaturePage, number_matched: int | None,
               links: list[Link]) -> str:
    """Return the items FeatureCollection as text, around the SQL-built features."""
    stamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    matched = "" if number_matched is None else f'"numberMatched":{number_matched},'
    link_json = json.dumps([link.model_dump(exclude_none=True) for link in links],
                           ensure_ascii=False)
    return (f'{{"type":"FeatureCollection","features":{page.features_json},'
            f'{matched}"numberReturned":{page.number_returned},'
            f'"timeStamp":"{stamp}","links":{link_json}}}')


def item_body(feature: dict[str, Any], links: list[Link]) -> str:
    """Return one feature as GeoJSON text, with its links."""
    dumped = [link.model_dump(exclude_none=True) for link in links]
    return json.dumps({**feature, "links": dumped}, ensure_ascii=False)
