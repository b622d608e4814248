"""Layer files in and out: plan or apply an import in the caller's transaction; export a layer.

An import is all or nothing. ``file_checks`` reads and checks the file; its rows are then
COPYed into a temporary table, checked against the database (the grid or community holding
each point, building codes) and matched with the layer by ``code``:

* a code the layer lacks is added;
* a code whose row differs is changed (version + 1, updated_at now, live again if it was
  retired or moved out). "Differs": a stored attribute, the building or community looked
  up, or the geometry by more than ``GEOMETRY_TOLERANCE_DEG`` (Hausdorff distance);
* with ``retire_missing``, live rows whose code the file lacks are retired (``retired_at``,
  residents ``moved_out_at``, set to now); nothing is ever deleted.

A column the file does not carry keeps its value (new rows take the default). A file that
carries ``version`` (an export does) is refused for rows changed in the database since.
Each kind of change is one statement over the temporary table.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO, cast

import psycopg
import shapely
from geoalchemy2 import Geometry
from psycopg import sql
from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Integer,
    MetaData,
    Table,
    Text,
    case,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from tqdm import tqdm

from gridgis import audit
from gridgis.errors import Conflict, InvalidInput
from gridgis.layers import file_checks, queries, totals
from gridgis.layers.file_checks import ImportRefused, LayerFile, LayerFormat, RowProblem
from gridgis.layers.models import (
    AdminUnit,
    Building,
    Grid,
    Resident,
    ResidentEvent,
    Shelter,
    Station,
)
from gridgis.models import AppUser
from gridgis.settings import get_settings

GEOMETRY_TOLERANCE_DEG = 1e-7  # ~1 cm: what an export and re-import may move a vertex
IMPORT_ROLES = {"buildings": ("planner", "admin"), "stations": ("planner", "admin"),
                "shelters": ("planner", "admin"), "residents": ("admin",)}
TABLES = {layer: cast(Table, model.__table__) for layer, model in (
    ("buildings", Building), ("stations", Station), ("shelters", Shelter),
    ("residents", Resident))}
# Filled by the database: community_id from the point, building_id from building_code.
DERIVED = {"buildings": (), "stations": ("community_id", "building_id"),
           "shelters": ("community_id",), "residents": ("building_id",)}
SQL_TYPES: dict[str, Any] = {"text": Text, "choice": Text, "int": Integer, "bool": Boolean,
                             "list": ARRAY(Text)}


@dataclass(frozen=True)
class ImportPlan:
    """What an import adds, changes and retires (codes in file order); ``applied`` once done."""

    layer: str
    source: str
    rows: int
    added: list[str]
    changed: list[str]
    retired: list[str]
    applied: bool = False


def import_roles(layer: str) -> tuple[str, ...]:
    """Return the roles that may import ``layer`` (residents: admins only)."""
    file_checks.import_format(layer)
    return IMPORT_ROLES[layer]


def import_limit_mb() -> float:
    """Return the size limit of an import file: the ``import_max_mb`` setting."""
    return get_settings().import_max_mb


def save_upload(stream: BinaryIO, filename: str | None, folder: Path, max_mb: float) -> Path:
    """Return where in ``folder`` an upload was saved, under its base name; TooLarge as soon
    as it passes ``max_mb``."""
    name = Path(filename or "upload").name
    file_checks.file_kind(Path(name))
    path, size = folder / name, 0
    with path.open("wb") as out:
        while chunk := stream.read(1 << 20):
            size += len(chunk)
            file_checks.check_size(name, size, max_mb)
            out.write(chunk)
    return path


def plan_import(session: Session, layer: str, path: Path, *, gcj02: bool = False,
                retire_missing: bool = False, max_mb: float | None = None,
                progress: bool = False) -> ImportPlan:
    """Return what importing ``path`` into ``layer`` would do, writing nothing; ImportRefused
    with every bad row."""
    return _prepare(session, layer, path, gcj02, retire_missing, max_mb, progress)[0]


def apply_import(session: Session, layer: str, path: Path, *, gcj02: bool = False,
                 retire_missing: bool = False, max_mb: float | None = None,
                 progress: bool = False, user: AppUser | None = None) -> ImportPlan:
    """Import ``path`` into ``layer`` in the caller's transaction, audited; return the plan
    carried out. ImportRefused with every bad row, and nothing written."""
    plan, stage = _prepare(session, layer, path, gcj02, retire_missing, max_mb, progress)
    fmt = file_checks.FORMATS[layer]
    write_changes(session, fmt, stage, retire_missing, user, plan.source)
    if layer in ("buildings", "residents"):
        totals.refresh_totals(session)
    audit.record(session, user, "import", fmt.table, None, {
        "source": plan.source, "rows": plan.rows, "added": len(plan.added),
        "changed": len(plan.changed), "retired": len(plan.retired), "gcj02": gcj02})
    return replace(plan, applied=True)


def _prepare(session: Session, layer: str, path: Path, gcj02: bool, retire_missing: bool,
             max_mb: float | None, progress: bool) -> tuple[ImportPlan, Table]:
    """Read, check, stage and match a file; return the plan and the staged rows."""
    fmt = file_checks.import_format(layer)
    # Imports of one layer queue behind each other: each plans against settled rows.
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                    {"key": f"gridgis import {layer}"})
    checked = file_checks.read_layer_file(
        path, layer, gcj02=gcj02, max_mb=import_limit_mb() if max_mb is None else max_mb,
        extent=territory_extent(session))
    stage = stage_rows(session, checked, progress)
    match_rows(session, fmt, stage, given=set(checked.columns))
    problems = checked.problems + check_in_database(session, fmt, stage, set(checked.columns))
    if not problems:
        session.execute(update(stage).where(stage.c.target_id == TABLES[layer].c.id)
                        .values(changed=differs(fmt, stage)))
        problems = stale_rows(session, fmt, stage) if "version" in checked.columns else []
    if problems:
        raise ImportRefused(checked.source, problems)
    s = stage.c
    added = session.scalars(select(s.code).where(s.target_id.is_(None)).order_by(s.file_row))
    changed = session.scalars(select(s.code).where(s.changed).order_by(s.file_row))
    retired = list(session.scalars(missing_rows(fmt, stage, TABLES[layer].c.code))
                   if retire_missing else [])
    if retired and layer == "buildings":
        check_dependants(session, stage)
    return ImportPlan(layer, checked.source, len(checked.columns["code"]), list(added),
                      list(changed), retired), stage


def territory_extent(session: Session) -> file_checks.Box | None:
    """Return the box (west, south, east, north) of the live admin units; None if none."""
    box = func.ST_Extent(AdminUnit.boundary)
    row = session.execute(select(func.ST_XMin(box), func.ST_YMin(box), func.ST_XMax(box),
                                 func.ST_YMax(box))
                          .where(AdminUnit.retired_at.is_(None))).one()
    return None if row[0] is None else (row[0], row[1], row[2], row[3])


def stage_table(fmt: LayerFormat) -> Table:
    """Return the temporary table of one import: the file's rows and what they match."""
    return Table(
        f"import_{fmt.table}", MetaData(),
        Column("file_row", Integer), Column("code", Text),
        *[Column(f.name, SQL_TYPES[f.kind]) for f in fmt.fields],
        Column("location", Geometry("POINT", srid=4326, spatial_index=False)),
        Column("footprint", Geometry("GEOMETRY", srid=4326, spatial_index=False)),
        Column("target_id", Integer), Column("community_id", Integer),
        Column("building_id", Integer), Column("changed", Boolean, server_default="false"),
        prefixes=["TEMPORARY"], postgresql_on_commit="DROP",
    )


