"""Warnings in: a CAP 1.2 message, a typhoon advisory or a drawn area, as one shape.

Whatever the source, a warning becomes an ``Incoming``: CAP-shaped fields and its hazard
areas per tier in EPSG:4326. For an advisory the areas are the wind swaths per threshold and
the gale circle every ``ETA_STEP`` along the track (each with its time: the first one to
touch a grid is that grid's gale ETA, to within the step).
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import shapely
from sqlalchemy import select
from sqlalchemy.orm import Session

from gridgis.alerts import advisory as advisories
from gridgis.alerts import cap, hazard
from gridgis.alerts.models import Warning
from gridgis.alerts.schemas import DrawnWarningIn
from gridgis.errors import InvalidInput
from gridgis.layers.models import AdminUnit, Grid

ETA_STEP = timedelta(minutes=30)
# Bounds on an advisory's track: hourly fixes and forecasts for six weeks; the longest-lived
# typhoons last about three weeks. Past them the hazard areas would take minutes to draw.
MAX_TRACK_POINTS = 1_000
MAX_TRACK_SPAN = timedelta(days=30)
CAP_STATUS = {"Actual": "actual", "Exercise": "exercise", "Test": "test", "System": "test",
              "Draft": "test"}
CAP_TYPES = {"Alert": "alert", "Update": "update", "Cancel": "cancel"}


@dataclass(frozen=True)
class HazardArea:
    tier: str  # area | gale | storm | hurricane
    geometry: shapely.MultiPolygon
    description: str
    valid_at: datetime | None = None


@dataclass(frozen=True)
class Incoming:
    """A warning as gridgis keeps it, before it is stored."""

    identifier: str
    sender: str
    sent: datetime
    source: str  # cap | advisory | drawn
    msg_type: str  # alert | update | cancel
    status: str  # actual | exercise | test
    level: str
    event: str
    headline: str | None
    references: tuple[str, ...]  # identifiers of the warnings this one follows
    areas: tuple[HazardArea, ...]
    storm_id: str | None = None
    document: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def level_rank(self) -> int:
        return advisories.level_rank(self.level)


def _multi(geometry: shapely.Geometry) -> shapely.MultiPolygon:
    if geometry.geom_type == "Polygon":
        return shapely.MultiPolygon([geometry])
    if geometry.geom_type == "MultiPolygon":
        return geometry
    polygons = [g for g in shapely.get_parts(geometry) if g.geom_type == "Polygon"]
    return shapely.MultiPolygon(polygons)


def from_cap(session: Session, message: cap.CapMessage) -> Incoming:
    """Return a CAP message as a warning; geocodes are resolved to our admin units or grids."""
    msg_type = CAP_TYPES.get(message.msg_type)
    if msg_type is None:
        raise InvalidInput(f"msgType {message.msg_type}: gridgis takes Alert, Update and Cancel")
    info = cap.best_info(message) if message.infos else None
    areas: list[HazardArea] = []
    for area in info.areas if info else ():
        shapes = [g for g in (area.geometry(),) if g is not None]
        for scheme, code in area.geocodes:
            shapes.append(_unit_boundary(session, scheme, code))
        if shapes:
            areas.append(HazardArea("area", _multi(shapely.union_all(shapes)),
                                    area.description))
    if msg_type != "cancel" and not areas:
        raise InvalidInput("the CAP message has no area gridgis can place (polygon, circle "
                           "or a geocode of one of our admin units or grids)")
    level = (info.level if info and info.level else None) or "blue"
    return Incoming(
        identifier=message.identifier, sender=message.sender, sent=message.sent, source="cap",
        msg_type=msg_type, status=CAP_STATUS[message.status], level=level,
        event=info.event if info else "cancel", headline=info.headline if info else None,
        references=tuple(r.identifier for r in message.references), areas=tuple(areas),
        document={"cap": message.identifier, "sender": message.sender},
    )


def _unit_boundary(session: Session, scheme: str, code: str) -> shapely.Geometry:
    """Return the boundary of the admin unit or grid a CAP geocode names."""
    from geoalchemy2.shape import to_shape

    boundary = session.scalar(select(AdminUnit.boundary).where(AdminUnit.code == code)) \
        or session.scalar(select(Grid.boundary).where(Grid.code == code))
    if boundary is None:
        raise InvalidInput(f"geocode {scheme}={code} names no admin unit or grid of ours")
    return to_shape(boundary)


def from_advisory(item: advisories.Advisory, previous: str | None, status: str = "actual",
                  chain: str | None = None) -> Incoming:
    """Return a typhoon advisory as a warning: an update of the storm's ``previous`` one.

    ``chain`` names the storm's chain of warnings (default the storm id; a drill runs its
    own chain), and prefixes the identifier.
    """
    first, last = item.points[0].time, item.points[-1].time
    if last - first > MAX_TRACK_SPAN:
        raise InvalidInput(f"points: the track spans {(last - first).days} days; an advisory "
                           f"covers at most {MAX_TRACK_SPAN.days}")
    areas = [HazardArea(tier, _multi(area), f"{tier} swath")
             for tier, area in hazard.swaths(item).items() if not area.is_empty]
    steps = int((last - first) / ETA_STEP) + 1
    times = [first + ETA_STEP * i for i in range(steps)]
    circles = hazard.circles_at(item, np.array([t.timestamp() for t in times]), "gale")
    areas += [HazardArea("gale", _multi(circle), "gale circle", at)
              for at, circle in zip(times, circles, strict=True) if circle is not None]
    issued = item.issued.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")
    chain = chain or item.storm.id
    return Incoming(
        identifier=f"{item.source}-{chain}-{issued}", sender=item.source,
        sent=item.issued, source="advisory", msg_type="update" if previous else "alert",
        status=status, level=item.level, event=f"台风{item.storm.name_zh or item.storm.name}",
        headline=f"{item.storm.name} ({item.storm.id}) advisory {issued}",
        references=(previous,) if previous else (), areas=tuple(areas),
        storm_id=chain, document=advisories.dump_advisory(item),
    )


def from_drawn(geometry: shapely.Geometry, level: str, event: str, headline: str | None,
               status: str, sender: str) -> Incoming:
    """Return an area drawn on the map as a warning."""
    import uuid

    return Incoming(
        identifier=f"gridgis-drawn-{uuid.uuid4()}", sender=sender, sent=datetime.now(UTC),
        source="drawn", msg_type="alert", status=status, level=level, event=event,
        headline=headline, references=(), areas=(HazardArea("area", _multi(geometry),
                                                            "drawn on the map"),),
        document={"level": level, "event": event, "headline": headline},
    )


def read_cap(session: Session, body: bytes) -> Incoming:
    """Return a CAP 1.2 document (bytes) as a warning."""
    return from_cap(session, cap.parse_cap(body))


def read_advisory(session: Session, document: dict[str, Any] | advisories.Advisory,
                  status: str = "actual", chain: str | None = None) -> Incoming:
    """Return an advisory as a warning, following the chain's latest warning if any."""
    points = document.get("points") if isinstance(document, dict) else None
    if isinstance(points, list) and len(points) > MAX_TRACK_POINTS:
        raise InvalidInput(f"points: {len(points):,} track points; an advisory holds at most "
                           f"{MAX_TRACK_POINTS:,}")
    item = (document if isinstance(document, advisories.Advisory)
            else advisories.parse_advisory(document))
    previous = session.scalar(
        select(Warning.identifier).where(Warning.storm_id == (chain or item.storm.id),
                                         Warning.msg_type != "cancel")
        .order_by(Warning.sent.desc(), Warning.id.desc()).limit(1))
    return from_advisory(item, previous, status, chain)


def read_drawn(drawn: DrawnWarningIn, username: str) -> Incoming:
    """Return an area drawn on the map as a warning."""
    from gridgis.layers import edits as layer_edits

    geometry = layer_edits.to_geometry(drawn.area, "area")
    return from_drawn(geometry, drawn.level, drawn.event, drawn.headline, drawn.status,
                      f"gridgis:{username}")
