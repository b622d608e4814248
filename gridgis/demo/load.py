"""``gridgis demo load``: boundaries from files (or generated for ``city``), then people.

The whole load is one transaction: a failure anywhere leaves the database as it was.
Bulk rows go in with COPY; a second load of the same territory does nothing.
"""

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Connection, Engine, text
from tqdm import tqdm

from gridgis.demo import people, population, territory
from gridgis.errors import Conflict, InvalidInput
from gridgis.layers import boundaries, totals
from gridgis.models import NO_PASSWORD
from gridgis.settings import PROJECT_DIR, get_settings

BOUNDARY_DIR = PROJECT_DIR / "data" / "boundaries"
# Generated timestamps count back from this instant, so a seed gives the same rows.
DEMO_EPOCH = datetime(2026, 6, 1, tzinfo=UTC)
LAYER_TABLES = ("resident_event", "resident", "station", "shelter", "building", "app_user_grid",
                "grid", "admin_unit")


@dataclass(frozen=True)
class Profile:
    """What a demo territory holds beyond its boundaries."""

    district_code: str
    buildings: int
    residents: int
    residency: dict[str, float]
    workers_per_grid: int = 1
    # Share of grid workers who are part-time Macau residents (Hengqin's model).
    macau_workers: float = 0.0


PROFILES = {
    "hengqin": Profile("440402", 3_500, 55_000,
                       {"registered": 0.42, "migrant": 0.36, "macau": 0.18, "hongkong": 0.03,
                        "foreign": 0.01}, workers_per_grid=3, macau_workers=0.3),
    "nansha": Profile("440115", 90_000, 900_000,
                      {"registered": 0.55, "migrant": 0.43, "macau": 0.004, "hongkong": 0.011,
                       "foreign": 0.005}),
    "city": Profile("440100", 1_000_000, 5_000_000,
                    {"registered": 0.50, "migrant": 0.48, "macau": 0.004, "hongkong": 0.01,
                     "foreign": 0.006}),
}


def load_demo(engine: Engine, scale: str, *, seed: int | None = None, replace: bool = False,
              progress: bool = False, admin_units_file: Path | None = None,
              grids_file: Path | None = None) -> str:
    """Load a demo territory in one transaction; return a one-paragraph report.

    ``admin_units_file`` and ``grids_file`` replace the territory's boundary files.
    """
    if scale not in PROFILES:
        raise InvalidInput(f"unknown scale {scale!r}; scales are {', '.join(PROFILES)}")
    if (admin_units_file is None) != (grids_file is None):
        raise InvalidInput("give both boundary files (admin units and grids), or neither")
    seed = get_settings().demo_seed if seed is None else seed
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('gridgis demo load'))"))
        loaded = loaded_territory(conn)
        if loaded == scale and not replace:
            return f"the {scale} demo is already loaded: nothing to do"
        if loaded is not None and not replace:
            raise Conflict(f"the database holds the {loaded} territory; load {scale} with "
                           f"--replace to wipe the layers first")
        units, grids = read_territory(scale, seed, admin_units_file, grids_file)
        kept_scopes = wipe_layers(conn) if replace else []
        boundaries.insert_boundaries(conn, units, grids)
        counts = populate(conn, PROFILES[scale], seed, progress)
        restore_scopes(conn, kept_scopes)
    return (f"loaded the {scale} demo (seed {seed}): {len(units)} admin units, {len(grids)} "
            f"grids, " + ", ".join(f"{n:,} {what}" for what, n in counts.items()))


def wipe_layers(conn: Connection) -> list[dict[str, Any]]:
    """Empty the layer tables; return users' grid and unit scopes (by code) to restore."""
    scopes = [dict(row) for row in conn.execute(text(
        "SELECT ug.app_user_id, g.code, 'grid' AS scope FROM app_user_grid ug "
        "JOIN grid g ON g.id = ug.grid_id UNION ALL "
        "SELECT uu.app_user_id, a.code, 'unit' FROM app_user_unit uu "
        "JOIN admin_unit a ON a.id = uu.admin_unit_id")).mappings()]
    conn.execute(text(f"TRUNCATE {', '.join(LAYER_TABLES)} RESTART IDENTITY CASCADE"))
    return scopes


def restore_scopes(conn: Connection, scopes: list[dict[str, Any]]) -> None:
    """Give users back the grids and units they answered for, where the codes still exist."""
    statements = {
        "grid": "INSERT INTO app_user_grid (app_user_id, grid_id) SELECT :app_user_id, id "
                "FROM grid WHERE code = :code ON CONFLICT DO NOTHING",
        "unit": "INSERT INTO app_user_unit (app_user_id, admin_unit_id) SELECT :app_user_id, "
                "id FROM admin_unit WHERE code = :code ON CONFLICT DO NOTHING"}
    for scope, statement in statements.items():
        if rows := [row for row in scopes if row["scope"] == scope]:
            conn.execute(text(statement), rows)


