"""The declarative base and the core tables: users, their grid scope, the audit log."""

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# unit_head: a community's or street's head (社区/街道负责人), told when a grid's alert goes
# unacknowledged; they answer for admin units (app_user_unit), not grids, and see no residents.
ROLES = ("command", "grid_head", "grid_worker", "planner", "admin", "unit_head")
USER_RESIDENCIES = ("registered", "migrant", "macau", "hongkong", "foreign")
# A password hash no password matches: the user exists but cannot log in until given one.
NO_PASSWORD = "!"

# Named constraints keep Alembic migrations readable and reversible.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def sql_in(column: str, values: tuple[str, ...]) -> str:
    """Return a CHECK expression limiting ``column`` to ``values`` (constants, never input)."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def sql_subset(column: str, values: tuple[str, ...]) -> str:
    """Return a CHECK expression limiting the text array ``column`` to ``values``."""
    return f"{column} <@ ARRAY[{', '.join(repr(v) for v in values)}]::text[]"


app_user_grid = Table(
    "app_user_grid",
    Base.metadata,
    Column("app_user_id", ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True),
    Column("grid_id", ForeignKey("grid.id"), primary_key=True, index=True),
    comment="The grids a grid head or grid worker answers for.",
)


app_user_unit = Table(
    "app_user_unit",
    Base.metadata,
    Column("app_user_id", ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True),
    Column("admin_unit_id", ForeignKey("admin_unit.id"), primary_key=True, index=True),
    comment="The communities and streets a unit head answers for (escalations reach them).",
)


class AppUser(Base):
    __tablename__ = "app_user"
    __table_args__ = (
        CheckConstraint(sql_in("role", ROLES), name="role"),
        CheckConstraint(f"residency IS NULL OR {sql_in('residency', USER_RESIDENCIES)}",
                        name="residency"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(Text, unique=True)
    display_name: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    password_hash: Mapped[str] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    # Grid teams include part-time workers, e.g. Macau residents in Hengqin.
    residency: Mapped[str | None] = mapped_column(Text)
    part_time: Mapped[bool] = mapped_column(Boolean, server_default="false")
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    app_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"), index=True)
    username: Mapped[str | None] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    entity: Mapped[str] = mapped_column(Text)
    entity_id: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class AuthToken(Base):
    """A bearer token, stored only as its SHA-256; it expires and can be revoked."""

    __tablename__ = "auth_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(Text, unique=True)
    app_user_id: Mapped[int] = mapped_column(
        ForeignKey("app_user.id", ondelete="CASCADE"), index=True
    )
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
