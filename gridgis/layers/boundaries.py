"""Boundary files in: admin units and grids, checked before anything is written.

A boundary load is all or nothing. Every problem is reported with the file, the feature
(its code and row) and the reason; the caller's transaction then writes nothing.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from sqlalchemy import Connection, text

from gridgis import spatial
from gridgis.errors import InvalidInput
from gridgis.layers.codes import COMPILED as CODE_PATTERNS
from gridgis.layers.models import ADMIN_KINDS, ADMIN_LEVELS, GRID_KINDS

ADMIN_COLUMNS = ("code", "name", "level", "kind", "parent_code")
GRID_COLUMNS = ("code", "name", "community_code", "kind")
# A child may leave its parent by this much (rounding of shared edges), in square metres.
CONTAINMENT_TOLERANCE_M2 = 5.0
PARENT_LEVEL = {"street": "district", "community": "street"}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one feature of a boundary file."""

    source: str
    row: int
    code: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: feature {self.row} (code {self.code}): {self.reason}"


class BoundaryError(InvalidInput):
    """A boundary load refused, with every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        shown = "\n  ".join(str(p) for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"boundary load refused, nothing written:\n  {shown}{more}")


def read_layer(path: Path, columns: tuple[str, ...]) -> gpd.GeoDataFrame:
    """Return the features of a boundary file in EPSG:4326; raise if unreadable or lacking."""
    try:
        frame = gpd.read_file(path, engine="pyogrio")
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, OSError) as exc:
        raise InvalidInput(f"{path}: cannot be read as a boundary file: {exc}") from exc
    if frame.empty:
        raise InvalidInput(f"{path}: no features")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidInput(f"{path}: missing column(s) {', '.join(missing)}")
    if frame.crs is None:
        raise InvalidInput(f"{path}: no coordinate reference system; say which CRS it uses")
    frame = frame.to_crs(spatial.WGS84)
    # Files from QGIS or shapefiles often carry Z; boundaries are 2D.
    frame = frame.set_geometry(shapely.force_2d(frame.geometry.values), crs=spatial.WGS84)
    frame["code"] = frame["code"].astype(str)
    frame.attrs["source"] = path.name
    frame.attrs["required"] = columns
    return frame


def check_admin_units(units: gpd.GeoDataFrame) -> list[Problem]:
    """Return the problems of an admin-unit layer: geometry, level, codes, nesting."""
    source = units.attrs.get("source", "admin units")
    problems = _check_features(units, source, "level", CODE_PATTERNS)
    by_code = {code: i for i, code in enumerate(units["code"])}
    for i, row in enumerate(units.itertuples(index=False)):
        if row.level not in ADMIN_LEVELS:
            problems.append(Problem(source, i + 1, row.code, f"unknown level {row.level!r}"))
            continue
        if row.kind not in ADMIN_KINDS:
            problems.append(Problem(source, i + 1, row.code, f"unknown kind {row.kind!r}"))
        parent = row.parent_code if isinstance(row.parent_code, str) else None
        if row.level == "district":
            if parent:
                problems.append(Problem(source, i + 1, row.code, "a district has no parent"))
            continue
        if parent is None or parent not in by_code:
            problems.append(Problem(source, i + 1, row.code, f"unknown parent {parent!r}"))
            continue
        expected = PARENT_LEVEL[row.level]
        if units["level"].iloc[by_code[parent]] != expected:
            problems.append(
                Problem(source, i + 1, row.code, f"parent {parent} is not a {expected}")
            )
        elif not row.code.startswith(parent):
            problems.append(Problem(source, i + 1, row.code, f"code does not extend {parent}"))
    if not problems:
        parents = units.set_index("code").geometry
        problems += _check_containment(units, "parent_code", parents, source, "its parent")
    return problems


def check_grids(grids: gpd.GeoDataFrame, units: gpd.GeoDataFrame) -> list[Problem]:
    """Return the problems of a grid layer checked against its communities."""
    source = grids.attrs.get("source", "grids")
    problems = _check_features(grids, source, None, {"grid": CODE_PATTERNS["grid"]})
    communities = units[units["level"] == "community"].set_index("code").geometry
    for i, row in enumerate(grids.itertuples(index=False)):
        if row.kind not in GRID_KINDS:
            problems.append(Problem(source, i + 1, row.code, f"unknown kind {row.kind!r}"))
        if row.community_code not in communities.index:
            problems.append(
                Problem(source, i + 1, row.code, f"unknown community {row.community_code!r}")
            )
        elif not row.code.startswith(row.community_code):
            problems.append(
                Problem(source, i + 1, row.code, f"code does not extend {row.community_code}")
            )
    if not problems:
        problems += _check_containment(
            grids, "community_code", communities, source, "its community"
        )
    return problems


def _check_features(frame: gpd.GeoDataFrame, source: str, level_column: str | None,
                    patterns: dict[str, re.Pattern[str]]) -> list[Problem]:
    """Return problems shared by every boundary layer: geometry, code scheme, duplicates."""
    problems = []
    seen: dict[str, int] = {}
    required = frame.attrs.get("required", ())
    if "households" in frame.columns:
        households = pd.to_numeric(frame["households"], errors="coerce")
        for bad in np.flatnonzero(households.isna() | (households < 0)):
            problems.append(Problem(source, int(bad) + 1, frame["code"].iloc[bad],
                                    f"households {frame['households'].iloc[bad]!r} is not a "
                                    f"number of households"))
    for i, (code, geometry) in enumerate(zip(frame["code"], frame.geometry, strict=True)):
        row = i + 1
        for column in required:
            value = frame[column].iloc[i]
            if column != "parent_code" and (value is None or value != value or value == ""):
                problems.append(Problem(source, row, code, f"no {column}"))
        level = frame[level_column].iloc[i] if level_column else "grid"
        pattern = patterns.get(level)
        if pattern is not None and not pattern.match(code):
            problems.append(Problem(source, row, code, f"code breaks the {level} code scheme"))
        if code in seen:
            problems.append(Problem(source, row, code, f"duplicate code (as feature {seen[code]})"))
        seen.setdefault(code, row)
        reason = spatial.polygon_problem(geometry)
        if reason:
            problems.append(Problem(source, row, code, reason))
    return problems


def _check_containment(children: gpd.GeoDataFrame, parent_column: str, parents: pd.Series,
                       source: str, what: str) -> list[Problem]:
    """Return a problem per child that leaves its parent by more than the tolerance."""
    has_parent = children[parent_column].isin(parents.index)
    inner = children[has_parent]
    outside = spatial.area_outside_m2(inner.geometry.values,
                                      parents.loc[inner[parent_column]].values)
    return [
        Problem(source, int(i) + 1, code, f"leaves {what} {parent} by {area:.0f} m²")
        for i, code, parent, area in zip(
            inner.index, inner["code"], inner[parent_column], outside, strict=True
        )
        if area > CONTAINMENT_TOLERANCE_M2
    ]


def insert_boundaries(conn: Connection, units: gpd.GeoDataFrame,
                      grids: gpd.GeoDataFrame) -> None:
    """Write checked admin units (parents first) and grids in the caller's transaction."""
    problems = check_admin_units(units)
    problems += check_grids(grids, units) if not problems else []
    if problems:
        raise BoundaryError(problems)
    order = units["level"].map({level: i for i, level in enumerate(ADMIN_LEVELS)})
    for _, unit in units.assign(_order=order).sort_values("_order", kind="stable").iterrows():
        conn.execute(
            text(
                "INSERT INTO admin_unit (code, name, name_en, level, kind, parent_id, boundary) "
                "SELECT :code, :name, :name_en, :level, :kind, "
                "(SELECT id FROM admin_unit WHERE code = :parent), "
                "ST_Multi(ST_GeomFromWKB(:wkb, 4326))"
            ),
            {
                "code": unit["code"], "name": unit["name"], "name_en": unit.get("name_en"),
                "level": unit["level"], "kind": unit["kind"],
                "parent": unit["parent_code"] if isinstance(unit["parent_code"], str) else None,
                "wkb": shapely.to_wkb(unit.geometry),
            },
        )
    conn.execute(
        text(
            "INSERT INTO grid (code, name, community_id, kind, households, boundary) "
            "SELECT :code, :name, (SELECT id FROM admin_unit WHERE code = :community), :kind, "
            ":households, ST_Multi(ST_GeomFromWKB(:wkb, 4326))"
        ),
        [
            {
                "code": g.code, "name": g.name, "community": g.community_code, "kind": g.kind,
                "households": int(getattr(g, "households", 0) or 0),
                "wkb": shapely.to_wkb(g.geometry),
            }
            for g in grids.itertuples(index=False)
        ],
    )
