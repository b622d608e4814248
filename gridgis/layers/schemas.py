"""Pydantic shapes of the layers' HTTP answers (GeoJSON, RFC 7946)."""

from typing import Any, Literal

from pydantic import BaseModel, Field


class Geometry(BaseModel):
    type: str
    coordinates: Any


class Feature(BaseModel):
    type: Literal["Feature"] = "Feature"
    id: str = Field(description="the feature's code")
    geometry: Geometry
    properties: dict[str, Any]


class Link(BaseModel):
    rel: str
    href: str
    type: str = "application/geo+json"


class FeatureCollection(BaseModel):
    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[Feature]
    numberReturned: int
    links: list[Link]
