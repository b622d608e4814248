"""Planning tables: changesets, their operations, and every version of every grid.

A changeset (变更集) is a planner's set of grid operations with a reason; it is validated and
previewed as often as wanted and published once, in one transaction. ``grid_version`` is
written by a trigger on ``grid`` (migration 0009), whatever path changes a grid, so a grid's
history is complete: each version with its boundary, valid from / to, author, changeset and
reason.
"""

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, Integer, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gridgis.models import Base, sql_in

CHANGESET_STATES = ("open", "published", "abandoned")
OPERATIONS = ("create", "modify", "split", "merge", "retire", "restore")


class Changeset(Base):
    """A planner's grid operations, published together or not at all."""

    __tablename__ = "changeset"
    __table_args__ = (CheckConstraint(sql_in("state", CHANGESET_STATES), name="state"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    reason: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(Text, server_default="open")
    findings: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)  # last validation
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                 server_default=func.now())
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The command-centre user who let it publish over grids under an active warning.
    override_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))


class ChangesetOperation(Base):
    """One operation on one grid (by code), with the grid version it was based on."""

    __tablename__ = "changeset_operation"
    __table_args__ = (CheckConstraint(sql_in("op", OPERATIONS), name="op"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    changeset_id: Mapped[int] = mapped_column(
        ForeignKey("changeset.id", ondelete="CASCADE"), index=True)
    op: Mapped[str] = mapped_column(Text)
    grid: Mapped[str] = mapped_column(Text)  # the grid's code (a new one for create)
    base_version: Mapped[int | None] = mapped_column(Integer)  # None for create
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    geometry = mapped_column(Geometry(srid=4326, spatial_index=False))  # area or split line
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                 server_default=func.now())


class GridVersion(Base):
    """A grid as it was from ``valid_from`` to ``valid_to`` (None: as it is now)."""

    __tablename__ = "grid_version"
    __table_args__ = (Index("ix_grid_version_grid_id", "grid_id", "valid_from"),
                      Index("uq_grid_version_grid_version", "grid_id", "version", unique=True),
                      Index("ix_grid_version_boundary", "boundary", postgresql_using="gist"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grid.id"))
    code: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(Text)
    community_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(Text)
    boundary = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=False),
                             nullable=False)
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    changeset_id: Mapped[int | None] = mapped_column(ForeignKey("changeset.id"))
    app_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    reason: Mapped[str | None] = mapped_column(Text)
