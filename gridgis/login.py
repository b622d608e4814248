"""Log-in and log-out for pages: a form, then a session cookie (HttpOnly, SameSite=Strict)."""

from html import escape
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gridgis import auth
from gridgis.db import SessionDep
from gridgis.errors import TooManyAttempts, Unauthorized
from gridgis.maps import i18n
from gridgis.settings import get_settings

router = APIRouter(tags=["pages"])

PAGE = """<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{l_title} · gridgis</title>
<link rel="icon" type="image/svg+xml" href="/static/gridgis/favicon.svg">
<link rel="stylesheet" href="/static/vendor/@fontsource/noto-sans-sc/400.css">
<link rel="stylesheet" href="/static/gridgis/gridgis.css">
</head><body class="gridgis-login">
<form method="post" action="/login">
  <h1>{l_heading}</h1>
  {error}
  <label>{l_username} <input name="username" autocomplete="username" required
    value="{username}"></label>
  <label>{l_password} <input name="password" type="password"
    autocomplete="current-password" required></label>
  <input type="hidden" name="next" value="{next}">
  <button type="submit">{l_submit}</button>
</form></body></html>"""


def safe_next(target: str) -> str:
    """Return ``target`` if it is a path on this site, else the command page (no open redirect)."""
    if target.startswith("/") and not target.startswith("//") and "\\\\" not in target:
        return target
    return "/map/command"


def login_page(next_path: str = "/map/command", username: str = "", error: str = "",
               status: int = 200) -> HTMLResponse:
    """The form, in the language the page asked for (``lang=en`` in ``next``)."""
    target = safe_next(next_path)
    words = i18n.words("en" if "lang=en" in target else "zh")
    shown = f'<p class="gridgis-error">{escape(error)}</p>' if error else ""
    labels = {key: escape(value) for key, value in words.items() if key.startswith("l_")}
    return HTMLResponse(PAGE.format(error=shown, username=escape(username),
                                    next=escape(target), lang=words["lang"], **labels),
                        status_code=status)


@router.get("/login", response_class=HTMLResponse)
def show_login(next: str = "/map/command") -> HTMLResponse:
    """The log-in form."""
    return login_page(next)


@router.post("/login", response_class=HTMLResponse)
def log_in(session: SessionDep, username: Annotated[str, Form()],
           password: Annotated[str, Form()],
           next: Annotated[str, Form()] = "/map/command") -> Response:
    """Check the password; on success set the session cookie and go where the user was going."""
    try:
        user = auth.authenticate(session, username, password)
    except TooManyAttempts as exc:
        return login_page(next, username, str(exc), status=429)
    except Unauthorized as exc:
        failed = i18n.words("en" if "lang=en" in safe_next(next) else "zh")["l_failed"]
        return login_page(next, username, f"{failed}{exc}", status=401)
    token, _ = auth.issue_token(session, user)
    session.commit()
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(auth.SESSION_COOKIE, token, httponly=True, samesite="strict",
                        max_age=get_settings().token_minutes * 60, path="/")
    return response


@router.post("/logout")
def log_out(request: Request, session: SessionDep) -> RedirectResponse:
    """Revoke the session's token and forget the cookie."""
    token = request.cookies.get(auth.SESSION_COOKIE)
    if token:
        auth.revoke_token(session, token)
        session.commit()
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(auth.SESSION_COOKIE, path="/")
    return response
