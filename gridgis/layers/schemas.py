"""Pydantic shapes of the layers' HTTP answers (GeoJSON, RFC 7946)."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from gridgis.layers.models import (
    BUILDING_USES,
    GRID_KINDS,
    RESIDENCIES,
    RISK_FLAGS,
    SHELTER_KINDS,
    STATION_LEVELS,
    VULNERABILITIES,
)


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


# -- what comes in --------------------------------------------------------------------------

Code = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z-]{1,40}$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]


class Edit(BaseModel):
    """Base of every body that creates or changes a row: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class GeoJSONGeometry(Edit):
    """A GeoJSON geometry in lon/lat (EPSG:4326); checked with shapely before use."""

    type: Literal["Point", "Polygon", "MultiPolygon"]
    coordinates: list[Any]


class AdminUnitPatch(Edit):
    name: Text | None = None
    name_en: Text | None = None


class GridPatch(Edit):
    """Attributes only: boundaries change through planning changesets."""

    name: Text | None = None
    kind: Literal[GRID_KINDS] | None = None  # type: ignore[valid-type]
    households: int | None = Field(default=None, ge=0, le=100_000)


class BuildingPatch(Edit):
    name: Text | None = None
    address: Text | None = None
    use: Literal[BUILDING_USES] | None = None  # type: ignore[valid-type]
    floors: int | None = Field(default=None, ge=1, le=200)
    households: int | None = Field(default=None, ge=0, le=10_000)
    risk_flags: list[Literal[RISK_FLAGS]] | None = None  # type: ignore[valid-type]
    footprint: GeoJSONGeometry | None = None
    location: GeoJSONGeometry | None = None


class BuildingIn(BuildingPatch):
    """A new building: a code, a use, and a footprint or a point (or both)."""

    code: Code
    use: Literal[BUILDING_USES]  # type: ignore[valid-type]


class StationPatch(Edit):
    name: Text | None = None
    contact_name: Text | None = None
    contact_phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9 -]{5,20}$")] | None = None
    location: GeoJSONGeometry | None = None


class StationIn(StationPatch):
    code: Code
    name: Text
    level: Literal[STATION_LEVELS]  # type: ignore[valid-type]
    building_code: Code | None = None
    location: GeoJSONGeometry | None = None


class ShelterPatch(Edit):
    name: Text | None = None
    kind: Literal[SHELTER_KINDS] | None = None  # type: ignore[valid-type]
    address: Text | None = None
    capacity: int | None = Field(default=None, gt=0, le=1_000_000)
    occupancy: int | None = Field(default=None, ge=0, le=1_000_000)
    wheelchair_access: bool | None = None
    medical: bool | None = None
    location: GeoJSONGeometry | None = None


class ShelterIn(ShelterPatch):
    code: Code
    name: Text
    kind: Literal[SHELTER_KINDS]  # type: ignore[valid-type]
    capacity: int = Field(gt=0, le=1_000_000)
    location: GeoJSONGeometry


Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9 -]{5,20}$")]
IdNumber = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z()]{5,20}$")]


class ResidentPatch(Edit):
    name: Text | None = None
    gender: Literal["M", "F"] | None = None
    birth_year: int | None = Field(default=None, ge=1900, le=2100)
    id_number: IdNumber | None = None
    phone: Phone | None = None
    residency: Literal[RESIDENCIES] | None = None  # type: ignore[valid-type]
    vulnerabilities: list[Literal[VULNERABILITIES]] | None = None  # type: ignore[valid-type]
    household_code: Code | None = None


class ResidentIn(ResidentPatch):
    """Registration (人来登记): a person living in a building."""

    building_code: Code
    name: Text
    residency: Literal[RESIDENCIES]  # type: ignore[valid-type]
    household_code: Code | None = None


class MoveIn(Edit):
    """A resident who moved out comes to live in another building (or the same again)."""

    building_code: Code
    household_code: Code | None = None


class Summary(BaseModel):
    """Counts for an admin unit or a grid: nothing personal."""

    code: str
    grids: int
    buildings_by_use: dict[str, int]
    buildings_by_risk: dict[str, int]
    residents_by_residency: dict[str, int]
    vulnerable_by_kind: dict[str, int]
    stations_by_level: dict[str, int]
    shelters: int
    shelter_capacity: int
    shelter_occupancy: int
