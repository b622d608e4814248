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

import re
from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from gridgis.demo.outlines import (
    STREET_STEMS_EN,
    TERRITORY_SPECS,
    LonLat,
    StreetSpec,
    TerritorySpec,
)

SCALES = ("hengqin", "nansha", "city")
METRIC_CRS = "EPSG:32649"
GEOGRAPHIC_CRS = "EPSG:4326"
NODING_GRID_M = 0.05  # snap-rounding grid of the final coverage, metres
COORDINATE_DECIMALS = 7  # decimals of longitude/latitude degrees in the output
MIN_GRIDS_PER_COMMUNITY = 3

CODE_PATTERNS: dict[str, str] = {
    "district": r"^\d{6}$",
    "street": r"^\d{6}(?!000)[01]\d{2}$",
    "community": r"^\d{9}(?!000)[0-3]\d{2}$",
    "grid": r"^\d{12}(?!000)\d{3}$",
}
_PARENT_LENGTH = {6: None, 9: 6, 12: 9, 15: 12}

GRID_KIND_WEIGHTS: dict[str, dict[str, float]] = {
    "community": {"residential": 0.55, "mixed": 0.2, "commercial": 0.2, "industrial": 0.05},
    "village": {"village": 0.7, "industrial": 0.15, "mixed": 0.1, "ecological": 0.05},
}
HOUSEHOLD_RANGES: dict[str, tuple[int, int]] = {
    "residential": (350, 900), "village": (150, 500), "commercial": (60, 300),
    "mixed": (200, 700), "industrial": (20, 150), "port": (0, 60), "ecological": (0, 60),
}


def parent_code_of(code: str) -> str | None:
    """Return the parent code of an admin-unit or grid code (None for a district)."""
    if not code.isdigit() or len(code) not in _PARENT_LENGTH:
        raise ValueError(f"not a territory code: {code!r}")
    length = _PARENT_LENGTH[len(code)]
    return None if length is None else code[:length]


def match_level(code: str) -> str | None:
    """Return the level ("district", "street", "community", "grid") a code follows, if any."""
    return next((lvl for lvl, pat in CODE_PATTERNS.items() if re.match(pat, code)), None)


def project_lonlat(points: Sequence[LonLat]) -> np.ndarray:
    """Project (lon, lat) degrees to an (n, 2) array of EPSG:32649 metres."""
    transformer = Transformer.from_crs(GEOGRAPHIC_CRS, METRIC_CRS, always_xy=True)
    lon, lat = np.asarray(points, dtype=float).T
    return np.column_stack(transformer.transform(lon, lat))


def sample_points(
    parent: BaseGeometry, count: int, rng: np.random.Generator, zones: Sequence[tuple[float, Polygon]]
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
    sq = (samples**2).sum(axis=1)[:, None]
    for _ in range(15):
        labels = np.argmin(sq - 2 * samples @ centres.T + (centres**2).sum(axis=1), axis=1)
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
    parent: BaseGeometry,
    count: int,
    rng: np.random.Generator,
    zones: Sequence[tuple[float, Polygon]] = (),
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


def allocate_counts(weights: Sequence[float], total: int, minimum: int) -> list[int]:
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


def measure_effective_area(geoms: Sequence[BaseGeometry], zones: Sequence[tuple[float, Polygon]]):
    """Return areas (m²) with each zone's part scaled by its relative density."""
    areas = shapely.area(np.asarray(geoms, dtype=object)).astype(float)
    for density, zone in zones:
        areas -= (1 - density) * shapely.area(shapely.intersection(geoms, zone))
    return areas


def node_coverage(cells: Sequence[BaseGeometry]) -> list[list[Polygon]]:
    """Node the cells' linework on a NODING_GRID_M grid; return each cell's faces.

    Faces come from polygonising the snap-rounded boundaries, so neighbouring faces share
    identical vertices (no T-junctions) and any union of faces is an exact coverage union.
    """
    lines = shapely.union_all(shapely.boundary(cells), grid_size=NODING_GRID_M)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(lines)))
    tree = shapely.STRtree(cells)
    face_idx, cell_idx = tree.query(shapely.point_on_surface(faces), predicate="within")
    hits = np.bincount(face_idx, minlength=len(faces))
    owner = np.full(len(faces), -1)
    owner[face_idx[hits[face_idx] == 1]] = cell_idx[hits[face_idx] == 1]
    for f in np.flatnonzero(owner < 0):  # slivers on boundaries: largest overlap wins
        candidates = tree.query(faces[f])
        if len(candidates):
            overlap = shapely.area(shapely.intersection(faces[f], cells[candidates]))
            owner[f] = candidates[int(np.argmax(overlap))]
    result: list[list[Polygon]] = [[] for _ in cells]
    for f, o in enumerate(owner):
        if o >= 0:
            result[o].append(faces[f])
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


