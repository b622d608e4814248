"""Layer files in: read GeoJSON, GeoPackage, zipped Shapefile or CSV, reproject, check rows.

No database here: ``files`` stages what this module accepts and adds the checks that need
one (grids, communities, building codes). Rows count from 1 in file order (a CSV's header
is not a row). Geometry leaves in EPSG:4326 (lon, lat); CGCS2000 (EPSG:4490) is taken as
equal within metres; GCJ-02 (Chinese web maps) is converted when the caller says so.
"""

import re
import warnings
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyogrio
import shapely
from numpy.typing import NDArray
from pyogrio.raw import read as read_raw
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError, ProjError

from gridgis import spatial
from gridgis.errors import InvalidInput, TooLarge
from gridgis.layers.file_formats import (
    DEFAULT_MAX_MB,
    FALSE,
    FAR_OUTSIDE_DEG,
    FORMATS,
    LAT_NAMES,
    LON_NAMES,
    SHORT_NAMES,
    SUFFIXES,
    TRUE,
    Box,
    Field,
    Geometries,
    LayerFormat,
)
from gridgis.params import CODE, MAX_KEY

# GDAL's GeoJSON reader holds a feature's JSON in memory at some twenty times its size: one
# of more than MAX_FEATURE_MB (a footprint of spatial.MAX_VERTICES takes ~4 MB) is refused
# unread, not parsed into gigabytes.
MAX_FEATURE_MB = 8
pyogrio.set_gdal_config_options({"OGR_GEOJSON_MAX_OBJ_SIZE": str(MAX_FEATURE_MB)})


@dataclass(frozen=True)
class RowProblem:
    """One thing wrong with one row of a layer file."""

    row: int
    field: str
    reason: str
    code: str | None = None

    def __str__(self) -> str:
        return f"row {self.row}{f' (code {self.code})' if self.code else ''}, {self.field}: " \
               f"{self.reason}"


class ImportRefused(InvalidInput):
    """A layer file refused with every bad row; nothing was written."""

    def __init__(self, source: str, problems: list[RowProblem], shown: int = 50):
        self.source = source
        self.problems = sorted(problems, key=lambda p: (p.row, p.field))
        rows = len({p.row for p in self.problems})
        lines = [str(p) for p in self.problems[:shown]]
        if len(self.problems) > shown:
            lines.append(f"... and {len(self.problems) - shown} more")
        super().__init__(f"{source}: import refused, nothing written ({rows} bad "
                         f"row{'s' * (rows != 1)}):\n  " + "\n  ".join(lines))


@dataclass
class LayerFile:
    """A layer file read and checked: values by column (None where bad), geometry, problems."""

    source: str
    fmt: LayerFormat
    columns: dict[str, list[Any]]  # "code" and each field the file carries
    location: Geometries  # points in EPSG:4326; None where missing or bad
    footprint: Geometries  # buildings' (multi)polygons; None for points
    problems: list[RowProblem]


def read_layer_file(path: Path, layer: str, *, gcj02: bool = False,
                    max_mb: float = DEFAULT_MAX_MB, extent: Box | None = None) -> LayerFile:
    """Return a layer file's rows in EPSG:4326, checked, with every bad row as a problem.

    Points far outside ``extent`` (the territory) are bad rows. Raises InvalidInput for a
    file that cannot be taken at all (unreadable, no CRS, missing columns), TooLarge when
    bigger than ``max_mb``.
    """
    fmt = import_format(layer)
    kind = file_kind(path)
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    check_size(path.name, path.stat().st_size, max_mb)
    raw, geometry, problems = read_csv(path, fmt) if kind == "csv" else read_ogr(path, kind,
                                                                                   max_mb)
    if fmt.geometry is None:  # residents live at their building's point
        geometry, problems = np.full(len(geometry), None, dtype=object), []
    elif gcj02:
        geometry = spatial.gcj02_geometries_to_wgs84(geometry)
    columns = rename_columns(raw, fmt, path.name)
    points, footprints = split_geometry(geometry, fmt, extent, problems)
    codes = clean_codes(columns["code"], problems)
    values = {"code": codes} | {spec.name: clean_column(spec, columns[spec.name], codes, problems)
                                for spec in fmt.fields if spec.name in columns}
    named = [replace(p, code=codes[p.row - 1]) if p.code is None else p
             for p in problems]  # name the row's code where it has one
    return LayerFile(path.name, fmt, values, points, footprints, named)


def import_format(layer: str) -> LayerFormat:
    """Return the file format of an importable layer; InvalidInput for another name."""
    if layer not in FORMATS:
        raise InvalidInput(f"cannot import {layer!r}; layers are {', '.join(FORMATS)}")
    return FORMATS[layer]


