"""The after-action report of a warning: what happened, when, and where it was slow.

It reads the warning's whole chain (the message, its updates, its cancel): the timeline
(issued, updated, told, acknowledged, worked through, stood down), per-grid numbers
(``sql/report_grids.sql``), the progress over time (the checklist roll-up's series), the
slowest grids and the dead letters. It comes as a CSV of the per-grid numbers and as one
self-contained HTML file (inline SVG map and charts, no scripts, no links out), so it opens
on an intranet or from an e-mail attachment and prints to PDF from any browser. Codes only:
no resident's name reaches a report.
"""

import csv
import io
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import escape
from sqlalchemy import text
from sqlalchemy.orm import Session

from gridgis import auth
from gridgis.alerts import dead_letters, rollup, targeting
from gridgis.errors import NotFound
from gridgis.maps import i18n
from gridgis.models import AppUser
from gridgis.settings import get_settings

READ_ROLES = ("command", "admin")
SLOWEST = 10
TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=True, undefined=jinja2.StrictUndefined)


def _local(at: datetime, zone: str, pattern: str = "%Y-%m-%d %H:%M:%S") -> str:
    return at.astimezone(ZoneInfo(zone)).strftime(pattern)


TEMPLATES.filters["local"] = _local

CHAIN_SQL = text("""
SELECT w.identifier, w.msg_type, w.status, w.level, w.event, w.headline, w.sent,
       w.received_at, w.source
FROM warning w JOIN warning_chain(:warning) chain ON chain.warning_id = w.id
ORDER BY w.received_at, w.id
""")
DELIVERY_SQL = text("""
SELECT o.channel, o.state, count(*) AS messages
FROM outbox o WHERE o.alert_id IN (
    SELECT a.id FROM alert a JOIN warning w ON w.id = a.warning_id
    WHERE w.identifier = ANY(:identifiers))
GROUP BY o.channel, o.state ORDER BY o.channel, o.state
""")
# The reached grids as they were when alerted (the alert's grid version; planning may have
# changed them since), in Web Mercator.
AS_ALERTED = """
WITH reached AS (
    SELECT g.code, coalesce(v.boundary, g.boundary) AS boundary
    FROM unnest(CAST(:codes AS text[]), CAST(:versions AS int[])) AS r(code, version)
    JOIN grid g ON g.code = r.code
    LEFT JOIN grid_version v ON v.grid_id = g.id AND v.version = r.version)
"""
MAP_SQL = text(AS_ALERTED + """
SELECT code, ST_AsSVG(ST_Transform(ST_SimplifyPreserveTopology(boundary, 0.00002), 3857), 0, 0)
FROM reached
""")
EXTENT_SQL = text(AS_ALERTED + """
SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (
    SELECT ST_Extent(ST_Transform(boundary, 3857)) AS e FROM reached) x
""")
CSV_COLUMNS = ("grid", "grid_name", "community", "street", "tier", "alert_state", "alerted_at",
               "told_at", "acknowledged_at", "minutes_to_acknowledge", "escalation_level",
               "gale_eta", "checklist_state", "due_at", "closed_at", "items", "finished",
               "unable", "to_contact", "contacted", "to_transfer", "on_the_way",
               "transferred", "unplaced", "worked_through_at", "late")


@dataclass
class Report:
    """Everything the report shows, gathered once."""

    identifier: str
    warnings: list[dict[str, Any]]
    grids: list[dict[str, Any]]
    totals: dict[str, Any]
    timeline: list[tuple[datetime, str]]
    series: list[dict[str, Any]]
    delivery: list[dict[str, Any]]
    dead: list[dead_letters.DeadLetter]
    slowest: list[dict[str, Any]] = field(default_factory=list)


def gather(session: Session, user: AppUser, identifier: str) -> Report:
    """Return the report of ``identifier``'s chain; NotFound if there is no such warning."""
    auth.require_role(user, *READ_ROLES)
    warnings = [dict(row) for row in session.execute(
        CHAIN_SQL, {"warning": identifier}).mappings()]
    if not warnings:
        raise NotFound(f"no warning {identifier}")
    grids = [_with_lateness(dict(row)) for row in session.execute(
        text(targeting.sql_file("report_grids")), {"warning": identifier}).mappings()]
    identifiers = [w["identifier"] for w in warnings]
    series = _territory_series(session, user, identifier, grids)
    dead = [letter for name in identifiers
            for letter in dead_letters.listed(session, name, limit=500)]
    report = Report(
        identifier=identifier, warnings=warnings, grids=grids, totals=_totals(grids),
        timeline=_timeline(warnings, grids), series=series,
        delivery=[dict(row) for row in session.execute(
            DELIVERY_SQL, {"identifiers": identifiers}).mappings()],
        dead=dead)
    report.slowest = sorted(
        grids, key=lambda g: (-(g["minutes_to_acknowledge"] or math.inf),
                              _share(g)))[:SLOWEST] if grids else []
    return report


