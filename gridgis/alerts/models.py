"""Warning tables: warnings and their hazard areas, one alert per affected grid, the outbox.

A warning is CAP 1.2 shaped whatever its source (a CAP file, a typhoon advisory, an area
drawn on the map). Its areas are stored per tier (``gale`` R7/R34, ``storm`` R10/R50,
``hurricane`` R12/R64, or ``area`` for a plain CAP area). An alert is the warning delivered
to one grid; outbox rows are written in the same transaction as the alert, so no accepted
warning loses a message to a crash. Geometries are SRID 4326.
"""

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gridgis.models import Base, sql_in

SOURCES = ("cap", "advisory", "drawn")
MSG_TYPES = ("alert", "update", "cancel")
STATUSES = ("actual", "exercise", "test")
TIERS = ("area", "gale", "storm", "hurricane")
ALERT_STATES = ("active", "stood_down")
OUTBOX_STATES = ("queued", "sending", "sent", "failed", "dead")


class Warning(Base):
    """预警: one message in; updates and cancels name the warning they follow."""

    __tablename__ = "warning"
    __table_args__ = (
        CheckConstraint(sql_in("source", SOURCES), name="source"),
        CheckConstraint(sql_in("msg_type", MSG_TYPES), name="msg_type"),
        CheckConstraint(sql_in("status", STATUSES), name="status"),
        CheckConstraint("level_rank BETWEEN 1 AND 4", name="level_rank"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    identifier: Mapped[str] = mapped_column(Text, unique=True)
    sender: Mapped[str] = mapped_column(Text)
    sent: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    source: Mapped[str] = mapped_column(Text)
    msg_type: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    level: Mapped[str] = mapped_column(Text)  # as given: "red", "signal 8", ...
    level_rank: Mapped[int] = mapped_column(Integer)  # 1 blue .. 4 red
    event: Mapped[str] = mapped_column(Text)
    headline: Mapped[str | None] = mapped_column(Text)
    references: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    # The warning this one updates or cancels (the head of its chain is the first alert).
    follows_id: Mapped[int | None] = mapped_column(ForeignKey("warning.id"), index=True)
    storm_id: Mapped[str | None] = mapped_column(Text, index=True)
    document: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # what came in
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                  server_default=func.now())
    app_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))


class WarningArea(Base):
    """A hazard area of a warning, per tier (wind swaths, CAP polygons and circles)."""

    __tablename__ = "warning_area"
    __table_args__ = (CheckConstraint(sql_in("tier", TIERS), name="tier"),
                      CheckConstraint("ST_IsValid(area)", name="area_valid"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    warning_id: Mapped[int] = mapped_column(ForeignKey("warning.id", ondelete="CASCADE"),
                                            index=True)
    tier: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    # A wind circle at one moment of the track (gale ETA = the first that touches a grid);
    # None for swaths and plain areas.
    valid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    area = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=True),
                         nullable=False)


class Alert(Base):
    """预警推送: a warning delivered to one grid, with its tier, gale ETA and figures."""

    __tablename__ = "alert"
    __table_args__ = (
        CheckConstraint(sql_in("tier", TIERS), name="tier"),
        CheckConstraint(sql_in("state", ALERT_STATES), name="state"),
        UniqueConstraint("warning_id", "grid_id", name="uq_alert_warning_grid"),
        Index("ix_alert_ack_due", "ack_due_at",
              postgresql_where=text("state = 'active' AND acknowledged_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    warning_id: Mapped[int] = mapped_column(ForeignKey("warning.id"), index=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grid.id"), index=True)
    tier: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(Text, server_default="active")
    gale_eta: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    coverage: Mapped[float] = mapped_column(Float)  # share of the grid's area, 0..1
    buildings: Mapped[int] = mapped_column(Integer, server_default="0")
    risky_buildings: Mapped[int] = mapped_column(Integer, server_default="0")
    residents: Mapped[int] = mapped_column(Integer, server_default="0")
    vulnerable: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                 server_default=func.now())
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    # Escalation: unacknowledged at ack_due_at, the alert goes one step up (1 the community's
    # heads, 2 the street's heads and the command centre); None once there is nothing left.
    ack_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    escalation_level: Mapped[int] = mapped_column(Integer, server_default="0")
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The grid's version (grid_version) when the alert was made: its boundary stays readable
    # whatever planning publishes later.
    grid_version: Mapped[int | None] = mapped_column(Integer)


class Outbox(Base):
    """One message to send: an alert to one recipient on one channel, at most once."""

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(sql_in("state", OUTBOX_STATES), name="state"),
        # What the dispatcher claims; a trigger NOTIFYs gridgis_outbox on insert (migration 0006).
        Index("ix_outbox_due", "next_attempt_at", "id",
              postgresql_where=text("state IN ('queued', 'failed', 'sending')")),
        Index("ix_outbox_feed_due", "next_attempt_at", "id",
              postgresql_where=text("state IN ('queued', 'failed', 'sending') "
                                    "AND channel = 'feed'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alert.id"), index=True)
    app_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    channel: Mapped[str] = mapped_column(Text)
    # (alert, recipient, channel): a receiver seeing a key twice drops the second.
    idempotency_key: Mapped[str] = mapped_column(Text, unique=True)
    kind: Mapped[str] = mapped_column(Text, server_default="alert")
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    state: Mapped[str] = mapped_column(Text, server_default="queued")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                      server_default=func.now())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                 server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
