"""Deterministic, real-looking demo territories: district > streets > communities > grids.

`build_territory(scale, seed)` returns `(admin_units, grids)` as GeoDataFrames in EPSG:4326
(longitude/latitude degrees, coordinates rounded to 7 decimals, about 1 cm). Everything is
generated in the metric CRS EPSG:32649 (UTM zone 49N, metres): each level is a Voronoi
diagram of well-spread seeds (k-means on density-weighted samples, a Lloyd relaxation)
clipped to its parent, then the whole coverage is noded on a 5 cm grid and every parent is
re-derived as the exact union of its children, so grids tile communities, communities tile
streets and streets tile the district with shared vertices (no gaps, no overlaps).

Code scheme (GB/T 2260 style district code, then 3 digits per level):

* district: 6 digits, e.g. ``440115`` (Nansha), ``440402`` (the Hengqin territory);
* street: district + 3 digits, ``001``-``099`` for a 街道 (kind "street"), ``100``-``199``
  for a 镇 (kind "town"), e.g. ``440402100`` 横琴镇;
* community: street + 3 digits, ``001``-``199`` for a 社区 (kind "community"), ``200``-``399``
  for a 村 (kind "village");
* grid: community + 3-digit sequence from ``001``, 15 digits in total.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from gridgis.demo import outlines
from gridgis.demo.outlines import LonLat, StreetSpec, TerritorySpec

SCALES = ("hengqin", "nansha", "city")
METRIC_CRS = "EPSG:32649"
GEOGRAPHIC_CRS = "EPSG:4326"
NODING_GRID_M = 0.05  # snap-rounding grid of the final coverage, metres
COORDINATE_DECIMALS = 7  # decimals of longitude/latitude degrees in the output
MIN_GRIDS_PER_COMMUNITY = 3


DensityZones = Sequence[tuple[float, Polygon]]  # (relative grid density, metric polygon)
KindZones = Sequence[tuple[str, Polygon]]  # (grid kind, metric polygon)


@dataclass(frozen=True)
class Community:
    """A generated community (社区) or village (村); `geom` is in EPSG:32649 metres."""

    code: str
    name: str
    name_en: str
    kind: str
    geom: BaseGeometry


def project_lonlat(points: Sequence[LonLat]) -> np.ndarray:
    """Project (lon, lat) degrees to an (n, 2) array of EPSG:32649 metres."""
    transformer = Transformer.from_crs(GEOGRAPHIC_CRS, METRIC_CRS, always_xy=True)
    lon, lat = np.asarray(points, dtype=float).T
    return np.column_stack(transformer.transform(lon, lat))


def sample_points(
    parent: BaseGeometry, count: int, rng: np.random.Generator, zones: DensityZones
) -> np.ndarray:
    """Draw `count` points (metres) inside `parent`, thinned to each zone's relative density."""
    xmin, ymin, xmax, ymax = parent.bounds
    found: list[np.ndarray] = []
    total = 0
    while total < count:
        xy = rng.uniform((xmin, ymin), (xmax, ymax), size=(max(4 * count, 64), 2))
        keep = shapely.contains_xy(parent, xy[:, 0], xy[:, 1])
        accept = np.ones(len(xy))
        for density, zone in zones:
            accept[shapely.contains_xy(zone, xy[:, 0], xy[:, 1])] *= density
        keep &= rng.random(len(xy)) < accept
        found.append(xy[keep])
        total += int(keep.sum())
    return np.concatenate(found)[:count]


