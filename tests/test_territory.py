"""Tests for the demo territory generator and the committed boundary files (no database)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely

from gridgis.demo.territory import SCALES, build_territory
from gridgis.layers.codes import CODE_PATTERNS, parent_code_of

BOUNDARIES = Path(__file__).resolve().parents[1] / "data" / "boundaries"
METRIC_CRS = "EPSG:32649"
TOLERANCE_M2 = 1.0
EXPECTED = {
    # scale: (streets, communities, grids)
    "hengqin": (1, 4, 40),
    "nansha": (9, 158, 1292),
}
NANSHA_STREETS = {
    "南沙街道": "street", "珠江街道": "street", "龙穴街道": "street", "万顷沙镇": "town",
    "横沥镇": "town", "黄阁镇": "town", "东涌镇": "town", "大岗镇": "town", "榄核镇": "town",
}
GRID_KINDS = {"residential", "village", "commercial", "industrial", "mixed", "port", "ecological"}


@cache
def read_scale(scale: str) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Read the committed admin-unit and grid files of a scale."""
    admin = gpd.read_file(BOUNDARIES / f"{scale}_admin_units.geojson", engine="pyogrio")
    grids = gpd.read_file(BOUNDARIES / f"{scale}_grids.geojson", engine="pyogrio")
    return admin, grids


def measure_tiling(parent: shapely.Geometry, children: np.ndarray) -> tuple[float, float]:
    """Return (gap, overlap) areas in m² of metric `children` against their metric `parent`."""
    union = shapely.union_all(children)
    overlap = float(shapely.area(children).sum() - union.area)
    gap = float(parent.symmetric_difference(union).area)
    return gap, overlap


@pytest.mark.parametrize("scale", sorted(EXPECTED))
def test_counts_and_columns(scale: str) -> None:
    admin, grids = read_scale(scale)
    n_streets, n_communities, n_grids = EXPECTED[scale]
    assert admin["level"].value_counts().to_dict() == {
        "district": 1, "street": n_streets, "community": n_communities,
    }
    assert list(admin["level"]) == sorted(admin["level"], key=["district", "street",
                                                              "community"].index)
    assert len(grids) == n_grids
    assert {"code", "name", "name_en", "level", "parent_code", "kind"} <= set(admin.columns)
    assert {"code", "name", "community_code", "kind", "households"} <= set(grids.columns)
    assert set(grids["kind"]) <= GRID_KINDS
    assert grids["households"].between(0, 1000).all()
    assert grids["households"].dtype.kind == "i"
    for name, code in zip(grids["name"], grids["code"], strict=True):
        assert re.fullmatch(r".+(社区|村)第\d+网格", name)
        assert name.endswith(f"第{int(code[-3:])}网格")


def test_real_names() -> None:
    admin, _ = read_scale("hengqin")
    assert admin.loc[admin["level"] == "district", "code"].tolist() == ["440402"]
    assert admin.loc[admin["level"] == "street", "code"].tolist() == ["440402100"]
    assert set(admin.loc[admin["level"] == "community", "name"]) == {
        "小横琴社区", "新家园社区", "荷塘社区", "莲花社区",
    }
    admin, _ = read_scale("nansha")
    streets = admin[admin["level"] == "street"]
    assert dict(zip(streets["name"], streets["kind"], strict=True)) == NANSHA_STREETS
    assert admin.loc[admin["level"] == "district", "code"].tolist() == ["440115"]
    kind_of = dict(zip(admin["code"], admin["kind"], strict=True))
    villages = admin[admin["kind"] == "village"]
    assert villages["parent_code"].map(kind_of).eq("town").mean() > 0.8


@pytest.mark.parametrize("scale", sorted(EXPECTED))
def test_geometries_valid(scale: str) -> None:
    for frame in read_scale(scale):
        assert frame.crs is not None and frame.crs.to_epsg() == 4326
        assert (frame.geom_type == "MultiPolygon").all()
        assert frame.is_valid.all() and not frame.is_empty.any()
        xmin, ymin, xmax, ymax = frame.total_bounds
        assert 113.2 < xmin < xmax < 113.8 and 22.0 < ymin < ymax < 23.0