def name_generated(street: StreetSpec, kind: str, number: int) -> tuple[str, str]:
    """Return the illustrative (Chinese, English) name of a generated community."""
    stem = street.name.removesuffix("街道").removesuffix("镇")
    en = STREET_STEMS_EN.get(stem, stem)
    if kind == "village":
        return f"{stem}第{number}村", f"{en} Village {number}"
    return f"{stem}第{number}社区", f"{en} Community {number}"


def build_streets(spec: TerritorySpec, outline: Polygon, rng: np.random.Generator, zones):
    """Split the district outline (metres) into the spec's streets, in spec order."""
    cores = [s.core for s in spec.streets]
    if all(c is not None for c in cores):
        seeds = project_lonlat(cores) + rng.normal(0, spec.core_jitter_m, (len(cores), 2))
        return split_polygon(outline, len(cores), rng, seeds=seeds)
    return split_polygon(outline, len(cores), rng, zones)


def build_communities(spec, street, geom, counts, rng, zones) -> list[dict]:
    """Split one street (metres) into communities; return records ordered by code."""
    if street.communities:
        seeds = project_lonlat([c.core for c in street.communities])
        seeds += rng.normal(0, spec.core_jitter_m, seeds.shape)
        cells = split_polygon(geom, len(seeds), rng, seeds=seeds)
        return [
            {"name": c.name, "name_en": c.name_en, "kind": c.kind, "geom": cell}
            for c, cell in zip(street.communities, cells, strict=True)
        ]
    cells = split_polygon(geom, counts, rng, zones)
    core = project_lonlat([street.core])[0] if street.core else np.array(geom.centroid.coords[0])
    centroids = shapely.get_coordinates(shapely.centroid(np.asarray(cells, dtype=object)))
    by_distance = np.argsort(np.hypot(*(centroids - core).T), kind="stable")
    n_urban = round(street.urban_share * counts)
    records = []
    for rank, idx in enumerate(by_distance):
        kind = "community" if rank < n_urban else "village"
        number = rank + 1 if kind == "community" else rank + 1 - n_urban
        name, name_en = name_generated(street, kind, number)
        records.append({"name": name, "name_en": name_en, "kind": kind, "geom": cells[idx],
                        "number": number})
    return records


def classify_grids(cells, community_kind, zones_kind, rng) -> tuple[list[str], list[int]]:
    """Pick each grid's kind (zone majority, else weighted by community kind) and households."""
    kinds: list[str] = []
    households: list[int] = []
    weights = GRID_KIND_WEIGHTS[community_kind]
    areas = shapely.area(np.asarray(cells, dtype=object))
    zone_share = [
        (kind, shapely.area(shapely.intersection(cells, zone)) / areas) for kind, zone in zones_kind
    ]
    for i in range(len(cells)):
        kind = str(rng.choice(list(weights), p=list(weights.values())))
        for zone_kind, share in zone_share:
            if share[i] > 0.5:
                kind = zone_kind
        low, high = HOUSEHOLD_RANGES[kind]
        kinds.append(kind)
        households.append(int(rng.integers(low, high + 1)))
    return kinds, households