def relax_seeds(samples: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Return `count` k-means centres of `samples` (a discrete Lloyd relaxation), metres."""
    centres = samples[rng.choice(len(samples), count, replace=False)].copy()
    for _ in range(15):  # nearest centre: |c|² - 2 x·c (|x|² is the same for every centre)
        labels = np.argmin((centres**2).sum(axis=1) - 2 * samples @ centres.T, axis=1)
        sizes = np.bincount(labels, minlength=count)
        sums = np.stack([np.bincount(labels, samples[:, k], minlength=count) for k in (0, 1)], 1)
        empty = sizes == 0
        centres[~empty] = sums[~empty] / sizes[~empty, None]
        centres[empty] = samples[rng.choice(len(samples), int(empty.sum()), replace=False)]
    return centres


def clip_voronoi(parent: BaseGeometry, seeds: np.ndarray) -> list[BaseGeometry]:
    """Return the Voronoi cells of `seeds` (metres) clipped to `parent`, in seed order.

    Secondary pieces of a cell cut off by a concave parent are merged into the neighbouring
    cell they share the longest edge with, so cells stay compact.
    """
    if len(seeds) == 1:
        return [parent]
    diagram = shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=parent, ordered=True)
    cells = list(shapely.intersection(shapely.get_parts(diagram), parent))
    for i in range(len(cells)):
        parts = sorted(shapely.get_parts(cells[i]), key=lambda p: -p.area)
        if len(parts) < 2:
            continue
        cells[i] = parts[0]
        for piece in parts[1:]:
            shared = shapely.length(shapely.intersection(piece.boundary, shapely.boundary(cells)))
            shared[i] = 0.0
            j = int(np.argmax(shared)) if shared.max() > 0 else i
            cells[j] = shapely.union(cells[j], piece)
    return cells


def split_polygon(
    parent: BaseGeometry, count: int, rng: np.random.Generator, zones: DensityZones = (),
    seeds: np.ndarray | None = None,
) -> list[BaseGeometry]:
    """Tile `parent` (metres) with `count` compact cells; fixed `seeds` are used as given.

    Without seeds a few k-means layouts are tried and the first whose smallest cell has at
    least 30 % of the mean cell area is kept (else the most even one).
    """
    if seeds is not None:
        return clip_voronoi(parent, seeds)
    best: list[BaseGeometry] = []
    best_ratio = -1.0
    for _ in range(6):
        samples = sample_points(parent, max(30 * count, 200), rng, zones)
        cells = clip_voronoi(parent, relax_seeds(samples, count, rng))
        areas = shapely.area(cells)
        ratio = float(areas.min() / areas.mean())
        if ratio > best_ratio:
            best, best_ratio = cells, ratio
        if ratio >= 0.3:
            break
    return best


def allocate_counts(
    weights: np.ndarray | Sequence[float], total: int, minimum: int
) -> list[int]:
    """Split `total` in proportion to `weights` (largest remainder), at least `minimum` each."""
    w = np.asarray(weights, dtype=float)
    quota = total * w / w.sum()
    counts = np.maximum(np.floor(quota).astype(int), minimum)
    while counts.sum() < total:
        counts[int(np.argmax(quota - counts))] += 1
    while counts.sum() > total:
        slack = np.where(counts > minimum, counts - quota, -np.inf)
        counts[int(np.argmax(slack))] -= 1
    return [int(c) for c in counts]


def measure_effective_area(geoms: Sequence[BaseGeometry], zones: DensityZones) -> np.ndarray:
    """Return areas (m²) with each zone's part scaled by its relative density."""
    areas = shapely.area(np.asarray(geoms, dtype=object)).astype(float)
    for density, zone in zones:
        areas -= (1 - density) * shapely.area(shapely.intersection(geoms, zone))
    return areas


def node_coverage(cell_list: Sequence[BaseGeometry]) -> list[list[Polygon]]:
    """Node the cells' linework on a NODING_GRID_M grid; return each cell's faces.

    Faces come from polygonising the snap-rounded boundaries, so neighbouring faces share
    identical vertices (no T-junctions) and any union of faces is an exact coverage union.
    """
    cells = np.asarray(cell_list, dtype=object)
    lines = shapely.union_all(shapely.boundary(cells), grid_size=NODING_GRID_M)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(lines)))
    tree = shapely.STRtree(cells)
    face_idx, cell_idx = tree.query(shapely.point_on_surface(faces), predicate="within")
    hits = np.bincount(face_idx, minlength=len(faces))
    owner = np.full(len(faces), -1)
    owner[face_idx[hits[face_idx] == 1]] = cell_idx[hits[face_idx] == 1]
    for sliver in np.flatnonzero(owner < 0):  # faces on no or two cells: largest overlap wins
        candidates = tree.query(faces[sliver])
        if len(candidates):
            overlap = shapely.area(shapely.intersection(faces[sliver], cells[candidates]))
            owner[sliver] = candidates[int(np.argmax(overlap))]
    result: list[list[Polygon]] = [[] for _ in cells]
    for face, cell in zip(faces, owner, strict=True):
        if cell >= 0:
            result[cell].append(face)
    if any(not r for r in result):
        raise RuntimeError("a cell lost all its faces while noding the coverage")
    return result


def merge_faces(faces: Sequence[Polygon]) -> MultiPolygon:
    """Return the exact coverage union of noded faces as a MultiPolygon."""
    merged = faces[0] if len(faces) == 1 else shapely.coverage_union_all(faces)
    return MultiPolygon(list(shapely.get_parts(merged)))


def order_cells(cells: Sequence[BaseGeometry], band_m: float) -> list[int]:
    """Return indices ordering cells north-to-south in bands of `band_m` metres, then west-east."""
    pts = shapely.centroid(np.asarray(cells, dtype=object))
    x, y = shapely.get_x(pts), shapely.get_y(pts)
    return sorted(range(len(cells)), key=lambda i: (-np.floor(y[i] / band_m), x[i]))


