"""What a layer file may hold: its columns, their kinds and allowed values, per layer."""

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gridgis.layers.models import (
    BUILDING_USES,
    RESIDENCIES,
    RISK_FLAGS,
    SHELTER_KINDS,
    STATION_LEVELS,
    VULNERABILITIES,
)

DEFAULT_MAX_MB = 100.0
SUFFIXES = {".geojson": "geojson", ".json": "geojson", ".gpkg": "gpkg", ".zip": "shp",
            ".csv": "csv"}
FAR_OUTSIDE_DEG = 0.2  # points farther outside the territory's box are refused (~20 km)
# dBase names hold 10 characters: the short names gridgis writes and reads back.
SHORT_NAMES = {"wheelchair_access": "wheelchair", "contact_name": "contact_nm",
               "contact_phone": "contact_ph", "household_code": "household",
               "vulnerabilities": "vulnerable", "building_code": "bldg_code",
               "community_code": "comm_code", "community_name": "comm_name",
               "parent_code": "parent", "registered_at": "registered",
               "moved_out_at": "moved_out"}
LON_NAMES, LAT_NAMES = ("lon", "lng", "longitude", "经度"), ("lat", "latitude", "纬度")
TRUE, FALSE = {"true", "t", "yes", "y", "1", "是"}, {"false", "f", "no", "n", "0", "否"}
Box = tuple[float, float, float, float]  # west, south, east, north in degrees
Geometries = NDArray[np.object_]


@dataclass(frozen=True)
class Field:
    """One column of a layer file. ``stored`` is False for columns looked up
    (building_code -> building_id) or only compared (version), not written as given."""

    name: str
    kind: str  # text | choice | int | bool | list
    required: bool = False
    allowed: tuple[str, ...] = ()
    low: int | None = None
    high: int | None = None
    default: Any = None
    stored: bool = True


@dataclass(frozen=True)
class LayerFormat:
    layer: str
    table: str
    fields: tuple[Field, ...]
    geometry: str | None  # "point", "point or polygon" (buildings), None (residents)


VERSION = Field("version", "int", low=1, stored=False)
FORMATS = {f.layer: f for f in (
    LayerFormat("buildings", "building", (
        Field("name", "text"), Field("address", "text"),
        Field("use", "choice", required=True, allowed=BUILDING_USES),
        Field("floors", "int", low=1, high=300, default=1),
        Field("households", "int", low=0, default=0),
        Field("risk_flags", "list", allowed=RISK_FLAGS, default=[]), VERSION),
        "point or polygon"),
    LayerFormat("stations", "station", (
        Field("name", "text", required=True),
        Field("level", "choice", required=True, allowed=STATION_LEVELS),
        Field("building_code", "text", stored=False),
        Field("contact_name", "text"), Field("contact_phone", "text"), VERSION), "point"),
    LayerFormat("shelters", "shelter", (
        Field("name", "text", required=True),
        Field("kind", "choice", required=True, allowed=SHELTER_KINDS),
        Field("address", "text"), Field("capacity", "int", required=True, low=1),
        Field("occupancy", "int", low=0, default=0),
        Field("wheelchair_access", "bool", default=False),
        Field("medical", "bool", default=False), VERSION), "point"),
    LayerFormat("residents", "resident", (
        Field("building_code", "text", required=True, stored=False),
        Field("household_code", "text", required=True), Field("name", "text", required=True),
        Field("gender", "choice", allowed=("F", "M")),
        Field("birth_year", "int", low=1880, high=2100),
        Field("id_number", "text"), Field("phone", "text"),
        Field("residency", "choice", required=True, allowed=RESIDENCIES),
        Field("vulnerabilities", "list", allowed=VULNERABILITIES, default=[]), VERSION), None),
)}