def stage_rows(session: Session, checked: LayerFile, progress: bool) -> Table:
    """COPY the file's rows into a new temporary table; return it."""
    stage = stage_table(checked.fmt)
    conn = session.connection()
    conn.execute(text(f"DROP TABLE IF EXISTS {stage.name}"))  # a constant name
    stage.create(conn)
    names = ["file_row", "code", *[f.name for f in checked.fmt.fields], "location", "footprint"]
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(stage.name), sql.SQL(", ").join(map(sql.Identifier, names)))
    raw = conn.connection.driver_connection
    assert raw is not None
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy, tqdm(
                file_rows(checked), total=len(checked.columns["code"]), unit=" rows",
                desc=f"{checked.fmt.layer} from {checked.source}", unit_scale=True,
                disable=not progress, mininterval=0.5) as rows:
            for row in rows:
                copy.write_row(row)
    except psycopg.DataError as exc:  # a value no check foresaw (a NUL in a text, say)
        raise InvalidInput(f"{checked.source}: the database refuses a value: "
                           f"{str(exc).splitlines()[0]}") from exc
    conn.execute(text(f"ANALYZE {stage.name}"))  # temporary tables get no autovacuum stats
    return stage


def file_rows(checked: LayerFile) -> Iterator[Sequence[Any]]:
    """Yield the rows to stage: file row, code, each field (its default when the file lacks
    the column), point and footprint as hex EWKB."""
    n = len(checked.columns["code"])
    columns = [checked.columns.get(f.name, [f.default] * n) for f in checked.fmt.fields]
    points, footprints = (shapely.to_wkb(shapely.set_srid(g, 4326), hex=True,
                                         include_srid=True)
                          for g in (checked.location, checked.footprint))
    for i in range(n):
        yield (i + 1, checked.columns["code"][i], *[c[i] for c in columns], points[i],
               footprints[i])