def file_kind(path: Path) -> str:
    """Return geojson, gpkg, shp or csv from a file name's extension."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise InvalidInput(f"{path.name}: unknown file type {path.suffix or '(none)'!r}; give "
                           f".geojson, .gpkg, .zip (a zipped Shapefile) or .csv")
    return kind


def check_size(source: str, size_bytes: int, max_mb: float) -> None:
    """Raise TooLarge if ``size_bytes`` is more than ``max_mb`` megabytes."""
    if size_bytes > max_mb * 2**20:
        raise TooLarge(f"{source}: {size_bytes / 2**20:.1f} MB is more than the import limit "
                       f"of {max_mb:g} MB")


def read_ogr(path: Path, kind: str, max_mb: float) -> tuple[
        dict[str, NDArray[Any]], Geometries, list[RowProblem]]:
    """Return (columns, geometries in EPSG:4326, geometry problems) of a GDAL-readable file."""
    target = shapefile_in_zip(path, max_mb) if kind == "shp" else str(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # GDAL's per-feature warnings become problems
            layers = pyogrio.list_layers(target)
            if len(layers) > 1:
                raise InvalidInput(f"{path.name}: holds {len(layers)} layers "
                                   f"({', '.join(map(str, layers[:, 0]))}); give one")
            meta, _, wkb, values = read_raw(target)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError,
            pyogrio.errors.FieldError, OSError) as exc:
        reason = str(exc).splitlines()[0]
        if "too complex/large" in reason:  # GDAL's words suggest a setting to the user
            reason = f"a feature of more than {MAX_FEATURE_MB} MB"
        raise InvalidInput(f"{path.name}: cannot be read as a {kind} file: {reason}") from exc
    if len(wkb) == 0:
        raise InvalidInput(f"{path.name}: no features")
    if meta["crs"] is None:
        what = "its .prj names none gridgis knows" if kind == "shp" else "it names none"
        raise InvalidInput(f"{path.name}: unknown coordinate reference system ({what}); save "
                           f"it again with its CRS, or as EPSG:4326")
    geometry, problems = parse_wkb(wkb)
    columns = {str(n): v for n, v in zip(meta["fields"], values, strict=True)}
    return columns, to_wgs84(geometry, str(meta["crs"]), path.name), problems


def shapefile_in_zip(path: Path, max_mb: float) -> str:
    """Return the GDAL path of the Shapefile in a zip; refuse one lacking a part or its .prj."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidInput(f"{path.name}: not a zip file ({exc})") from exc
    check_size(f"{path.name} unpacked", sum(m.file_size for m in members), max_mb)
    shapes = [m.filename for m in members if m.filename.lower().endswith(".shp")]
    if len(shapes) != 1:
        raise InvalidInput(f"{path.name}: a zipped Shapefile holds one .shp, not {len(shapes)}")
    names = {m.filename.lower() for m in members}
    missing = [e for e in (".shx", ".dbf", ".prj") if (shapes[0][:-4] + e).lower() not in names]
    if missing:
        why = "; without its .prj its coordinate reference system is unknown" * (
            ".prj" in missing)
        raise InvalidInput(f"{path.name}: the Shapefile has no {', '.join(missing)}{why}")
    return f"/vsizip/{path.resolve()}/{shapes[0]}"


def parse_wkb(wkb: NDArray[np.object_]) -> tuple[Geometries, list[RowProblem]]:
    """Return shapely geometries (None where unusable) and a problem for each unusable one."""
    geometry = np.asarray(shapely.from_wkb(wkb, on_invalid="ignore"), dtype=object)
    problems = []
    for i in np.flatnonzero(pd.isna(geometry)):
        reason = "no geometry (missing, or malformed in the file)"
        if wkb[i] is not None:
            try:
                shapely.from_wkb(wkb[i])
            except shapely.errors.GEOSException as exc:
                reason = ("a polygon ring is not closed (its last position must repeat the "
                          "first; NaN never does)" if "closed linestring" in str(exc)
                          else f"malformed geometry: {exc}")
        problems.append(RowProblem(int(i) + 1, "geometry", reason))
    return geometry, problems


