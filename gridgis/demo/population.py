"""Generated buildings, party-mass stations and shelters inside loaded grids.

Input is the grids as a GeoDataFrame in EPSG:4326; sizes are in metres, computed in the
local UTM zone. One ``numpy.random.Generator`` drives it all, so a seed gives the same city.
"""

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from pyproj import Transformer

from gridgis import spatial
from gridgis.layers.models import BUILDING_USES

# Relative number of buildings per square root of km² by grid kind.
BUILDING_WEIGHT = {"residential": 1.0, "village": 1.4, "commercial": 0.6, "industrial": 0.5,
                   "mixed": 0.9, "port": 0.3, "ecological": 0.15}
# Building use shares by grid kind, in the order of BUILDING_USES:
# residential, commercial, industrial, public, school, hospital, mixed.
USE_SHARES = {
    "residential": (0.78, 0.07, 0.00, 0.05, 0.03, 0.01, 0.06),
    "village": (0.86, 0.04, 0.04, 0.03, 0.02, 0.00, 0.01),
    "commercial": (0.20, 0.55, 0.02, 0.08, 0.02, 0.02, 0.11),
    "industrial": (0.10, 0.05, 0.78, 0.03, 0.01, 0.00, 0.03),
    "mixed": (0.50, 0.20, 0.08, 0.07, 0.03, 0.02, 0.10),
    "port": (0.05, 0.10, 0.80, 0.03, 0.00, 0.00, 0.02),
    "ecological": (0.60, 0.05, 0.05, 0.25, 0.03, 0.00, 0.02),
}
# Floors (low, high) by use; village houses are low whatever their use.
FLOORS = {"residential": (6, 33), "commercial": (2, 30), "industrial": (1, 4), "public": (1, 5),
          "school": (3, 6), "hospital": (4, 20), "mixed": (4, 25)}
# Footprint half-sizes (metres) by use: (min, max) of each side's half.
HALF_SIZE = {"residential": (8, 20), "commercial": (10, 30), "industrial": (15, 45),
             "public": (8, 20), "school": (20, 50), "hospital": (20, 40), "mixed": (10, 25)}
# People per floor by use, the weight for spreading residents over buildings.
DWELLERS_PER_FLOOR = {"residential": 8.0, "mixed": 4.0, "commercial": 0.3, "industrial": 0.6,
                      "public": 0.1, "school": 0.05, "hospital": 0.05}
COASTAL_DISTANCE_M = 1_000.0


@dataclass(frozen=True)
class Buildings:
    """Column arrays of generated buildings."""

    grid_index: NDArray[np.int64]
    use: NDArray[np.str_]
    floors: NDArray[np.int64]
    risk_flags: list[list[str]]
    location: NDArray[np.object_]     # shapely Points, EPSG:4326
    footprint: NDArray[np.object_]    # shapely MultiPolygons, EPSG:4326

    def __len__(self) -> int:
        return len(self.grid_index)


def draw_buildings(rng: np.random.Generator, grids: gpd.GeoDataFrame, total: int) -> Buildings:
    """Return about ``total`` buildings spread over ``grids`` (at least one in each)."""
    metric = spatial.to_metric(grids.geometry.values)
    area_km2 = shapely.area(metric) / 1e6
    weight = grids["kind"].map(BUILDING_WEIGHT).to_numpy() * np.sqrt(area_km2)
    per_grid = rng.multinomial(max(total - len(grids), 0), weight / weight.sum()) + 1
    grid_index = np.repeat(np.arange(len(grids)), per_grid)
    kinds = grids["kind"].to_numpy()[grid_index]

    lon, lat = sample_points(rng, grids.geometry.values, per_grid)
    use = np.empty(len(grid_index), dtype=object)
    for kind, shares in USE_SHARES.items():
        mask = kinds == kind
        use[mask] = rng.choice(np.array(BUILDING_USES), size=mask.sum(), p=shares)
    use = use.astype(str)
    low = np.array([FLOORS[u][0] for u in use])
    high = np.array([FLOORS[u][1] for u in use])
    floors = np.where(kinds == "village", rng.integers(2, 6, size=len(use)),
                      np.minimum(low + rng.geometric(0.12, size=len(use)) - 1, high))

    crs = spatial.utm_crs(*_lonlat(grids))
    to_metric = Transformer.from_crs(spatial.WGS84, crs, always_xy=True)
    to_lonlat = Transformer.from_crs(crs, spatial.WGS84, always_xy=True)
    x, y = to_metric.transform(lon, lat)
    outline = shapely.union_all(metric).boundary
    coastal_grid = shapely.distance(shapely.centroid(metric), outline) < COASTAL_DISTANCE_M
    risk_flags = draw_risk_flags(rng, kinds, use, coastal_grid[grid_index],
                                 rng.random(len(grids))[grid_index] < 0.25)
    footprint = draw_footprints(rng, x, y, use, rng.uniform(0, np.pi, len(grids))[grid_index],
                                to_lonlat)
    return Buildings(grid_index=grid_index, use=use, floors=floors.astype(np.int64),
                     risk_flags=risk_flags, location=shapely.points(lon, lat),
                     footprint=footprint)