def match_rows(session: Session, fmt: LayerFormat, stage: Table, given: set[str]) -> None:
    """Find each staged code's row in the layer; give columns the file lacks their values."""
    target, s = TABLES[fmt.layer], stage.c
    session.execute(update(stage).values(
        target_id=select(target.c.id).where(target.c.code == s.code).scalar_subquery()))
    absent = [f.name for f in fmt.fields if f.stored and f.name not in given]
    if "building_code" not in given and "building_id" in DERIVED[fmt.layer]:
        absent.append("building_id")  # no building codes in the file: the links stay
    if absent:
        session.execute(update(stage).where(s.target_id == target.c.id)
                        .values({name: target.c[name] for name in absent}))
    if fmt.layer != "buildings":
        return
    b = target.c
    # A new footprint keeps the building's point while it holds it, else the point goes to
    # the grid holding most of the footprint; a new point keeps the footprint holding it.
    session.execute(update(stage).where(s.target_id == b.id, s.footprint.isnot(None),
                                        func.ST_Covers(s.footprint, b.location))
                    .values(location=b.location))
    session.execute(update(stage).where(s.location.is_(None), s.footprint.isnot(None))
                    .values(location=queries.majority_point(s.footprint).scalar_subquery()))
    session.execute(update(stage).where(s.target_id == b.id, s.footprint.is_(None),
                                        func.ST_Covers(b.footprint, s.location))
                    .values(footprint=b.footprint))


def check_in_database(session: Session, fmt: LayerFormat, stage: Table,
                      given: set[str]) -> list[RowProblem]:
    """Return the rows the database would refuse or cannot place: a building in no grid, a
    point in no community, an unknown building code, a post in no building. One statement
    per check."""
    s, found = stage.c, list[RowProblem]()

    def refuse(field: str, reason: str, value: Any, *where: Any) -> None:
        found.extend(RowProblem(r, field, reason.format(v), c) for r, c, v in
                     session.execute(select(s.file_row, s.code, value).where(*where)))

    if fmt.layer == "buildings":
        refuse("geometry", "the footprint lies in no grid", literal(None),
               s.footprint.isnot(None), s.location.is_(None))
        refuse("geometry", "lies in no grid (a building belongs to the grid holding its point)",
               literal(None), s.location.isnot(None), ~exists().where(
                   Grid.retired_at.is_(None), func.ST_Covers(Grid.boundary, s.location)))
    if "community_id" in DERIVED[fmt.layer]:
        session.execute(update(stage).values(
            community_id=queries.community_at(s.location).scalar_subquery()))
        refuse("geometry", "lies in no community", literal(None), s.location.isnot(None),
               s.community_id.is_(None))
    if "building_code" in given:
        session.execute(update(stage).values(building_id=select(Building.id).where(
            Building.code == s.building_code, Building.retired_at.is_(None)).scalar_subquery()))
        refuse("building_code", "unknown building code {!r}", s.building_code,
               s.building_code.isnot(None), s.building_id.is_(None))
    if fmt.layer == "stations":
        refuse("building_code", "a post sits in a building: give its building_code",
               literal(None), s.level == "post", s.building_id.is_(None),
               s.building_code.is_(None))
    return found


def differs(fmt: LayerFormat, stage: Table) -> ColumnElement[bool]:
    """Return whether a staged row differs from its layer row (or that row is not live)."""
    target, s = TABLES[fmt.layer], stage.c
    terms: list[ColumnElement[bool]] = [target.c[live_column(fmt)].isnot(None)]
    for f in fmt.fields:
        if f.stored and f.kind == "list":  # flags are sets: their order is no change
            terms.append(~(target.c[f.name].contains(s[f.name])
                           & target.c[f.name].contained_by(s[f.name])))
        elif f.stored:
            terms.append(target.c[f.name].is_distinct_from(s[f.name]))
    terms += [target.c[name].is_distinct_from(s[name]) for name in DERIVED[fmt.layer]]
    for name in geometry_columns(fmt):
        old, new = target.c[name], s[name]
        terms.append(func.coalesce(func.ST_HausdorffDistance(old, new) > GEOMETRY_TOLERANCE_DEG,
                                   old.is_(None) != new.is_(None)))
    return or_(*terms)


def stale_rows(session: Session, fmt: LayerFormat, stage: Table) -> list[RowProblem]:
    """Return the changed rows whose file version is not the database's (changed since)."""
    target, s = TABLES[fmt.layer], stage.c
    rows = session.execute(select(s.file_row, s.code, s.version, target.c.version).where(
        s.target_id == target.c.id, s.changed, s.version.isnot(None),
        s.version != target.c.version))
    return [RowProblem(r, "version", f"changed in the database since this file was made "
                       f"(version {mine} here, {now} there): export again", c)
            for r, c, mine, now in rows]


