"""Reusable query parameters (bbox, paging) as ``Annotated`` FastAPI dependencies."""

import math
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Query

from gridgis.errors import InvalidInput, VersionRequired
from gridgis.settings import get_settings

MAX_KEY = 2**31 - 1  # row keys are PostgreSQL integers
CODE = r"^[0-9A-Za-z-]{1,40}$"  # what codes are made of: digits, letters, hyphens
WORD = r"^[a-z_]{1,40}$"  # enumerated values: kinds, uses, levels


@dataclass(frozen=True)
class BBox:
    """A lon/lat box in EPSG:4326: west, south, east, north (degrees)."""

    west: float
    south: float
    east: float
    north: float


def parse_bbox(
    bbox: Annotated[str | None, Query(description="west,south,east,north in lon/lat degrees",
                                      examples=["113.50,22.10,113.56,22.16"])] = None,
) -> BBox | None:
    """Return the bbox query parameter, or None; raise InvalidInput if it is not one."""
    if bbox is None:
        return None
    shape_error = InvalidInput(f"bbox must be four numbers west,south,east,north, not {bbox!r}")
    try:
        values = [float(p) for p in bbox.split(",")]
    except ValueError:
        raise shape_error from None
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise shape_error
    west, south, east, north = values
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= 90
            and -90 <= north <= 90):
        raise InvalidInput("bbox is outside lon -180..180 / lat -90..90 (lat/lon swapped?)")
    if west > east or south > north:
        raise InvalidInput("bbox must be west,south,east,north with west <= east, south <= north")
    return BBox(west, south, east, north)


@dataclass(frozen=True)
class Page:
    """Keyset paging: rows after ``cursor`` (an opaque position), at most ``limit``."""

    limit: int
    cursor: int


def parse_page(
    limit: Annotated[int, Query(ge=1, description="features per page")] = 1000,
    cursor: Annotated[str | None, Query(description="from the previous page's next link")] = None,
) -> Page:
    """Return the paging parameters, capped at the configured page size."""
    maximum = get_settings().page_size_max
    if limit > maximum:
        raise InvalidInput(f"limit may be at most {maximum}")
    if cursor is None:
        return Page(limit, 0)
    if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 10) or int(cursor) > MAX_KEY:
        raise InvalidInput(f"cursor {cursor!r} is not one this server gave out")
    return Page(limit, int(cursor))


BBoxDep = Annotated[BBox | None, Depends(parse_bbox)]
PageDep = Annotated[Page, Depends(parse_page)]


def if_match(if_match: Annotated[str | None, Header()] = None) -> int:
    """Return the version named by the If-Match header (``"7"``, ``W/"7"`` or ``7``)."""
    if if_match is None:
        raise VersionRequired('say which version you changed: If-Match: "<version>" '
                              "(the ETag of the row you read)")
    value = if_match.removeprefix("W/").strip().strip('"')
    if not value.isdigit() or len(value) > 9:
        raise InvalidInput(f"If-Match {if_match!r} is not a version this server gave out")
    return int(value)


IfMatch = Annotated[int, Depends(if_match)]
