"""Hand-drawn outlines, names, layout hints and land-use tables for the demo territories.

All coordinates are (longitude, latitude) pairs in degrees, EPSG:4326. The outlines are
approximations drawn from general knowledge for a demo, not surveyed boundaries; community
names of the generated scales are illustrative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

LonLat = tuple[float, float]


@dataclass(frozen=True)
class CommunitySpec:
    """A named community with an approximate centre (lon, lat in degrees)."""

    name: str
    name_en: str
    kind: str  # "community" (社区) or "village" (村)
    core: LonLat


@dataclass(frozen=True)
class StreetSpec:
    """A street (街道) or town (镇); `core` is its approximate centre (lon, lat in degrees).

    `n_communities` None means "allocate from the territory total by area"; `urban_share` is
    the share of its communities that are 社区 (the rest are 村), the ones nearest the core.
    """

    name: str
    name_en: str
    kind: str  # "street" (街道) or "town" (镇)
    core: LonLat | None = None
    n_communities: int | None = None
    urban_share: float = 1.0
    communities: tuple[CommunitySpec, ...] = ()


@dataclass(frozen=True)
class ZoneSpec:
    """A land-use zone: grids mostly inside take `kind`; `density` scales grid density there."""

    kind: str
    density: float
    ring: tuple[LonLat, ...]


@dataclass(frozen=True)
class TerritorySpec:
    """Everything needed to generate one demo scale."""

    code: str
    name: str
    name_en: str
    outline: tuple[LonLat, ...]
    streets: tuple[StreetSpec, ...]
    n_communities: int
    n_grids: int
    zones: tuple[ZoneSpec, ...] = field(default_factory=tuple)
    core_jitter_m: float = 300.0


# Hengqin island, clockwise from the north-west; the east coast stays west of the channel
# facing Macau's Taipa/Cotai/Coloane, the northern dip and eastern inlet form the "waist"
# where the former Dahengqin and Xiaohengqin islands were joined by reclamation.
HENGQIN_OUTLINE: tuple[LonLat, ...] = (
    (113.440, 22.139), (113.452, 22.146), (113.466, 22.151), (113.483, 22.154),
    (113.500, 22.155), (113.511, 22.152), (113.519, 22.146), (113.526, 22.152),
    (113.534, 22.158), (113.541, 22.158), (113.545, 22.152), (113.546, 22.144),
    (113.545, 22.137), (113.540, 22.132), (113.543, 22.124), (113.541, 22.113),
    (113.537, 22.102), (113.531, 22.093), (113.522, 22.086), (113.510, 22.081),
    (113.497, 22.079), (113.485, 22.081), (113.473, 22.085), (113.462, 22.088),
    (113.451, 22.092), (113.441, 22.098), (113.434, 22.106), (113.431, 22.116),
    (113.432, 22.126), (113.435, 22.133),
)

HENGQIN = TerritorySpec(
    code="440402",
    name="横琴粤澳深度合作区",
    name_en="Guangdong-Macao In-Depth Cooperation Zone in Hengqin",
    outline=HENGQIN_OUTLINE,
    streets=(
        StreetSpec(
            "横琴镇", "Hengqin Town", "town", (113.515, 22.125), 4,
            communities=(
                CommunitySpec("小横琴社区", "Xiaohengqin Community", "community",
                              (113.532, 22.149)),
                CommunitySpec("新家园社区", "Xinjiayuan Community", "community",
                              (113.505, 22.143)),
                CommunitySpec("荷塘社区", "Hetang Community", "community", (113.462, 22.118)),
                CommunitySpec("莲花社区", "Lianhua Community", "community", (113.536, 22.122)),
            ),
        ),
    ),
    n_communities=4,
    n_grids=40,
    zones=(
        # Mountainous centre of Dahengqin (脑背山 and ridges) and the Xiaohengqin hill.
        ZoneSpec("ecological", 0.12, (
            (113.470, 22.117), (113.484, 22.126), (113.500, 22.129), (113.516, 22.126),
            (113.530, 22.116), (113.530, 22.103), (113.516, 22.093), (113.497, 22.089),
            (113.480, 22.095), (113.470, 22.105),
        )),
        ZoneSpec("ecological", 0.12, (
            (113.527, 22.150), (113.536, 22.155), (113.542, 22.150), (113.534, 22.144),
        )),
    ),
)

# Nansha district, clockwise from the north-west tip (Lanhe) along the Panyu border, down the
# Lion Channel / Jiaomen coast, round Longxue island and the Wanqingsha tip, and back up the
# Hongqili / Jiaomen waterways on the Zhongshan / Shunde side.
NANSHA_OUTLINE: tuple[LonLat, ...] = (
    (113.300, 22.850), (113.330, 22.875), (113.365, 22.886), (113.400, 22.895),
    (113.430, 22.905), (113.460, 22.915), (113.490, 22.910), (113.510, 22.895),
    (113.525, 22.876), (113.545, 22.861), (113.565, 22.846), (113.585, 22.825),
    (113.600, 22.800), (113.612, 22.775), (113.624, 22.750), (113.630, 22.726),
    (113.650, 22.711), (113.670, 22.691), (113.681, 22.665), (113.673, 22.640),
    (113.656, 22.615), (113.640, 22.595), (113.620, 22.576), (113.601, 22.560),
    (113.585, 22.565), (113.570, 22.585), (113.555, 22.610), (113.540, 22.635),
    (113.525, 22.660), (113.505, 22.680), (113.485, 22.700), (113.465, 22.719),
    (113.440, 22.734), (113.415, 22.746), (113.390, 22.760), (113.370, 22.775),
    (113.350, 22.790), (113.330, 22.806), (113.310, 22.826),
)

NANSHA = TerritorySpec(
    code="440115",
    name="广州市南沙区",
    name_en="Nansha District, Guangzhou",
    outline=NANSHA_OUTLINE,
    streets=(
        StreetSpec("南沙街道", "Nansha Subdistrict", "street", (113.590, 22.770), 22, 0.73),
        StreetSpec("珠江街道", "Zhujiang Subdistrict", "street", (113.555, 22.705), 12, 0.5),
        StreetSpec("龙穴街道", "Longxue Subdistrict", "street", (113.650, 22.665), 6, 0.67),
        StreetSpec("万顷沙镇", "Wanqingsha Town", "town", (113.580, 22.620), 20, 0.2),
        StreetSpec("横沥镇", "Hengli Town", "town", (113.500, 22.735), 15, 0.27),
        StreetSpec("黄阁镇", "Huangge Town", "town", (113.540, 22.815), 17, 0.35),
        StreetSpec("东涌镇", "Dongchong Town", "town", (113.470, 22.870), 24, 0.17),
        StreetSpec("大岗镇", "Dagang Town", "town", (113.410, 22.800), 24, 0.21),
        StreetSpec("榄核镇", "Lanhe Town", "town", (113.350, 22.830), 18, 0.11),
    ),
    n_communities=158,
    n_grids=1292,
    zones=(
        ZoneSpec("port", 1.0, (  # Nansha port on Longxue island
            (113.636, 22.700), (113.668, 22.690), (113.679, 22.662), (113.666, 22.632),
            (113.641, 22.640),
        )),
        ZoneSpec("ecological", 0.5, (  # Nansha wetland park at the Wanqingsha tip
            (113.590, 22.600), (113.625, 22.613), (113.645, 22.600), (113.620, 22.574),
            (113.596, 22.568),
        )),
    ),
    core_jitter_m=600.0,
)


def draw_city_outline(
    centre: LonLat = (113.30, 23.12), radius_km: float = 33.0, n_vertices: int = 36
) -> tuple[LonLat, ...]:
    """Return a wobbly, roughly 60 x 60 km closed outline around `centre` (lon, lat degrees)."""
    lon0, lat0 = centre
    km_per_deg_lat = 110.57
    km_per_deg_lon = 111.32 * math.cos(math.radians(lat0))
    points = []
    for i in range(n_vertices):
        theta = 2 * math.pi * i / n_vertices
        r = radius_km * (1 + 0.10 * math.sin(3 * theta + 0.5) + 0.05 * math.cos(5 * theta + 1.3))
        # A squarish super-ellipse keeps the extent close to 60 x 60 km.
        c, s = math.cos(theta), math.sin(theta)
        squash = (abs(c) ** 4 + abs(s) ** 4) ** -0.25 * 0.85
        points.append(
            (
                round(lon0 + r * squash * c / km_per_deg_lon, 5),
                round(lat0 + r * squash * s / km_per_deg_lat, 5),
            )
        )
    return tuple(points)


CITY = TerritorySpec(
    code="440100",
    name="基准城市",
    name_en="Benchmark City",
    outline=draw_city_outline(),
    streets=(
        StreetSpec("东湖街道", "Donghu Subdistrict", "street"),
        StreetSpec("西岭街道", "Xiling Subdistrict", "street"),
        StreetSpec("南岸街道", "Nan'an Subdistrict", "street"),
        StreetSpec("北园街道", "Beiyuan Subdistrict", "street"),
        StreetSpec("中心街道", "Zhongxin Subdistrict", "street"),
        StreetSpec("新城街道", "Xincheng Subdistrict", "street"),
        StreetSpec("滨江街道", "Binjiang Subdistrict", "street"),
        StreetSpec("云山街道", "Yunshan Subdistrict", "street"),
        StreetSpec("白沙镇", "Baisha Town", "town", urban_share=0.3),
        StreetSpec("石岗镇", "Shigang Town", "town", urban_share=0.3),
        StreetSpec("龙田镇", "Longtian Town", "town", urban_share=0.3),
    ),
    n_communities=200,
    n_grids=20_000,
)

TERRITORY_SPECS: dict[str, TerritorySpec] = {"hengqin": HENGQIN, "nansha": NANSHA, "city": CITY}

# Probabilities of each grid kind by community kind (before land-use zones override them).
GRID_KIND_WEIGHTS: dict[str, dict[str, float]] = {
    "community": {"residential": 0.55, "mixed": 0.2, "commercial": 0.2, "industrial": 0.05},
    "village": {"village": 0.7, "industrial": 0.15, "mixed": 0.1, "ecological": 0.05},
}
# Plausible (min, max) households of a grid by grid kind.
HOUSEHOLD_RANGES: dict[str, tuple[int, int]] = {
    "residential": (350, 900), "village": (150, 500), "commercial": (60, 300),
    "mixed": (200, 700), "industrial": (20, 150), "port": (0, 60), "ecological": (0, 60),
}

STREET_STEMS_EN: dict[str, str] = {
    "南沙": "Nansha", "珠江": "Zhujiang", "龙穴": "Longxue", "万顷沙": "Wanqingsha",
    "横沥": "Hengli", "黄阁": "Huangge", "东涌": "Dongchong", "大岗": "Dagang", "榄核": "Lanhe",
    "东湖": "Donghu", "西岭": "Xiling", "南岸": "Nan'an", "北园": "Beiyuan", "中心": "Zhongxin",
    "新城": "Xincheng", "滨江": "Binjiang", "云山": "Yunshan", "白沙": "Baisha",
    "石岗": "Shigang", "龙田": "Longtian", "横琴": "Hengqin",
}