def build_streets(
    spec: TerritorySpec, outline: Polygon, rng: np.random.Generator, zones: DensityZones
) -> list[BaseGeometry]:
    """Split the district outline (metres) into the spec's streets, in spec order."""
    cores = [s.core for s in spec.streets if s.core is not None]
    if len(cores) == len(spec.streets):
        seeds = project_lonlat(cores) + rng.normal(0, spec.core_jitter_m, (len(cores), 2))
        return split_polygon(outline, len(cores), rng, seeds=seeds)
    return split_polygon(outline, len(spec.streets), rng, zones)


def number_streets(district_code: str, streets: Sequence[StreetSpec]) -> list[str]:
    """Return each street's code: district + 001.. for 街道, + 100.. for 镇 (spec order)."""
    next_suffix = {"street": 1, "town": 100}
    codes = []
    for street in streets:
        codes.append(f"{district_code}{next_suffix[street.kind]:03d}")
        next_suffix[street.kind] += 1
    return codes


def build_communities(
    spec: TerritorySpec, street: StreetSpec, street_code: str, geom: BaseGeometry, count: int,
    rng: np.random.Generator, zones: DensityZones,
) -> list[Community]:
    """Split one street (metres) into `count` communities; return them ordered by code.

    Named communities (hengqin) sit at their cores; generated ones are 社区 nearest the
    street core (its `urban_share`) and 村 further out, numbered by distance.
    """
    if street.communities:
        seeds = project_lonlat([c.core for c in street.communities])
        seeds += rng.normal(0, spec.core_jitter_m, seeds.shape)
        cells = split_polygon(geom, len(seeds), rng, seeds=seeds)
        return [
            Community(f"{street_code}{n:03d}", c.name, c.name_en, c.kind, cell)
            for n, (c, cell) in enumerate(zip(street.communities, cells, strict=True), start=1)
        ]
    cells = split_polygon(geom, count, rng, zones)
    core = project_lonlat([street.core])[0] if street.core else shapely.get_coordinates(
        geom.centroid
    )[0]
    centroids = shapely.get_coordinates(shapely.centroid(np.asarray(cells, dtype=object)))
    by_distance = np.argsort(np.hypot(*(centroids - core).T), kind="stable")
    n_urban = round(street.urban_share * count)
    stem = street.name.removesuffix("街道").removesuffix("镇")
    stem_en = outlines.STREET_STEMS_EN.get(stem, stem)
    communities = []
    for rank, idx in enumerate(by_distance):
        urban = rank < n_urban
        number = rank + 1 if urban else rank + 1 - n_urban
        code = f"{street_code}{number + (0 if urban else 200):03d}"
        if urban:
            names = (f"{stem}第{number}社区", f"{stem_en} Community {number}", "community")
        else:
            names = (f"{stem}第{number}村", f"{stem_en} Village {number}", "village")
        communities.append(Community(code, *names, cells[idx]))
    return communities


def classify_grids(
    cells: Sequence[BaseGeometry], community_kind: str, zones: KindZones, rng: np.random.Generator
) -> tuple[list[str], list[int]]:
    """Pick grid kinds (a zone covering > 50 % wins, else by community kind) and households."""
    weights = outlines.GRID_KIND_WEIGHTS[community_kind]
    geoms = np.asarray(cells, dtype=object)
    shares = [(kind, shapely.area(shapely.intersection(geoms, zone)) / shapely.area(geoms))
              for kind, zone in zones]
    kinds: list[str] = []
    households: list[int] = []
    for i in range(len(geoms)):
        kind = str(rng.choice(list(weights), p=list(weights.values())))
        kind = next((zone_kind for zone_kind, share in shares if share[i] > 0.5), kind)
        low, high = outlines.HOUSEHOLD_RANGES[kind]
        kinds.append(kind)
        households.append(int(rng.integers(low, high + 1)))
    return kinds, households


def build_grids(
    spec: TerritorySpec, seed: int, communities: Sequence[Community], density_zones: DensityZones,
    kind_zones: KindZones,
) -> tuple[list[BaseGeometry], list[dict[str, Any]], list[int]]:
    """Split the communities into the spec's number of grids (by effective area, >= 3 each).

    Returns the metric grid cells, their attribute rows and each one's community index.
    """
    weights = measure_effective_area([c.geom for c in communities], density_zones)
    counts = allocate_counts(weights, spec.n_grids, MIN_GRIDS_PER_COMMUNITY)
    cells_out: list[BaseGeometry] = []
    rows: list[dict[str, Any]] = []
    community_of: list[int] = []
    for k, (community, count) in enumerate(zip(communities, counts, strict=True)):
        rng = np.random.default_rng([seed, 3, k])
        cells = split_polygon(community.geom, count, rng, density_zones)
        cells = [cells[i] for i in order_cells(cells, np.sqrt(community.geom.area / count))]
        kinds, households = classify_grids(cells, community.kind, kind_zones, rng)
        for n, (kind, hh) in enumerate(zip(kinds, households, strict=True), start=1):
            rows.append({"code": f"{community.code}{n:03d}", "name": f"{community.name}第{n}网格",
                         "community_code": community.code, "kind": kind, "households": hh})
        cells_out += cells
        community_of += [k] * count
    return cells_out, rows, community_of