@pytest.mark.parametrize("scale", sorted(EXPECTED))
def test_codes_follow_scheme(scale: str) -> None:
    admin, grids = read_scale(scale)
    codes = {**dict(zip(admin["code"], admin["level"], strict=True))}
    assert admin["code"].is_unique and grids["code"].is_unique
    for code, level, parent, kind in admin[["code", "level", "parent_code", "kind"]].itertuples(
        index=False
    ):
        assert re.match(CODE_PATTERNS[level], code)
        expected_parent = parent_code_of(code)
        assert (parent if isinstance(parent, str) else None) == expected_parent
        if expected_parent is not None:
            assert codes[expected_parent] == {"street": "district", "community": "street"}[level]
        suffix = int(code[-3:])
        if kind in ("street", "community"):
            assert 1 <= suffix <= 99 if kind == "street" else suffix <= 199
        elif kind == "town":
            assert 100 <= suffix <= 199
        elif kind == "village":
            assert 200 <= suffix <= 399
    for code, community in zip(grids["code"], grids["community_code"], strict=True):
        assert re.match(CODE_PATTERNS["grid"], code)
        assert parent_code_of(code) == community and codes[community] == "community"
    sequences = grids.groupby("community_code")["code"].apply(lambda c: sorted(int(x[-3:])
                                                                             for x in c))
    assert all(seq == list(range(1, len(seq) + 1)) for seq in sequences)
    assert sequences.map(len).min() >= 3


def test_parent_code_of() -> None:
    assert parent_code_of("440115") is None
    assert parent_code_of("440115100") == "440115"
    assert parent_code_of("440115100201") == "440115100"
    assert parent_code_of("440115100201007") == "440115100201"
    with pytest.raises(ValueError):
        parent_code_of("4401")


@pytest.mark.parametrize("scale", sorted(EXPECTED))
def test_children_tile_parents(scale: str) -> None:
    admin, grids = read_scale(scale)
    admin_m = admin.to_crs(METRIC_CRS)
    grids_m = grids.to_crs(METRIC_CRS)
    geom_of = dict(zip(admin_m["code"], admin_m.geometry, strict=True))
    children = [(grids_m["community_code"], grids_m.geometry)]
    children.append((admin_m["parent_code"], admin_m.geometry))
    for parent_codes, geoms in children:
        for parent, group in geoms.groupby(parent_codes.to_numpy()):
            gap, overlap = measure_tiling(geom_of[parent], group.to_numpy())
            assert gap < TOLERANCE_M2, (parent, gap)
            assert overlap < TOLERANCE_M2, (parent, overlap)


@pytest.mark.parametrize("scale", sorted(EXPECTED))
def test_no_sliver_grids(scale: str) -> None:
    _, grids = read_scale(scale)
    areas = grids.to_crs(METRIC_CRS).area
    ratio = areas / areas.groupby(grids["community_code"]).transform("mean")
    assert ratio.min() >= 0.2


@pytest.mark.parametrize("scale", sorted(EXPECTED))
def test_files_match_generator(scale: str) -> None:
    """The committed files are what make_boundaries.py writes with the default seed."""
    for built, stored in zip(build_territory(scale), read_scale(scale), strict=True):
        assert list(built["code"]) == list(stored["code"])
        for column in ("name", "kind"):
            assert list(built[column]) == list(stored[column])
        diff = built.to_crs(METRIC_CRS).symmetric_difference(stored.to_crs(METRIC_CRS))
        assert diff.area.max() < TOLERANCE_M2


def test_deterministic_from_seed() -> None:
    admin_a, grids_a = build_territory("hengqin", seed=11)
    admin_b, grids_b = build_territory("hengqin", seed=11)
    assert list(grids_a["code"]) == list(grids_b["code"])
    assert grids_a.geometry.geom_equals_exact(grids_b.geometry, tolerance=0).all()
    assert admin_a.geometry.geom_equals_exact(admin_b.geometry, tolerance=0).all()
    assert list(grids_a["households"]) == list(grids_b["households"])
    _, grids_c = build_territory("hengqin", seed=12)
    assert not grids_a.geometry.geom_equals_exact(grids_c.geometry, tolerance=1e-6).all()


def test_city_counts() -> None:
    admin, grids = build_territory("city")
    assert admin["level"].value_counts().to_dict() == {
        "district": 1, "street": 11, "community": 200,
    }
    assert len(grids) == 20_000 and grids["code"].is_unique
    assert admin.loc[0, "code"] == "440100"
    assert grids.groupby("community_code").size().min() >= 3


def test_unknown_scale() -> None:
    assert SCALES == ("hengqin", "nansha", "city")
    with pytest.raises(ValueError):
        build_territory("atlantis")