def missing_rows(fmt: LayerFormat, stage: Table, column: Any) -> Any:
    """Return a select of ``column`` over the live layer rows whose code the file lacks."""
    target = TABLES[fmt.layer]
    return (select(column).where(target.c[live_column(fmt)].is_(None),
                                 ~exists().where(stage.c.code == target.c.code))
            .order_by(target.c.code))


def check_dependants(session: Session, stage: Table) -> None:
    """Refuse to retire buildings that live residents or stations still depend on."""
    fmt = file_checks.FORMATS["buildings"]
    blocked = list(session.scalars(missing_rows(fmt, stage, Building.code).where(
        exists().where(Resident.building_id == Building.id, Resident.moved_out_at.is_(None))
        | exists().where(Station.building_id == Building.id, Station.retired_at.is_(None)))))
    if blocked:
        shown = ", ".join(blocked[:20]) + (" ..." if len(blocked) > 20 else "")
        raise Conflict(f"retiring the buildings the file lacks would strand the residents or "
                       f"stations of {len(blocked)} of them ({shown}); keep them in the file "
                       f"or move those first")


def write_changes(session: Session, fmt: LayerFormat, stage: Table, retire_missing: bool,
                  user: AppUser | None, source: str) -> None:
    """Add, change and retire layer rows as planned, one statement each; residents' history
    gets a row per person. Buildings get their grid from the database's trigger."""
    target, s = TABLES[fmt.layer], stage.c
    values: dict[str, Any] = {f.name: s[f.name] for f in fmt.fields if f.stored}
    values |= {name: s[name] for name in DERIVED[fmt.layer]}
    values |= {name: func.ST_Multi(s[name]) if name == "footprint" else s[name]
               for name in geometry_columns(fmt)}
    live, now = live_column(fmt), func.now()
    if fmt.layer == "residents":  # history first: it reads who was live before
        record_events(session, stage, retire_missing, user, source)
    session.execute(insert(target).from_select(
        ["code", *values], select(s.code, *values.values()).where(s.target_id.is_(None))
        .order_by(s.file_row)))
    changes = {**values, "version": target.c.version + 1, "updated_at": now, live: None}
    if fmt.layer == "buildings":  # one that moved is placed in its grid anew by the trigger
        changes["grid_id"] = case((func.ST_Equals(target.c.location, s.location),
                                   target.c.grid_id), else_=None)
    session.execute(update(target).where(target.c.id == s.target_id, s.changed)
                    .values(changes))
    if retire_missing:
        session.execute(update(target).where(target.c.id.in_(missing_rows(fmt, stage,
                                                                          target.c.id)))
                        .values({live: now, "updated_at": now, "version": target.c.version + 1}))
    if fmt.layer == "residents":
        record_events(session, stage, False, user, source, registered=True)


def record_events(session: Session, stage: Table, retire_missing: bool, user: AppUser | None,
                  source: str, registered: bool = False) -> None:
    """Add resident_event rows for an import: moved_in/updated and moved_out before the
    writes, registered after them (the new residents need their ids)."""
    events, r, s = cast(Table, ResidentEvent.__table__), TABLES["residents"].c, stage.c
    columns = ["resident_id", "kind", "building_id", "household_code", "app_user_id",
               "changes"]
    uid = literal(user.id if user else None, Integer)
    note = func.jsonb_build_object("import", literal(source))
    if registered:
        new = select(r.id, literal("registered"), r.building_id, r.household_code, uid,
                     note).join_from(TABLES["residents"], stage, s.code == r.code).where(
                         s.target_id.is_(None))
        session.execute(insert(events).from_select(columns, new))
        return
    kind = case((r.moved_out_at.isnot(None), "moved_in"), else_="updated")
    session.execute(insert(events).from_select(columns, select(
        r.id, kind, s.building_id, s.household_code, uid, note).join_from(
            TABLES["residents"], stage, s.target_id == r.id).where(s.changed)))
    if retire_missing:
        session.execute(insert(events).from_select(columns, select(
            r.id, literal("moved_out"), r.building_id, r.household_code, uid, note).where(
                r.id.in_(missing_rows(file_checks.FORMATS["residents"], stage, r.id)))))


def live_column(fmt: LayerFormat) -> str:
    """Return the column that is NULL while a row is live (residents: moved_out_at)."""
    return "moved_out_at" if fmt.layer == "residents" else "retired_at"


def geometry_columns(fmt: LayerFormat) -> tuple[str, ...]:
    return {"point or polygon": ("location", "footprint"), "point": ("location",)}.get(
        fmt.geometry or "", ())
