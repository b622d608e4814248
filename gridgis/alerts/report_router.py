"""HTTP for after-action reports: the page, its HTML download and the per-grid CSV."""

from html import escape
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import text

from gridgis import auth
from gridgis.alerts import report
from gridgis.auth import CurrentUser, OptionalUser
from gridgis.db import SessionDep
from gridgis.maps import assets

router = APIRouter(tags=["reports"])
Identifier = Annotated[str, Path(min_length=1, max_length=200)]
Lang = Annotated[Literal["zh", "en"], Query(description="the report's language")]
RECENT_SQL = text("""
SELECT identifier, event, level, received_at FROM warning
WHERE msg_type = 'alert' ORDER BY received_at DESC LIMIT 200
""")


def _urls(identifier: str) -> tuple[str, str]:
    base = f"/api/warnings/{quote(identifier, safe='')}/report"
    return f"{base}.csv", f"{base}.html"


@router.get("/api/warnings/{identifier}/report.csv")
def report_csv(session: SessionDep, user: CurrentUser, identifier: Identifier) -> Response:
    """The per-grid numbers of a warning's chain, for a spreadsheet."""
    found = report.gather(session, user, identifier)
    return Response(report.to_csv(found), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": _attachment(identifier, "csv")})


@router.get("/api/warnings/{identifier}/report.html")
def report_html(session: SessionDep, user: CurrentUser, identifier: Identifier,
                lang: Lang = "zh") -> Response:
    """The report as one self-contained HTML file to keep, send or print to PDF."""
    found = report.gather(session, user, identifier)
    csv_url, html_url = _urls(identifier)
    return HTMLResponse(report.to_html(session, found, csv_url, html_url, lang=lang), headers={
        "Content-Disposition": _attachment(identifier, "html")})


@router.get("/reports", response_class=HTMLResponse, tags=["pages"])
def reports_page(session: SessionDep, user: OptionalUser) -> Response:
    """The warnings that have a report, newest first (log-in first)."""
    if user is None:
        return RedirectResponse("/login?next=/reports", status_code=303)
    auth.require_role(user, *report.READ_ROLES)
    rows = "".join(
        f'<li><a href="/reports/{quote(r.identifier, safe="")}">{escape(r.identifier)}</a> '
        f"{escape(r.event)} · {escape(r.level)} · {r.received_at:%Y-%m-%d %H:%M}</li>"
        for r in session.execute(RECENT_SQL))
    return HTMLResponse('<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
                        "<title>复盘报告 · gridgis</title></head><body><h1>复盘报告</h1>"
                        f"<ul>{rows or '<li>还没有预警</li>'}</ul></body></html>")


@router.get("/reports/{identifier}", response_class=HTMLResponse, tags=["pages"])
def report_page(session: SessionDep, user: OptionalUser, identifier: Identifier,
                lang: Lang = "zh") -> Response:
    """A warning's after-action report as a page (log-in first)."""
    if user is None:
        return RedirectResponse(f"/login?next=/reports/{quote(identifier, safe='')}",
                                status_code=303)
    found = report.gather(session, user, identifier)
    csv_url, html_url = _urls(identifier)
    return HTMLResponse(report.to_html(session, found, csv_url, html_url, assets.FONT_CSS,
                                       lang))


def _attachment(identifier: str, extension: str) -> str:
    """A download name: ASCII for every browser, the identifier as it is in ``filename*``."""
    plain = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_"
                    for c in identifier)
    return (f'attachment; filename="report-{plain}.{extension}"; '
            f"filename*=UTF-8''report-{quote(identifier, safe='')}.{extension}")