def to_csv(report: Report) -> str:
    """Return the per-grid numbers as CSV (UTF-8 with a BOM, so spreadsheet tools read the
    Chinese names)."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in report.grids:
        writer.writerow({k: (v.isoformat() if isinstance(v, datetime) else v)
                         for k, v in row.items()})
    return out.getvalue()


def to_html(session: Session, report: Report, csv_url: str = "", html_url: str = "",
            font_links: tuple[str, ...] = (), lang: str = "zh") -> str:
    """Return the report as one self-contained HTML file; times in the local zone
    (``GRIDGIS_DISPATCH_TIMEZONE``, the zone of the messages too). The page served by
    gridgis links its fonts (``font_links``); a downloaded file uses the reader's own."""
    zone = get_settings().dispatch_timezone
    w = i18n.words(lang)
    report.timeline = _timeline(report.warnings, report.grids, w)
    return TEMPLATES.get_template("report.html").render(
        report=report, zone=zone, now=datetime.now(UTC), csv_url=csv_url, html_url=html_url,
        font_links=font_links, w=w,
        map_svg=_map_svg(session, report.grids),
        progress_svg=_chart(report.series, [
            ("acknowledged_share", w["r_chart_ack"], "#2980b9"),
            ("finished_share", w["r_chart_done"], "#27ae60")], zone, percent=True),
        people_svg=_chart(report.series, [
            ("checked_in", w["r_chart_in"], "#27ae60"),
            ("on_the_way", w["r_chart_way"], "#e67e22")], zone, percent=False))


def _with_lateness(row: dict[str, Any]) -> dict[str, Any]:
    told, acknowledged = row["told_at"] or row["alerted_at"], row["acknowledged_at"]
    row["minutes_to_acknowledge"] = (round((acknowledged - told).total_seconds() / 60, 1)
                                     if acknowledged else None)
    due, done = row["due_at"], row["worked_through_at"]
    if due is None or not row["items"]:
        row["late"] = False
    elif done:  # worked through after its due time
        row["late"] = done > due
    else:  # not worked through by its due time, or by its stand-down before it
        row["late"] = (row["closed_at"] or datetime.now(UTC)) > due
    return row


def _share(grid: dict[str, Any]) -> float:
    return (grid["finished"] + grid["unable"]) / grid["items"] if grid["items"] else 1.0


