"""create_app(): the FastAPI application, composed of the domains' routers."""

from pathlib import Path
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from psycopg_pool import PoolTimeout as AsyncPoolTimeout
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from gridgis import __version__, access, api, login
from gridgis.admission import Admission
from gridgis.alerts import checklist_router, feed_router, report_router
from gridgis.alerts import router as alerts_router
from gridgis.body_limit import BodyLimit
from gridgis.errors import GridGisError, StaleVersion, TooManyAttempts, status_of
from gridgis.headers import SecurityHeaders
from gridgis.layers import edit_router, files_router, ogc_router, tiles_router
from gridgis.layers import router as layers_router
from gridgis.maps import assets
from gridgis.maps import router as maps_router
from gridgis.planning import router as planning_router
from gridgis.settings import get_settings

CORS_METHODS = ["GET", "POST", "PATCH"]
CORS_HEADERS = ["Authorization", "Content-Type", "If-Match", "Idempotency-Key",
                "Last-Event-ID"]
CORS_EXPOSED = ["ETag", "Retry-After", "Idempotent-Replayed", "Link"]


def create_app() -> FastAPI:
    """Return the application: API, pages and their static assets, all served locally."""
    settings = get_settings()
    app = FastAPI(title="gridgis", version=__version__, docs_url=None, redoc_url=None,
                  description="Grids, typhoon warnings and evacuation checklists on PostGIS.")
    app.include_router(api.router)
    app.include_router(login.router)
    app.include_router(layers_router.router)
    app.include_router(edit_router.router)
    app.include_router(ogc_router.router)
    app.include_router(tiles_router.router)
    app.include_router(files_router.router)
    app.include_router(alerts_router.router)
    app.include_router(feed_router.router)
    app.include_router(checklist_router.router)
    app.include_router(report_router.router)
    app.include_router(planning_router.router)
    app.include_router(maps_router.router)
    app.include_router(maps_router.api_router)
    document(app)
    app.add_exception_handler(GridGisError, domain_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(DBAPIError, database_error)  # type: ignore[arg-type]
    app.add_exception_handler(PoolTimeout, database_busy)  # type: ignore[arg-type]
    # The same, from the async pool of the tiles (psycopg's own errors, no SQLAlchemy).
    app.add_exception_handler(psycopg.OperationalError, driver_error)  # type: ignore[arg-type]
    app.add_exception_handler(psycopg.InterfaceError, driver_error)  # type: ignore[arg-type]
    app.add_exception_handler(AsyncPoolTimeout, database_busy)  # type: ignore[arg-type]
    # Middleware: the last added is the outermost (security headers on every answer).
    app.add_middleware(BodyLimit, max_bytes=int(settings.body_max_mb * 2**20),
                       import_max_bytes=int(settings.import_max_mb * 2**20) + 2**20)
    app.add_middleware(Admission, limit=settings.db_pool_size + settings.db_pool_overflow,
                       wait_s=settings.admission_wait_seconds)
    if settings.cors_origins:  # bearer tokens only: cookies stay with gridgis's own pages
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_credentials=False, allow_methods=CORS_METHODS,
                           allow_headers=CORS_HEADERS, expose_headers=CORS_EXPOSED, max_age=600)
    app.add_middleware(SecurityHeaders, basemap_url=settings.basemap_url)
    mount_assets(app, settings.assets_dir)
    add_docs(app)
    return app