def to_wgs84(geometry: Geometries, crs_text: str, source: str) -> Geometries:
    """Return 2D geometries in EPSG:4326; EPSG:4490 (CGCS2000) is taken as it is."""
    flat = shapely.force_2d(geometry)
    try:
        crs = CRS.from_user_input(crs_text)
        if crs.to_epsg() in (4326, 4490) or crs.equals(spatial.WGS84, ignore_axis_order=True):
            return np.asarray(flat, dtype=object)
        transformer = Transformer.from_crs(crs, spatial.WGS84, always_xy=True)
    except (CRSError, ProjError) as exc:
        raise InvalidInput(f"{source}: unknown coordinate reference system, or one that "
                           f"cannot be converted to WGS 84: {crs_text[:80]!r}") from exc
    return np.asarray(shapely.transform(flat, transformer.transform, interleaved=False),
                      dtype=object)


def read_csv(path: Path, fmt: LayerFormat) -> tuple[
        dict[str, NDArray[Any]], Geometries, list[RowProblem]]:
    """Return (columns, points, problems) of a CSV; lon/lat are WGS 84 degrees by definition."""
    frame = None
    for encoding in ("utf-8-sig", "gb18030"):  # Excel in China saves CSV as GB 18030 (GBK)
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
            break
        except UnicodeDecodeError:
            continue
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InvalidInput(f"{path.name}: cannot be read as CSV: {exc}") from exc
    if frame is None or frame.empty:
        raise InvalidInput(f"{path.name}: no rows (or neither UTF-8 nor GB 18030 text)")
    columns = {str(c).strip().lower(): frame[c].to_numpy(dtype=object) for c in frame.columns}
    points = np.full(len(frame), None, dtype=object)
    lon = next((n for n in LON_NAMES if n in columns), None)
    lat = next((n for n in LAT_NAMES if n in columns), None)
    if fmt.geometry is None:
        return columns, points, []
    if lon is None or lat is None:
        raise InvalidInput(f"{path.name}: a {fmt.layer} CSV needs lon and lat columns")
    problems, numbers = [], []
    for name in (lon, lat):
        given = pd.Series(columns.pop(name), dtype=object).str.strip()
        number = pd.to_numeric(given, errors="coerce")
        problems += [RowProblem(int(i) + 1, name, f"{given.iloc[i]!r} is not a number"
                                if given.iloc[i] else f"no {name}")
                     for i in np.flatnonzero(number.isna())]
        numbers.append(number.to_numpy(dtype=float))
    good = np.isfinite(numbers[0]) & np.isfinite(numbers[1])
    points[good] = shapely.points(numbers[0][good], numbers[1][good])
    return columns, points, problems


def rename_columns(raw: dict[str, NDArray[Any]], fmt: LayerFormat,
                   source: str) -> dict[str, NDArray[Any]]:
    """Return the columns by field name (a Shapefile's 10-character names read back)."""
    columns = {name.strip().lower(): values for name, values in raw.items()}
    for spec in fmt.fields:
        for short in (SHORT_NAMES.get(spec.name), spec.name[:10]):
            if spec.name not in columns and short in columns:
                columns[spec.name] = columns.pop(short)
    missing = [s.name for s in (Field("code", "text", required=True), *fmt.fields)
               if s.required and s.name not in columns]
    if missing:
        raise InvalidInput(f"{source}: missing column(s) {', '.join(missing)} for {fmt.layer}")
    return columns


def as_text(value: Any) -> Any:
    """Return a cell as stripped text, None when empty (13800000000.0 reads 13800000000);
    a list of values as a tuple."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(str(v) for v in value)
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip() or None


def texts_of(values: NDArray[Any]) -> "pd.Series[Any]":
    """Return a column's cells through ``as_text``, at C speed where they are all text."""
    cells = pd.Series(values, dtype=object)
    if pd.api.types.infer_dtype(cells, skipna=True) not in ("string", "empty"):
        return cells.map(as_text).astype(object)
    stripped = cells.str.strip()
    return stripped.where(stripped.str.len() > 0, None).astype(object)


def clean_codes(values: NDArray[Any], problems: list[RowProblem]) -> list[Any]:
    """Return the codes; a problem for a missing, malformed or repeated one."""
    codes = texts_of(values)
    good = codes.notna() & codes.str.fullmatch(CODE[1:-1]).fillna(False).astype(bool)
    repeated = good & codes.duplicated()
    first = {code: i + 1 for i, code in reversed(list(enumerate(codes))) if code}
    for i in np.flatnonzero(~good | repeated):
        code = codes.iloc[i]
        reason = ("no code" if code is None else f"duplicate code (as row {first[code]})"
                  if good.iloc[i] else "only letters, digits and hyphens, at most 40")
        problems.append(RowProblem(int(i) + 1, "code", reason, code))
    return codes.tolist()


