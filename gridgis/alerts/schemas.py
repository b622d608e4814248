"""Pydantic shapes of warnings in and out."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gridgis.layers.schemas import GeoJSONGeometry


class DrawnWarningIn(BaseModel):
    """An area drawn on the command-centre map, with a level."""

    model_config = ConfigDict(extra="forbid")

    area: GeoJSONGeometry
    level: str = Field(description="blue | yellow | orange | red, or signal 1/3/8/9/10")
    event: str = Field(default="台风", min_length=1, max_length=100)
    headline: str | None = Field(default=None, max_length=500)
    status: Literal["actual", "exercise", "test"] = "actual"


class TargetOut(BaseModel):
    code: str
    tier: str
    share: float
    gale_eta: datetime | None
    buildings: int
    risky_buildings: int
    residents: int
    vulnerable: int


class IssueResult(BaseModel):
    """What a warning reached (or, for a dry run, would reach)."""

    identifier: str | None
    dry_run: bool
    grids: int
    residents: int
    vulnerable: int
    added: int = 0
    changed: int = 0  # still reached, with another tier or gale ETA
    unchanged: int = 0
    stood_down: int = 0
    # False when the checklists' items could not be made right after the alerts (they were
    # committed and are going out): the dispatcher makes them within a minute.
    checklists_made: bool = True
    targets: list[TargetOut]
    message: str