def document(app: FastAPI) -> None:
    """Complete the OpenAPI document: each operation's roles (``x-roles``; a route with none
    stops the app here, at start-up), and the error body as gridgis sends it: ``detail`` is
    a message, or FastAPI's list for a request that does not fit its parameters."""
    make_schema = app.openapi

    def openapi() -> dict[str, Any]:
        schema = make_schema()  # FastAPI's, made again whenever routes are added
        access.check_every_route_listed(schema)
        errors = schema.get("components", {}).get("schemas", {}).get("HTTPValidationError")
        if errors is not None and "anyOf" not in errors["properties"]["detail"]:
            detail = errors["properties"]["detail"]
            errors["properties"]["detail"] = {"anyOf": [detail, {"type": "string"}],
                                              "title": "Detail"}
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    openapi()


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 for a request that does not fit its parameters, without the input each
    error came from: a refused body is never sent back (it may be megabytes)."""
    errors = [{key: value for key, value in error.items() if key not in ("input", "ctx", "url")}
              for error in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


async def domain_error(request: Request, exc: GridGisError) -> JSONResponse:
    """Answer a domain error with its status and its message, nothing more."""
    status = status_of(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(exc, TooManyAttempts):
        headers = {"Retry-After": str(exc.retry_after)}
    body: dict[str, object] = {"detail": str(exc)}
    if isinstance(exc, StaleVersion):
        body["current"] = exc.current  # what the row holds now, to redo the edit on
    if findings := getattr(exc, "findings", None):
        body["findings"] = findings  # what is wrong, where (planning: with the geometry)
    return JSONResponse(body, status_code=status, headers=headers)


# How long a client should wait before retrying while the database does not answer: about
# what a restart of PostgreSQL takes.
DATABASE_RETRY_AFTER_S = 5


async def database_error(request: Request, exc: DBAPIError) -> JSONResponse:
    """Answer 422 when a value cannot be stored at all (a NUL byte in a text, a number out
    of range: psycopg's DataError), and 503 with a retry hint when the database is gone or
    a transaction could not finish (a restart, a lost connection, a deadlock, a timeout):
    the request's transaction was rolled back, so the client repeats it as it was (a stale
    If-Match then tells it that its change did land). Anything else is a bug: a 500."""
    if isinstance(exc.orig, psycopg.DataError):  # a value no column can hold: the caller's
        reason = str(exc.orig).splitlines()[0]
        return JSONResponse({"detail": f"a value the database cannot store: {reason}"},
                            status_code=422)
    if not (exc.connection_invalidated or is_transient(exc)):
        raise exc
    return database_unavailable()


async def driver_error(request: Request,
                       exc: psycopg.OperationalError | psycopg.InterfaceError) -> JSONResponse:
    """Answer 503 with a retry hint for psycopg's transient errors raised outside SQLAlchemy
    (the tiles' async pool), as ``database_error`` does for those within."""
    return database_unavailable()


def database_unavailable() -> JSONResponse:
    return JSONResponse(
        {"detail": "the database is not answering or the change could not finish; nothing "
                   f"was changed: try again in {DATABASE_RETRY_AFTER_S} seconds"},
        status_code=503, headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)})


async def database_busy(request: Request, exc: PoolTimeout | AsyncPoolTimeout) -> JSONResponse:
    """Answer 503 with a retry hint when no database connection came free in time."""
    return JSONResponse(
        {"detail": "gridgis is busy (no database connection free); nothing was changed: try "
                   f"again in {DATABASE_RETRY_AFTER_S} seconds"},
        status_code=503, headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)})


def is_transient(exc: DBAPIError) -> bool:
    """Return whether the driver says the server went away or the transaction may succeed
    if tried again (psycopg's OperationalError covers both: lost connections, shutdowns,
    deadlocks, serialisation failures, cancelled statements)."""
    return isinstance(exc.orig, psycopg.OperationalError | psycopg.InterfaceError)


def mount_assets(app: FastAPI, vendor_dir: Path) -> None:
    """Serve the npm packages and gridgis's own files; refuse to start without them."""
    missing = [p for p in assets.PACKAGES if not (vendor_dir / p).is_dir()]
    if missing:
        raise GridGisError(f"browser assets missing in {vendor_dir} ({', '.join(missing)}): "
                           f"run `make assets`")
    for package in assets.PACKAGES:
        app.mount(f"{assets.VENDOR}/{package}", StaticFiles(directory=vendor_dir / package),
                  name=f"vendor-{package}")
    app.mount(assets.OWN, StaticFiles(directory=assets.OWN_DIR), name="gridgis-static")


def add_docs(app: FastAPI) -> None:
    """Swagger UI at /docs from the local swagger-ui-dist (the default loads it from a CDN)."""
    ui = f"{assets.VENDOR}/swagger-ui-dist"

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title="gridgis API",
            swagger_js_url=f"{ui}/swagger-ui-bundle.js", swagger_css_url=f"{ui}/swagger-ui.css",
            swagger_favicon_url=f"{ui}/favicon-32x32.png",
            oauth2_redirect_url="/docs/oauth2-redirect",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
