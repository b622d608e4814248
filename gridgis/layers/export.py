"""Layer files out: the live rows of a layer, filtered, as GeoJSON, GeoPackage, zipped
Shapefile or CSV in EPSG:4326, with the properties the API shows and what an import needs.
Residents: admins only, audited.
"""

import re
import shutil
import tempfile
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely
from sqlalchemy import DateTime, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, aliased

from gridgis import audit
from gridgis.errors import Forbidden, InvalidInput
from gridgis.layers import file_checks, queries, residents
from gridgis.layers.models import Building, Resident, Shelter, Station
from gridgis.models import AppUser
from gridgis.params import CODE

# format: (GDAL driver, file extension, media type)
EXPORT_FORMATS = {"geojson": ("GeoJSON", ".geojson", "application/geo+json"),
                  "gpkg": ("GPKG", ".gpkg", "application/geopackage+sqlite3"),
                  "shp": ("ESRI Shapefile", ".zip", "application/zip"),
                  "csv": ("CSV", ".csv", "text/csv")}
EXPORT_LAYERS = ("buildings", "stations", "shelters", "residents", "grids", "admin-units")
PostBuilding = aliased(Building, name="post_building")


def export_format(path: Path, file_format: str | None) -> str:
    """Return the export format asked for, or the one the file name's extension says."""
    if file_format is None:
        if path.suffix.lower() == ".shp":
            raise InvalidInput(f"{path.name}: a Shapefile is written zipped: name it .zip")
        file_format = file_checks.SUFFIXES.get(path.suffix.lower())
    if file_format not in EXPORT_FORMATS:
        raise InvalidInput(f"{path.name}: say the format: one of {', '.join(EXPORT_FORMATS)}")
    return file_format


def export_spec(layer: str) -> queries.LayerSpec:
    """Return what an export of ``layer`` holds: the API's properties and what imports need."""
    if layer == "residents":
        spec = residents.resident_spec(masked=False)
        return replace(spec, live=spec.live & Resident.moved_out_at.is_(None))
    if layer not in EXPORT_LAYERS:
        raise InvalidInput(f"cannot export {layer!r}; layers are {', '.join(EXPORT_LAYERS)}")
    spec = queries.LAYERS[layer]
    if layer == "stations":
        return replace(spec, source=spec.source.outerjoin(
            PostBuilding, PostBuilding.id == Station.building_id),
            properties={**spec.properties, "building_code": PostBuilding.code})
    extra = {"buildings": {"address": Building.address},
             "shelters": {"address": Shelter.address}}.get(layer, {})
    return replace(spec, properties={**spec.properties, **extra})


def export_layer(session: Session, layer: str, path: Path, *, file_format: str | None = None,
                 within: str | None = None, user: AppUser | None = None) -> int:
    """Write the live rows of ``layer`` (inside the admin unit or grid ``within``) to
    ``path`` in EPSG:4326; return how many. Residents: admins only, audited; ``user`` None
    is the command line, which holds the database's own credentials."""
    file_format = export_format(path, file_format)
    spec = export_spec(layer)
    if layer == "residents" and user is not None and user.role != "admin":
        audit.record(session, user, "export-denied", "resident")
        raise Forbidden(f"the {user.role} role may not export residents")
    if within is not None and not re.match(CODE, within):
        raise InvalidInput(f"within {within!r} is not a code")
    query = (select(*[as_file_value(c).label(n) for n, c in spec.properties.items()],
                    func.ST_AsBinary(spec.geometry).label("wkb"))
             .select_from(spec.source).where(spec.live).order_by(spec.key))
    if within:
        query = query.where(spec.within.startswith(within, autoescape=True))
    result = session.connection().execute(query)  # plain rows: no ORM loading for millions
    frame = pd.DataFrame(list(map(tuple, result)), columns=[*spec.properties, "wkb"])
    geometry = shapely.from_wkb(frame.pop("wkb").map(bytes).to_numpy())
    write_frame(frame, geometry, layer, path, file_format)
    if layer == "residents":
        audit.record(session, user, "export", "resident", None, {
            "format": file_format, "within": within, "rows": len(frame)})
    return len(frame)


def as_file_value(column: Any) -> Any:
    """Return a column as every file format can hold it: lists as "a,b", times as text."""
    if isinstance(column.type, ARRAY):
        return func.array_to_string(column, ",")
    if isinstance(column.type, DateTime):
        return func.to_char(column, 'YYYY-MM-DD"T"HH24:MI:SSOF')
    return column


def write_frame(frame: pd.DataFrame, geometry: Any, layer: str, path: Path,
                file_format: str) -> None:
    """Write rows and their EPSG:4326 geometry in a format (a Shapefile zipped)."""
    frame = frame.convert_dtypes()
    polygons = layer in ("grids", "admin-units")
    if file_format == "csv":
        if polygons:
            frame["wkt"] = shapely.to_wkt(geometry, rounding_precision=-1)
        elif layer != "residents":  # a resident's point is their building's
            frame["lon"], frame["lat"] = shapely.get_x(geometry), shapely.get_y(geometry)
        frame.to_csv(path, index=False, encoding="utf-8-sig")  # Excel reads the BOM as UTF-8
        return
    driver = EXPORT_FORMATS[file_format][0]
    shapes = gpd.GeoDataFrame(frame, geometry=geometry, crs=4326)
    kind = "MultiPolygon" if polygons else "Point"
    if file_format != "shp":
        pyogrio.write_dataframe(shapes, path, driver=driver, layer=layer.replace("-", "_"),
                                geometry_type=kind)
        return
    folder = Path(tempfile.mkdtemp(prefix="gridgis-shp-"))
    try:
        shapes = shapes.rename(columns=file_checks.SHORT_NAMES)
        pyogrio.write_dataframe(shapes, folder / f"{layer}.shp", driver=driver,
                                geometry_type=kind, encoding="UTF-8")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for part in sorted(folder.iterdir()):
                archive.write(part, part.name)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
