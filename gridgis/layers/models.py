"""Layer tables. Geometries are SRID 4326; every geometry column has a GiST index."""

from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gridgis.models import Base, sql_in, sql_subset

ADMIN_LEVELS = ("district", "street", "community")
ADMIN_KINDS = ("district", "street", "town", "community", "village")
GRID_KINDS = ("residential", "village", "commercial", "industrial", "mixed", "port", "ecological")
BUILDING_USES = ("residential", "commercial", "industrial", "public", "school", "hospital", "mixed")
RISK_FLAGS = ("dilapidated", "work_shed", "temporary", "low_lying", "coastal", "geohazard")
STATION_LEVELS = ("centre", "station", "post")
SHELTER_KINDS = ("school", "gymnasium", "community_centre", "purpose_built", "hotel", "other")
RESIDENCIES = ("registered", "migrant", "macau", "hongkong", "foreign")
VULNERABILITIES = ("elderly_alone", "disabled", "bedridden", "pregnant", "child", "chronic_ill")


def _multipolygon() -> Geometry:
    return Geometry("MULTIPOLYGON", srid=4326, spatial_index=True)


def _point() -> Geometry:
    return Geometry("POINT", srid=4326, spatial_index=True)


def _valid(column: str) -> str:
    return f"ST_IsValid({column}) AND NOT ST_IsEmpty({column})"


class Versioned:
    """Columns every editable layer row carries: an edit version and a retirement time."""

    version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AdminUnit(Versioned, Base):
    """District (区), street or town (街道/镇), community or village (社区/村); nested."""

    __tablename__ = "admin_unit"
    __table_args__ = (
        CheckConstraint(sql_in("level", ADMIN_LEVELS), name="level"),
        CheckConstraint(sql_in("kind", ADMIN_KINDS), name="kind"),
        CheckConstraint("(level = 'district') = (parent_id IS NULL)", name="parent_by_level"),
        CheckConstraint(_valid("boundary"), name="boundary_valid"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str | None] = mapped_column(Text)
    level: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("admin_unit.id"), index=True)
    boundary = mapped_column(_multipolygon(), nullable=False)


class Grid(Versioned, Base):
    """网格: the smallest management unit, a polygon inside one community."""

    __tablename__ = "grid"
    __table_args__ = (
        CheckConstraint(sql_in("kind", GRID_KINDS), name="kind"),
        CheckConstraint("households >= 0", name="households"),
        CheckConstraint(_valid("boundary"), name="boundary_valid"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)
    community_id: Mapped[int] = mapped_column(ForeignKey("admin_unit.id"), index=True)
    kind: Mapped[str] = mapped_column(Text)
    households: Mapped[int] = mapped_column(Integer, server_default="0")
    boundary = mapped_column(_multipolygon(), nullable=False)


class Building(Versioned, Base):
    """楼栋: a footprint (optional) and a point; belongs to the grid containing its point."""

    __tablename__ = "building"
    __table_args__ = (
        CheckConstraint(sql_in("use", BUILDING_USES), name="use"),
        CheckConstraint(sql_subset("risk_flags", RISK_FLAGS), name="risk_flags"),
        CheckConstraint("floors >= 1", name="floors"),
        CheckConstraint(f"footprint IS NULL OR ({_valid('footprint')})", name="footprint_valid"),
        CheckConstraint("NOT ST_IsEmpty(location)", name="location_valid"),
        Index("ix_building_risk_flags", "risk_flags", postgresql_using="gin"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    # Kept by a trigger (the grid containing ``location``): targeting counts on it, not a join.
    grid_id: Mapped[int] = mapped_column(ForeignKey("grid.id"), index=True)
    use: Mapped[str] = mapped_column(Text)
    floors: Mapped[int] = mapped_column(Integer, server_default="1")
    households: Mapped[int] = mapped_column(Integer, server_default="0")
    risk_flags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    footprint = mapped_column(_multipolygon())
    location = mapped_column(_point(), nullable=False)


class Station(Versioned, Base):
    """党群服务 position: community centre, village/residence station or building post."""

    __tablename__ = "station"
    __table_args__ = (
        CheckConstraint(sql_in("level", STATION_LEVELS), name="level"),
        CheckConstraint("level <> 'post' OR building_id IS NOT NULL", name="post_in_building"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)
    level: Mapped[str] = mapped_column(Text)
    community_id: Mapped[int] = mapped_column(ForeignKey("admin_unit.id"), index=True)
    building_id: Mapped[int | None] = mapped_column(ForeignKey("building.id"), index=True)
    contact_name: Mapped[str | None] = mapped_column(Text)
    contact_phone: Mapped[str | None] = mapped_column(Text)
    location = mapped_column(_point(), nullable=False)


class Shelter(Versioned, Base):
    """避护场所: a place to take people to, with capacity and current occupancy."""

    __tablename__ = "shelter"
    __table_args__ = (
        CheckConstraint(sql_in("kind", SHELTER_KINDS), name="kind"),
        CheckConstraint("capacity > 0", name="capacity"),
        CheckConstraint("occupancy >= 0", name="occupancy"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    community_id: Mapped[int] = mapped_column(ForeignKey("admin_unit.id"), index=True)
    capacity: Mapped[int] = mapped_column(Integer)
    occupancy: Mapped[int] = mapped_column(Integer, server_default="0")
    wheelchair_access: Mapped[bool] = mapped_column(Boolean, server_default="false")
    medical: Mapped[bool] = mapped_column(Boolean, server_default="false")
    location = mapped_column(_point(), nullable=False)


class Resident(Base):
    """居民: personal data (name, phone, ID number) guarded by the grid scope of the reader."""

    __tablename__ = "resident"
    __table_args__ = (
        CheckConstraint(sql_in("residency", RESIDENCIES), name="residency"),
        CheckConstraint(sql_subset("vulnerabilities", VULNERABILITIES), name="vulnerabilities"),
        CheckConstraint("moved_out_at IS NULL OR moved_out_at >= registered_at", name="moved_out"),
        Index("ix_resident_vulnerabilities", "vulnerabilities", postgresql_using="gin"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(Text, unique=True)
    building_id: Mapped[int] = mapped_column(ForeignKey("building.id"), index=True)
    household_code: Mapped[str] = mapped_column(Text, index=True)
    name: Mapped[str] = mapped_column(Text)
    gender: Mapped[str | None] = mapped_column(Text)
    birth_year: Mapped[int | None] = mapped_column(Integer)
    id_number: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(Text)
    residency: Mapped[str] = mapped_column(Text)
    vulnerabilities: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    registered_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    moved_out_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, server_default="1")


RESIDENT_EVENTS = ("registered", "updated", "moved_out", "moved_in")


class ResidentEvent(Base):
    """The history of a resident (人来登记、人在更新、人走注销): one row per change, kept."""

    __tablename__ = "resident_event"
    __table_args__ = (CheckConstraint(sql_in("kind", RESIDENT_EVENTS), name="kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("resident.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    kind: Mapped[str] = mapped_column(Text)
    building_id: Mapped[int] = mapped_column(ForeignKey("building.id"))
    household_code: Mapped[str] = mapped_column(Text)
    app_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    changes: Mapped[dict[str, object] | None] = mapped_column(JSONB)