def build_territory(scale: str, seed: int = 2024) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Return (admin_units, grids) for a demo scale, EPSG:4326, deterministic from the seed.

    `admin_units` has code, name, name_en, level, parent_code, kind, geometry (district,
    streets, communities in that order); `grids` has code, name, community_code, kind,
    households, geometry. Geometries are valid MultiPolygons in longitude/latitude degrees.
    """
    if scale not in TERRITORY_SPECS:
        raise ValueError(f"unknown scale {scale!r}; expected one of {SCALES}")
    spec = TERRITORY_SPECS[scale]
    outline = Polygon(project_lonlat(spec.outline))
    zones = [(z.density, Polygon(project_lonlat(z.ring))) for z in spec.zones]
    zones_kind = [(z.kind, geom) for z, geom in zip(spec.zones, zones_geoms(zones), strict=True)]
    for _, zone in zones:
        shapely.prepare(zone)
    density_zones = [(d, z) for d, z in zones if d != 1.0]

    streets = build_streets(spec, outline, np.random.default_rng([seed, 1]), density_zones)
    per_street = [s.n_communities for s in spec.streets]
    if any(n is None for n in per_street):
        per_street = allocate_counts(shapely.area(streets), spec.n_communities, 3)
    street_codes = number_streets(spec.code, spec.streets)

    communities: list[dict] = []
    for k, (street, geom) in enumerate(zip(spec.streets, streets, strict=True)):
        rng = np.random.default_rng([seed, 2, k])
        records = build_communities(spec, street, geom, per_street[k], rng, density_zones)
        for rank, rec in enumerate(records):
            number = rec.pop("number", rank + 1)
            offset = 0 if rec["kind"] == "community" else 200
            rec.update(code=f"{street_codes[k]}{offset + number:03d}", street=k)
        communities.extend(sorted(records, key=lambda r: r["code"]))

    weights = measure_effective_area([c["geom"] for c in communities], density_zones)
    grid_counts = allocate_counts(weights, spec.n_grids, MIN_GRIDS_PER_COMMUNITY)
    grid_cells: list[BaseGeometry] = []
    grid_rows: list[dict] = []
    for k, (community, count) in enumerate(zip(communities, grid_counts, strict=True)):
        rng = np.random.default_rng([seed, 3, k])
        cells = split_polygon(community["geom"], count, rng, density_zones)
        band = float(np.sqrt(community["geom"].area / count))
        cells = [cells[i] for i in order_cells(cells, band)]
        kinds, households = classify_grids(cells, community["kind"], zones_kind, rng)
        for n, (kind, hh) in enumerate(zip(kinds, households, strict=True), start=1):
            grid_rows.append({
                "code": f"{community['code']}{n:03d}", "name": f"{community['name']}第{n}网格",
                "community_code": community["code"], "kind": kind, "households": hh,
                "community": k,
            })
        grid_cells.extend(cells)

    faces = node_coverage(grid_cells)
    grid_geoms = [merge_faces(f) for f in faces]
    community_faces: list[list[Polygon]] = [[] for _ in communities]
    for row, f in zip(grid_rows, faces, strict=True):
        community_faces[row.pop("community")].extend(f)
    community_geoms = [merge_faces(f) for f in community_faces]
    street_faces: list[list[Polygon]] = [[] for _ in spec.streets]
    for community, f in zip(communities, community_faces, strict=True):
        street_faces[community["street"]].extend(f)
    street_geoms = [merge_faces(f) for f in street_faces]
    district_geom = merge_faces([f for fs in street_faces for f in fs])

    admin_rows = [{"code": spec.code, "name": spec.name, "name_en": spec.name_en,
                   "level": "district", "parent_code": None, "kind": "district"}]
    admin_rows += [{"code": street_codes[k], "name": s.name, "name_en": s.name_en,
                    "level": "street", "parent_code": spec.code, "kind": s.kind}
                   for k, s in enumerate(spec.streets)]
    admin_rows += [{"code": c["code"], "name": c["name"], "name_en": c["name_en"],
                    "level": "community", "parent_code": street_codes[c["street"]],
                    "kind": c["kind"]} for c in communities]
    admin_geoms = [district_geom, *street_geoms, *community_geoms]
    admin = gpd.GeoDataFrame(admin_rows, geometry=to_lonlat(admin_geoms), crs=GEOGRAPHIC_CRS)
    grids = gpd.GeoDataFrame(grid_rows, geometry=to_lonlat(grid_geoms), crs=GEOGRAPHIC_CRS)
    grids["households"] = grids["households"].astype("int64")
    return admin, grids


def zones_geoms(zones: Sequence[tuple[float, Polygon]]) -> list[Polygon]:
    """Return the zone polygons (metres) without their densities."""
    return [z for _, z in zones]


def number_streets(district_code: str, streets: Sequence[StreetSpec]) -> list[str]:
    """Return each street's code: district + 001.. for 街道, + 100.. for 镇 (spec order)."""
    next_code = {"street": 1, "town": 100}
    suffixes = []
    for street in streets:
        suffixes.append(f"{district_code}{next_code[street.kind]:03d}")
        next_code[street.kind] += 1
    return suffixes


def to_lonlat(geoms: Sequence[BaseGeometry]) -> np.ndarray:
    """Transform metric geometries (EPSG:32649) to EPSG:4326, rounding to 7 decimals."""
    transformer = Transformer.from_crs(METRIC_CRS, GEOGRAPHIC_CRS, always_xy=True)

    def convert(xy: np.ndarray) -> np.ndarray:
        lon, lat = transformer.transform(xy[:, 0], xy[:, 1])
        return np.round(np.column_stack([lon, lat]), COORDINATE_DECIMALS)

    return shapely.transform(np.asarray(geoms, dtype=object), convert)