def build_territory(scale: str, seed: int = 2024) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Return (admin_units, grids) for a demo scale, EPSG:4326, deterministic from the seed.

    `admin_units` has code, name, name_en, level, parent_code, kind, geometry (district,
    streets, communities in that order); `grids` has code, name, community_code, kind,
    households, geometry. Geometries are valid MultiPolygons in longitude/latitude degrees.
    """
    if scale not in outlines.TERRITORY_SPECS:
        raise ValueError(f"unknown scale {scale!r}; expected one of {SCALES}")
    spec = outlines.TERRITORY_SPECS[scale]
    outline = Polygon(project_lonlat(spec.outline))
    zone_geoms = [Polygon(project_lonlat(z.ring)) for z in spec.zones]
    shapely.prepare(zone_geoms)
    density_zones = [(z.density, g) for z, g in zip(spec.zones, zone_geoms, strict=True)
                     if z.density != 1.0]
    kind_zones = [(z.kind, g) for z, g in zip(spec.zones, zone_geoms, strict=True)]

    streets = build_streets(spec, outline, np.random.default_rng([seed, 1]), density_zones)
    per_street = [s.n_communities or 0 for s in spec.streets]
    if not all(per_street):
        per_street = allocate_counts(shapely.area(streets), spec.n_communities, 3)
    street_codes = number_streets(spec.code, spec.streets)
    communities: list[Community] = []
    street_of: list[int] = []
    for k, street in enumerate(spec.streets):
        rng = np.random.default_rng([seed, 2, k])
        built = build_communities(
            spec, street, street_codes[k], streets[k], per_street[k], rng, density_zones
        )
        communities += built
        street_of += [k] * len(built)

    grid_cells, grid_rows, community_of = build_grids(
        spec, seed, communities, density_zones, kind_zones
    )
    # Node the grid coverage, then derive every parent as the exact union of its children.
    grid_faces = node_coverage(grid_cells)
    community_faces: list[list[Polygon]] = [[] for _ in communities]
    for k, faces in zip(community_of, grid_faces, strict=True):
        community_faces[k].extend(faces)
    street_faces: list[list[Polygon]] = [[] for _ in spec.streets]
    for k, faces in zip(street_of, community_faces, strict=True):
        street_faces[k].extend(faces)
    admin_geoms = [merge_faces([f for faces in street_faces for f in faces])]
    admin_geoms += [merge_faces(faces) for faces in street_faces + community_faces]

    rows: list[dict[str, Any]] = [{"code": spec.code, "name": spec.name, "name_en": spec.name_en,
                                   "level": "district", "parent_code": None, "kind": "district"}]
    rows += [{"code": code, "name": s.name, "name_en": s.name_en, "level": "street",
              "parent_code": spec.code, "kind": s.kind}
             for code, s in zip(street_codes, spec.streets, strict=True)]
    rows += [{"code": c.code, "name": c.name, "name_en": c.name_en, "level": "community",
              "parent_code": street_codes[k], "kind": c.kind}
             for c, k in zip(communities, street_of, strict=True)]
    admin = gpd.GeoDataFrame(rows, geometry=to_lonlat(admin_geoms), crs=GEOGRAPHIC_CRS)
    grid_geoms = to_lonlat([merge_faces(faces) for faces in grid_faces])
    grids = gpd.GeoDataFrame(grid_rows, geometry=grid_geoms, crs=GEOGRAPHIC_CRS)
    grids["households"] = grids["households"].astype("int64")
    return admin, grids


def to_lonlat(geoms: Sequence[BaseGeometry]) -> np.ndarray:
    """Transform metric geometries (EPSG:32649) to EPSG:4326, rounding to 7 decimals."""
    transformer = Transformer.from_crs(METRIC_CRS, GEOGRAPHIC_CRS, always_xy=True)

    def convert(xy: np.ndarray) -> np.ndarray:
        lon, lat = transformer.transform(xy[:, 0], xy[:, 1])
        return np.round(np.column_stack([lon, lat]), COORDINATE_DECIMALS)

    return shapely.transform(np.asarray(geoms, dtype=object), convert)