def _totals(grids: list[dict[str, Any]]) -> dict[str, Any]:
    waits = sorted(g["minutes_to_acknowledge"] for g in grids
                   if g["minutes_to_acknowledge"] is not None)
    total = {key: sum(g[key] for g in grids) for key in (
        "items", "finished", "unable", "to_contact", "contacted", "to_transfer", "on_the_way",
        "transferred", "unplaced")}
    return {**total, "grids": len(grids),
            "acknowledged": len(waits), "escalated": sum(g["escalation_level"] > 0 for g in grids),
            "median_minutes_to_acknowledge": waits[len(waits) // 2] if waits else None,
            "late": sum(g["late"] for g in grids),
            "worked_through": sum(g["worked_through_at"] is not None for g in grids)}


def _timeline(warnings: list[dict[str, Any]], grids: list[dict[str, Any]],
              w: dict[str, str] | None = None) -> list[tuple[datetime, str]]:
    w = w or i18n.words("zh")
    kinds = {"alert": w["r_issued"], "update": w["r_updated"], "cancel": w["r_cancelled"]}
    events = [(w["received_at"], f"{kinds.get(w['msg_type'], w['msg_type'])} {w['identifier']}"
                                 f"（{w['level']}）") for w in warnings]
    for key, label in (("told_at", w["r_told"]), ("acknowledged_at", w["r_acked"]),
                       ("worked_through_at", w["r_worked"])):
        times = sorted(g[key] for g in grids if g[key] is not None)
        if times:
            events.append((times[0], w["r_first"].format(label=label, n=len(times),
                                                          of=len(grids))))
            if len(times) > 1:
                events.append((times[-1], w["r_last"].format(label=label)))
    return sorted(events, key=lambda e: e[0])


def _territory_series(session: Session, user: AppUser, identifier: str,
                      grids: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The roll-up's time series summed over the territory, with the share of grids
    acknowledged by each moment."""
    points: dict[datetime, dict[str, Any]] = {}
    for row in rollup.series(session, user, identifier, "district"):
        point = points.setdefault(row.at, {"at": row.at, "items": 0, "finished": 0,
                                           "unable": 0, "checked_in": 0, "on_the_way": 0})
        for key in ("items", "finished", "unable", "checked_in", "on_the_way"):
            point[key] += getattr(row, key)
    acknowledged = sorted(g["acknowledged_at"] for g in grids if g["acknowledged_at"])
    for point in points.values():
        point["finished_share"] = point["finished"] / point["items"] if point["items"] else 0
        point["acknowledged_share"] = (sum(a <= point["at"] for a in acknowledged) / len(grids)
                                       if grids else 0)
    return sorted(points.values(), key=lambda p: p["at"])


def _map_svg(session: Session, grids: list[dict[str, Any]]) -> str:
    """The reached grids as they were when alerted, in Web Mercator, coloured by the share
    of their checklist done."""
    codes = [g["grid"] for g in grids]
    if not codes:
        return ""
    params = {"codes": codes, "versions": [g["grid_version"] for g in grids]}
    west, south, east, north = session.execute(EXTENT_SQL, params).one()
    paths = {code: path for code, path in session.execute(MAP_SQL, params)}
    shapes, stroke = [], max(east - west, north - south) / 800
    for grid in grids:
        share = _share(grid)
        colour = "#27ae60" if share >= 1 else "#f1c40f" if share >= 0.5 else "#c0392b"
        title = escape(f"{grid['grid']} {grid['grid_name']}: {round(100 * share)}%")
        shapes.append(f'<path d="{escape(paths[grid["grid"]])}" fill="{colour}" '
                      f'fill-opacity="0.75" stroke="#333" stroke-width="{stroke:.1f}">'
                      f"<title>{title}</title></path>")
    pad = max(east - west, north - south) * 0.03
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="map" role="img" '
            f'viewBox="{west - pad:.0f} {-north - pad:.0f} {east - west + 2 * pad:.0f} '
            f'{north - south + 2 * pad:.0f}">' + "".join(shapes) + "</svg>")


def _chart(points: list[dict[str, Any]], lines: list[tuple[str, str, str]], zone: str,
           percent: bool, width: int = 640, height: int = 220) -> str:
    """A line chart over time as inline SVG: one polyline per (key, label, colour)."""
    if len(points) < 2:
        return ""
    left, bottom, right, top = 48, 28, 12, 12
    start, end = points[0]["at"], points[-1]["at"]
    span = max((end - start).total_seconds(), 1)
    peak = 1.0 if percent else max(1, *(p[k] for p in points for k, _, _ in lines))

    def x(at: datetime) -> float:
        return left + (width - left - right) * (at - start).total_seconds() / span

    def y(value: float) -> float:
        return height - bottom - (height - top - bottom) * value / peak

    parts = [f'<line x1="{left}" y1="{y(0):.1f}" x2="{width - right}" y2="{y(0):.1f}" '
             'stroke="#999"/>',
             f'<text x="{left - 4}" y="{y(peak) + 4:.1f}" text-anchor="end">'
             f'{"100%" if percent else f"{peak:g}"}</text>',
             f'<text x="{left - 4}" y="{y(0) + 4:.1f}" text-anchor="end">0</text>',
             f'<text x="{left}" y="{height - 8}">{_local(start, zone, "%m-%d %H:%M")}</text>',
             f'<text x="{width - right}" y="{height - 8}" text-anchor="end">'
             f'{_local(end, zone, "%m-%d %H:%M")} {escape(zone)}</text>']
    for index, (key, label, colour) in enumerate(lines):
        coordinates = " ".join(f"{x(p['at']):.1f},{y(p[key]):.1f}" for p in points)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                     f'points="{coordinates}"/>')
        parts.append(f'<text x="{left + 8 + 200 * index}" y="{top + 12}" fill="{colour}">'
                     f'{escape(label)}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
            f'viewBox="0 0 {width} {height}">' + "".join(parts) + "</svg>")