def _lonlat(grids: gpd.GeoDataFrame) -> tuple[float, float]:
    xmin, ymin, xmax, ymax = grids.total_bounds
    return (xmin + xmax) / 2, (ymin + ymax) / 2


def sample_points(rng: np.random.Generator, polygons: NDArray[np.object_],
                  counts: NDArray[np.int64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Return lon/lat arrays of ``counts[i]`` uniform random points inside ``polygons[i]``."""
    lon = np.empty(counts.sum())
    lat = np.empty(counts.sum())
    start = 0
    for polygon, count in zip(polygons, counts, strict=True):
        shapely.prepare(polygon)
        xmin, ymin, xmax, ymax = polygon.bounds
        got_x: list[NDArray[np.float64]] = []
        have = 0
        while have < count:
            tries = max(16, int(count * 2.5))
            px = rng.uniform(xmin, xmax, tries)
            py = rng.uniform(ymin, ymax, tries)
            inside = shapely.contains_xy(polygon, px, py)
            got_x.append(np.column_stack([px[inside], py[inside]]))
            have += int(inside.sum())
        points = np.concatenate(got_x)[:count]
        lon[start:start + count] = points[:, 0]
        lat[start:start + count] = points[:, 1]
        start += count
    return lon, lat


def draw_risk_flags(rng: np.random.Generator, kinds: NDArray[np.str_], use: NDArray[np.str_],
                    coastal: NDArray[np.bool_], low_lying_grid: NDArray[np.bool_]
                    ) -> list[list[str]]:
    """Return each building's risk flags (危房, 工棚, 临时建筑, 低洼, 沿海, 地质灾害)."""
    n = len(kinds)
    village = kinds == "village"
    works = np.isin(kinds, ["industrial", "port"])
    flags = {
        "dilapidated": rng.random(n) < np.where(village, 0.05, 0.006),
        "work_shed": (use == "industrial") & (rng.random(n) < np.where(works, 0.10, 0.02)),
        "temporary": rng.random(n) < np.where(works, 0.05, 0.012),
        "low_lying": low_lying_grid & (rng.random(n) < 0.5),
        "coastal": coastal & (rng.random(n) < 0.6),
        "geohazard": rng.random(n) < np.where(kinds == "ecological", 0.15, 0.003),
    }
    result: list[list[str]] = [[] for _ in range(n)]
    for flag, mask in flags.items():
        for i in np.flatnonzero(mask):
            result[i].append(flag)
    return result


def draw_footprints(rng: np.random.Generator, x: NDArray[np.float64], y: NDArray[np.float64],
                    use: NDArray[np.str_], angle: NDArray[np.float64],
                    to_lonlat: Transformer) -> NDArray[np.object_]:
    """Return rotated rectangular footprints around metric centres, as EPSG:4326 polygons."""
    n = len(x)
    low = np.array([HALF_SIZE[u][0] for u in use])
    high = np.array([HALF_SIZE[u][1] for u in use])
    half_w = rng.uniform(low, high)
    half_h = rng.uniform(low, high) * 0.6
    theta = angle + rng.normal(0, 0.12, n)
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]], dtype=float)
    dx = corners[None, :, 0] * half_w[:, None]
    dy = corners[None, :, 1] * half_h[:, None]
    cos, sin = np.cos(theta)[:, None], np.sin(theta)[:, None]
    px = x[:, None] + dx * cos - dy * sin
    py = y[:, None] + dx * sin + dy * cos
    lon, lat = to_lonlat.transform(px.ravel(), py.ravel())
    rings = np.stack([np.asarray(lon).reshape(n, 5), np.asarray(lat).reshape(n, 5)], axis=2)
    polygons = shapely.polygons(rings)
    return np.asarray(shapely.multipolygons(polygons, indices=np.arange(n)))


def residents_per_building(rng: np.random.Generator, buildings: Buildings,
                           total: int) -> NDArray[np.int64]:
    """Return how many of ``total`` residents live in each building (by floors and use)."""
    per_floor = np.array([DWELLERS_PER_FLOOR[u] for u in buildings.use])
    weight = per_floor * buildings.floors
    shed = np.array(["work_shed" in f for f in buildings.risk_flags])
    weight = np.where(shed, 10.0, weight)  # 工棚 house workers on site
    return np.asarray(rng.multinomial(total, weight / weight.sum()), dtype=np.int64)


def pick_sites(rng: np.random.Generator, frame: pd.DataFrame, group: str, per_group: pd.Series,
               prefer: NDArray[np.bool_] | None = None) -> pd.DataFrame:
    """Return ``per_group[g]`` distinct rows of ``frame`` for each group ``g`` (preferred first)."""
    score = rng.random(len(frame)) + (prefer.astype(float) if prefer is not None else 0.0)
    ranked = frame.assign(_score=score).sort_values([group, "_score"], ascending=[True, False])
    ranked["_rank"] = ranked.groupby(group).cumcount()
    wanted = ranked[group].map(per_group).fillna(0)
    return ranked[ranked["_rank"] < wanted].drop(columns=["_score"])