def loaded_territory(conn: Connection) -> str | None:
    """Return the loaded demo scale ("district CODE" for other data), or None when empty."""
    if conn.execute(text("SELECT to_regclass('admin_unit')")).scalar() is None:
        raise InvalidInput("the database has no gridgis tables yet: run `gridgis db upgrade`")
    codes = conn.execute(text("SELECT code FROM admin_unit WHERE level = 'district'")).scalars()
    found = list(codes)
    if not found:
        return None
    by_code = {p.district_code: scale for scale, p in PROFILES.items()}
    if len(found) == 1 and found[0] in by_code:
        return by_code[found[0]]
    return "district " + ", ".join(sorted(found))


def read_territory(scale: str, seed: int, admin_units_file: Path | None,
                   grids_file: Path | None) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Return (admin units, grids): from the boundary files, or generated for ``city``."""
    if scale == "city" and admin_units_file is None:
        return territory.build_territory("city", seed)
    units_path = admin_units_file or BOUNDARY_DIR / f"{scale}_admin_units.geojson"
    grids_path = grids_file or BOUNDARY_DIR / f"{scale}_grids.geojson"
    return (boundaries.read_layer(units_path, boundaries.ADMIN_COLUMNS),
            boundaries.read_layer(grids_path, boundaries.GRID_COLUMNS))


def populate(conn: Connection, profile: Profile, seed: int, progress: bool) -> dict[str, int]:
    """Generate buildings, residents, stations and shelters for the loaded grids."""
    rng = np.random.default_rng(seed)
    rows = pd.DataFrame(conn.execute(text(
        "SELECT g.id, g.code, g.name, g.kind, g.community_id, c.name AS community_name, "
        "ST_AsBinary(g.boundary) AS wkb FROM grid g JOIN admin_unit c ON c.id = g.community_id "
        "ORDER BY g.id")).mappings().all())
    grids = gpd.GeoDataFrame(rows.drop(columns="wkb"),
                             geometry=shapely.from_wkb(rows["wkb"].map(bytes)), crs=4326)
    built = population.draw_buildings(rng, grids, profile.buildings)
    dwellers = population.residents_per_building(rng, built, profile.residents)
    folk = people.draw_people(rng, dwellers, profile.residency, profile.district_code)

    frame = building_frame(grids, built, folk)
    copy_rows(conn, "building", ["id", "code", "name", "address", "grid_id", "use", "floors",
                                 "households", "risk_flags", "footprint", "location"],
              building_rows(frame, built), len(frame), progress)
    copy_rows(conn, "resident", ["id", "code", "building_id", "household_code", "name",
                                 "gender", "birth_year", "id_number", "phone", "residency",
                                 "vulnerabilities", "registered_at", "updated_at",
                                 "moved_out_at"],
              resident_rows(frame, folk), len(folk), progress)
    stations = insert_stations(conn, rng, frame, grids)
    shelters = insert_shelters(conn, rng, frame, grids)
    users = insert_grid_teams(conn, rng, grids, profile) + insert_unit_heads(conn, rng)
    conn.execute(text(
        "UPDATE grid g SET households = h.n FROM (SELECT b.grid_id, count(DISTINCT "
        "r.household_code) AS n FROM resident r JOIN building b ON b.id = r.building_id "
        "WHERE r.moved_out_at IS NULL GROUP BY b.grid_id) h WHERE h.grid_id = g.id"))
    for table in ("building", "resident"):
        conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                          f"(SELECT max(id) FROM {table}))"))
    totals.refresh_totals(conn)
    conn.execute(text("ANALYZE"))
    return {"buildings": len(frame), "residents": len(folk), "stations": stations,
            "shelters": shelters, "grid teams and unit heads": users}


def building_frame(grids: gpd.GeoDataFrame, built: population.Buildings,
                   folk: people.People) -> pd.DataFrame:
    """Return one row per building: id, code, grid, community, use, floors, households."""
    frame = pd.DataFrame({
        "id": np.arange(1, len(built) + 1),
        "grid_id": grids["id"].to_numpy()[built.grid_index],
        "grid_code": grids["code"].to_numpy()[built.grid_index],
        "community_id": grids["community_id"].to_numpy()[built.grid_index],
        "community_name": grids["community_name"].to_numpy()[built.grid_index],
        "use": built.use,
        "floors": built.floors,
    })
    frame["seq"] = frame.groupby("grid_id").cumcount() + 1
    frame["code"] = frame["grid_code"] + "-" + frame["seq"].map("{:04d}".format)
    households = np.zeros(len(built), dtype=np.int64)
    np.maximum.at(households, folk.building_index, folk.household)
    frame["households"] = households
    frame["location"] = built.location
    return frame


def building_rows(frame: pd.DataFrame, built: population.Buildings) -> Iterator[Sequence[Any]]:
    footprints = shapely.to_wkb(shapely.set_srid(built.footprint, 4326), hex=True,
                                include_srid=True)
    locations = shapely.to_wkb(shapely.set_srid(built.location, 4326), hex=True,
                               include_srid=True)
    for row, flags, fp, loc in zip(frame.itertuples(index=False), built.risk_flags, footprints,
                                   locations, strict=True):
        name = f"{row.community_name}{row.seq}栋"
        yield (row.id, row.code, name, f"{row.community_name}{row.seq}号", row.grid_id, row.use,
               row.floors, row.households, flags, fp, loc)


def resident_rows(frame: pd.DataFrame, folk: people.People) -> Iterator[Sequence[Any]]:
    building_ids = frame["id"].to_numpy()[folk.building_index]
    building_codes = frame["code"].to_numpy()[folk.building_index]
    for i in range(len(folk)):
        registered = DEMO_EPOCH - timedelta(days=int(folk.registered_days_ago[i]))
        moved_out = DEMO_EPOCH - timedelta(days=7) if folk.moved_out[i] else None
        yield (i + 1, f"R{i + 1:09d}", building_ids[i],
               f"{building_codes[i]}-{folk.household[i]:03d}", folk.names[i],
               "F" if folk.female[i] else "M", folk.birth_year[i], folk.id_numbers[i],
               folk.phones[i], folk.residency[i], folk.vulnerabilities[i],
               registered.isoformat(), (moved_out or registered).isoformat(),
               moved_out.isoformat() if moved_out else None)


def insert_stations(conn: Connection, rng: np.random.Generator, frame: pd.DataFrame,
                    grids: gpd.GeoDataFrame) -> int:
    """Place the three levels of party-mass positions; return how many."""
    grids_per_community = grids.groupby("community_id").size()
    centres = population.pick_sites(rng, frame, "community_id",
                                    pd.Series(1, index=grids_per_community.index),
                                    prefer=frame["use"].isin(["public", "mixed"]).to_numpy())
    stations = population.pick_sites(rng, frame, "community_id",
                                     (grids_per_community // 4).clip(lower=1),
                                     prefer=(frame["use"] == "residential").to_numpy())
    posts = population.pick_sites(rng, frame, "community_id",
                                  (grids_per_community // 3).clip(lower=1),
                                  prefer=(frame["floors"] >= 12).to_numpy())
    rows = []
    for level, sites, name in (("centre", centres, "党群服务中心"),
                               ("station", stations, "党群服务站"),
                               ("post", posts, "党群驿站")):
        for rank, site in enumerate(sites.itertuples(index=False)):
            place = (site.community_name if level == "centre"
                     else f"{site.community_name}{site.seq}栋")
            rows.append({
                "code": f"{level[0].upper()}-{site.code}", "name": place + name, "level": level,
                "community_id": site.community_id, "building_id": site.id,
                "contact_name": f"{people.SURNAMES[rank % 50]}站长",
                "contact_phone": f"1{rng.integers(3, 10)}{rng.integers(0, 10**9):09d}",
            })
    conn.execute(text(
        "INSERT INTO station (code, name, level, community_id, building_id, contact_name, "
        "contact_phone, location) SELECT :code, :name, :level, :community_id, :building_id, "
        ":contact_name, :contact_phone, location FROM building WHERE id = :building_id"), rows)
    return len(rows)


def insert_shelters(conn: Connection, rng: np.random.Generator, frame: pd.DataFrame,
                    grids: gpd.GeoDataFrame) -> int:
    """Designate schools, gyms and community halls as shelters; return how many."""
    wanted = (grids.groupby("community_id").size() // 6 + 1)
    sites = population.pick_sites(rng, frame, "community_id", wanted,
                                  prefer=frame["use"].isin(["school", "public"]).to_numpy())
    capacity_by_kind = {"school": (300, 1500), "gymnasium": (500, 3000),
                        "community_centre": (100, 400), "purpose_built": (200, 1000)}
    rows = []
    for site in sites.itertuples(index=False):
        kind = ("school" if site.use == "school" else
                str(rng.choice(["gymnasium", "community_centre", "purpose_built"])))
        low, high = capacity_by_kind[kind]
        rows.append({
            "code": f"H-{site.code}", "name": f"{site.community_name}{site.seq}号避护场所",
            "kind": kind, "community_id": site.community_id, "building_id": site.id,
            "capacity": int(rng.integers(low, high) // 10 * 10),
            "wheelchair": bool(rng.random() < 0.6), "medical": bool(rng.random() < 0.25),
            "address": f"{site.community_name}{site.seq}号",
        })
    conn.execute(text(
        "INSERT INTO shelter (code, name, kind, address, community_id, capacity, "
        "wheelchair_access, medical, location) SELECT :code, :name, :kind, :address, "
        ":community_id, :capacity, :wheelchair, :medical, location FROM building "
        "WHERE id = :building_id"), rows)
    return len(rows)


def insert_grid_teams(conn: Connection, rng: np.random.Generator, grids: gpd.GeoDataFrame,
                      profile: Profile) -> int:
    """Create a grid head and workers per grid, without passwords; return how many.

    Users are named ``head-<grid>`` and ``worker-<grid>-N``; an admin gives one a password
    with ``gridgis user add NAME --role ROLE --grid CODE --password-stdin``. Users that
    exist already (a reload) keep their passwords and get their grid back.
    """
    rows = []
    for grid in grids.itertuples(index=False):
        team = [("grid_head", f"head-{grid.code}", "网格长")] + [
            ("grid_worker", f"worker-{grid.code}-{n}", f"网格员{n}")
            for n in range(1, profile.workers_per_grid + 1)]
        for role, username, title in team:
            macau = bool(role == "grid_worker" and rng.random() < profile.macau_workers)
            surname = people.SURNAMES[int(rng.integers(0, 50))]
            rows.append({
                "username": username, "role": role, "grid": grid.code,
                "display_name": f"{grid.name}{title}{surname}",
                "phone": (f"+853 6{rng.integers(0, 10**7):07d}" if macau
                          else f"1{rng.integers(3, 10)}{rng.integers(0, 10**9):09d}"),
                "residency": "macau" if macau else "registered", "part_time": macau,
            })
    conn.execute(text(
        "INSERT INTO app_user (username, display_name, role, password_hash, phone, residency, "
        "part_time) VALUES (:username, :display_name, :role, :no_password, :phone, :residency, "
        ":part_time) ON CONFLICT (username) DO NOTHING"),
        [{**row, "no_password": NO_PASSWORD} for row in rows])
    conn.execute(text(
        "INSERT INTO app_user_grid (app_user_id, grid_id) SELECT u.id, g.id FROM app_user u "
        "JOIN grid g ON g.code = :grid WHERE u.username = :username ON CONFLICT DO NOTHING"),
        [{"grid": row["grid"], "username": row["username"]} for row in rows])
    return len(rows)


def insert_unit_heads(conn: Connection, rng: np.random.Generator) -> int:
    """Create a head per community and street, without passwords; return how many.

    Users are named ``community-<code>`` and ``street-<code>``: alerts a grid team leaves
    unacknowledged escalate to them (and then to the command centre).
    """
    units = conn.execute(text("SELECT code, name, level FROM admin_unit "
                              "WHERE level IN ('community', 'street') ORDER BY code")).all()
    rows = [{"username": f"{level}-{code}", "code": code, "no_password": NO_PASSWORD,
             "display_name": f"{name}负责人{people.SURNAMES[int(rng.integers(0, 50))]}",
             "phone": f"1{rng.integers(3, 10)}{rng.integers(0, 10**9):09d}"}
            for code, name, level in units]
    if rows:
        conn.execute(text(
            "INSERT INTO app_user (username, display_name, role, password_hash, phone) VALUES "
            "(:username, :display_name, 'unit_head', :no_password, :phone) "
            "ON CONFLICT (username) DO NOTHING"), rows)
        conn.execute(text(
            "INSERT INTO app_user_unit (app_user_id, admin_unit_id) SELECT u.id, a.id "
            "FROM app_user u JOIN admin_unit a ON a.code = :code WHERE u.username = :username "
            "ON CONFLICT DO NOTHING"), rows)
    return len(rows)


_ESCAPE = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_value(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, list):
        return "{" + ",".join(value) + "}"
    return str(value).translate(_ESCAPE)


def copy_rows(conn: Connection, table: str, columns: list[str], rows: Iterable[Sequence[Any]],
              total: int, progress: bool, chunk: int = 20_000) -> None:
    """COPY ``rows`` into ``table`` in the connection's transaction, with a progress bar."""
    raw = conn.connection.driver_connection
    assert raw is not None
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with raw.cursor() as cursor, cursor.copy(statement) as copy, tqdm(
        total=total, desc=table, unit=" rows", disable=not progress, unit_scale=True
    ) as bar:
        lines: list[str] = []
        for row in rows:
            lines.append("\t".join(map(_copy_value, row)))
            if len(lines) >= chunk:
                copy.write("\n".join(lines) + "\n")
                bar.update(len(lines))
                lines = []
        if lines:
            copy.write("\n".join(lines) + "\n")
            bar.update(len(lines))