def clean_column(spec: Field, values: NDArray[Any], codes: list[Any],
                 problems: list[RowProblem]) -> list[Any]:
    """Return a column's values in their kind (None where bad); a problem per bad cell.
    Each distinct cell is judged once: most columns hold few distinct values."""
    texts = texts_of(values)
    judged: list[tuple[Any, str | None]]
    if spec.kind == "text":
        judged = [(t, None) if t is not None or not spec.required else (None, f"no {spec.name}")
                  for t in texts]
    else:
        verdicts = {t: clean_value(spec, t) for t in texts.dropna().unique()}
        missing = clean_value(spec, None)
        judged = [missing if t is None else verdicts[t] for t in texts]
    problems += [RowProblem(i + 1, spec.name, reason, codes[i])
                 for i, (_, reason) in enumerate(judged) if reason]
    return [value for value, _ in judged]


def clean_value(spec: Field, text: Any) -> tuple[Any, str | None]:
    """Return (value, None), or (None, why the cell is bad)."""
    if text is None:
        return (None, f"no {spec.name}") if spec.required else (spec.default, None)
    if spec.kind == "choice" and text not in spec.allowed:
        return None, f"unknown {spec.name} {text!r}; allowed: {', '.join(spec.allowed)}"
    if spec.kind == "int":
        try:
            number = float(text)
        except ValueError:
            return None, f"{text!r} is not a number"
        if not number.is_integer():
            return None, f"{text!r} is not a whole number"
        high = MAX_KEY if spec.high is None else spec.high  # PostgreSQL integers
        if (spec.low is not None and number < spec.low) or number > high:
            return None, f"{int(number)} is out of range ({spec.low}..{high})"
        return int(number), None
    if spec.kind == "bool":
        word = text.lower()
        return (word in TRUE, None) if word in TRUE | FALSE else (
            None, f"{text!r} is not true or false")
    if spec.kind == "list":
        items = (list(text) if isinstance(text, tuple)  # "a,b" or JSON text too
                 else re.split(r"[,;|\s]+", text.strip("{}[] ")))
        items = [v.strip("\"' ") for v in items]
        unknown = [v for v in items if v and v not in spec.allowed]
        if unknown:
            return None, (f"unknown {spec.name} {', '.join(map(repr, unknown))}; allowed: "
                          f"{', '.join(spec.allowed)}")
        return sorted({v for v in items if v}), None
    return text, None


def split_geometry(geometry: Geometries, fmt: LayerFormat, extent: Box | None,
                   problems: list[RowProblem]) -> tuple[Geometries, Geometries]:
    """Return (points, footprints) from the file's geometries; a problem per bad one.

    A building given as a polygon has no point yet: the database places it in the grid
    holding most of the footprint.
    """
    points = np.full(len(geometry), None, dtype=object)
    footprints = np.full(len(geometry), None, dtype=object)
    for i, shape in enumerate(geometry):
        if shape is None or fmt.geometry is None:
            continue  # a missing geometry was reported by the reader
        if shape.geom_type == "MultiPoint" and len(shape.geoms) == 1:
            shape = shape.geoms[0]
        polygon = shape.geom_type in ("Polygon", "MultiPolygon") and fmt.geometry != "point"
        reason = spatial.polygon_problem(shape) if polygon else spatial.point_problem(shape)
        if reason is None or "swapped" in reason:
            misplaced = place_problem(shape.centroid, extent)
            if misplaced and (reason is None or misplaced.startswith("lat/lon swapped")):
                reason = misplaced
        if reason:
            problems.append(RowProblem(i + 1, "geometry", reason))
        elif polygon:
            footprints[i] = shapely.orient_polygons(shape)  # RFC 7946's winding, as we serve
        else:
            points[i] = shape
    return points, footprints


def place_problem(point: shapely.Point, extent: Box | None) -> str | None:
    """Return why a lon/lat point cannot be in the territory (swapped, far away), or None."""
    lon, lat = point.x, point.y
    if extent is None or _near(extent, lon, lat):
        return None
    if _near(extent, lat, lon):
        return (f"lat/lon swapped: ({lon:g}, {lat:g}) lies far outside the territory, "
                f"({lat:g}, {lon:g}) inside it")
    return f"far outside the territory: lon {lon:g}, lat {lat:g} (another CRS or place?)"


def _near(extent: Box, lon: float, lat: float) -> bool:
    west, south, east, north = extent
    return (west - FAR_OUTSIDE_DEG <= lon <= east + FAR_OUTSIDE_DEG
            and south - FAR_OUTSIDE_DEG <= lat <= north + FAR_OUTSIDE_DEG)
