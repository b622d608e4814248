"""Checklist tables: the evacuation work of one grid under one alert, item by item.

A checklist (转移清单) is made with its alert, in the same transaction; its items are people
to contact, households to transfer (to an assigned shelter), buildings to inspect, shelters
to open and stations to staff. Every change to an item is also a ``checklist_event`` row:
the time series the roll-up and the after-action review read.
"""

from datetime import datetime

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
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from gridgis.models import Base, sql_in

CHECKLIST_STATES = ("open", "closed", "stood_down")
ITEM_KINDS = ("contact", "transfer", "inspect", "open_shelter", "staff_station")
ITEM_STATES = ("pending", "in_progress", "done", "unable", "not_needed")
# A transfer's loop: to move, left home, checked in at the shelter (checked out: gone home).
STAGES = ("to_transfer", "left_home", "checked_in", "checked_out")


class Checklist(Base):
    """转移清单: one grid's evacuation work under one alert (updates keep it)."""

    __tablename__ = "checklist"
    __table_args__ = (CheckConstraint(sql_in("state", CHECKLIST_STATES), name="state"),
                      Index("ix_checklist_to_make", "created_at",
                            postgresql_where=text("made_at IS NULL")))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alert.id", ondelete="CASCADE"),
                                          unique=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grid.id"), index=True)
    state: Mapped[str] = mapped_column(Text, server_default="open")
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    unplaced: Mapped[int] = mapped_column(Integer, server_default="0")  # people, no shelter
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                 server_default=func.now())
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    made_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # items made


class ChecklistItem(Base):
    """One thing to do: whom to call or move, what to inspect, open or staff."""

    __tablename__ = "checklist_item"
    __table_args__ = (
        CheckConstraint(sql_in("kind", ITEM_KINDS), name="kind"),
        CheckConstraint(sql_in("state", ITEM_STATES), name="state"),
        CheckConstraint(f"stage IS NULL OR {sql_in('stage', STAGES)}", name="stage"),
        CheckConstraint("head_count IS NULL OR head_count >= 0", name="head_count"),
        CheckConstraint("state <> 'unable' OR reason IS NOT NULL", name="unable_reason"),
        UniqueConstraint("checklist_id", "kind", "subject", name="uq_checklist_item_subject"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    checklist_id: Mapped[int] = mapped_column(
        ForeignKey("checklist.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)  # resident:ID, household:CODE, building:ID, ...
    priority: Mapped[int] = mapped_column(Integer)  # 1 first
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("resident.id"))
    household_code: Mapped[str | None] = mapped_column(Text)
    # A contact's home is the resident's: it holds no building of its own.
    building_id: Mapped[int | None] = mapped_column(ForeignKey("building.id"))
    shelter_id: Mapped[int | None] = mapped_column(ForeignKey("shelter.id"), index=True)
    station_id: Mapped[int | None] = mapped_column(ForeignKey("station.id"))
    people: Mapped[int] = mapped_column(Integer, server_default="0")  # to move
    household_size: Mapped[int] = mapped_column(Integer, server_default="0")
    needs: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    distance_m: Mapped[float | None] = mapped_column(Float)  # to the assigned shelter
    state: Mapped[str] = mapped_column(Text, server_default="pending")
    stage: Mapped[str | None] = mapped_column(Text)
    head_count: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                 server_default=func.now())
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                 server_default=func.now())


class ChecklistEvent(Base):
    """An item as it became at one moment, and who made it so."""

    __tablename__ = "checklist_event"
    __table_args__ = (Index("ix_checklist_event_checklist_at", "checklist_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(
        ForeignKey("checklist_item.id", ondelete="CASCADE"), index=True)
    checklist_id: Mapped[int] = mapped_column(
        ForeignKey("checklist.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    app_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    state: Mapped[str] = mapped_column(Text)
    stage: Mapped[str | None] = mapped_column(Text)
    head_count: Mapped[int | None] = mapped_column(Integer)
    shelter_id: Mapped[int | None] = mapped_column(ForeignKey("shelter.id"))
    note: Mapped[str | None] = mapped_column(Text)
