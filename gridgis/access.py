"""Who may call what: one table of the roles allowed on every route, checked on every request.

Each route the app serves is listed here with the roles that may use it; a route missing
from the table stops the app at start-up (``check_every_route_listed``), so a new endpoint
cannot go out without a decision. ``auth.caller`` refuses (403) a logged-in user whose role
is not listed for the route, before the route does anything. The domains keep their finer
checks (a grid head's own grids, a layer's writers, residents for admins only) behind this.
The roles of each operation are in the OpenAPI document as ``x-roles``.
"""

from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute

from gridgis.errors import Forbidden
from gridgis.models import ROLES

EVERYONE = ROLES
WATCH = ("command", "admin")  # the command centre
GRID_TEAM = ("grid_head", "grid_worker")
FOLLOWERS = (*WATCH, *GRID_TEAM, "unit_head")  # those who follow alerts
PLANNERS = ("planner", "admin")
PLANNING_READERS = (*PLANNERS, "command")
RESIDENT_READERS = ("admin", *GRID_TEAM, "command")  # masked for the command centre
RESIDENT_WRITERS = ("admin", *GRID_TEAM)
CHECKLIST_READERS = (*WATCH, *GRID_TEAM)

# Answer anyone, logged in or not.
PUBLIC = {("GET", "/health"), ("GET", "/login"), ("POST", "/login"), ("POST", "/logout"),
          ("POST", "/api/auth/token"), ("GET", "/docs"), ("GET", "/docs/oauth2-redirect")}

# The roles writing each layer (the domains check the same lists, and grid scope).
LAYER_WRITERS = {"admin-units": ("admin",), "grids": PLANNERS,
                 "buildings": (*PLANNERS, *GRID_TEAM), "stations": PLANNERS,
                 "shelters": (*PLANNERS, "command")}

POLICY: dict[tuple[str, str], tuple[str, ...]] = {
    ("GET", "/api/map/state"): EVERYONE,
    ("GET", "/map/command"): EVERYONE,
    ("GET", "/map/grid"): FOLLOWERS,
    ("GET", "/map/grid/{code}"): FOLLOWERS,
    ("GET", "/map/planner"): PLANNING_READERS,
    # Layers: read by everyone (residents aside), written by each layer's writers.
    **{("GET", f"/api/{layer}"): EVERYONE for layer in LAYER_WRITERS},
    **{("GET", f"/api/{layer}/{{code}}"): EVERYONE for layer in LAYER_WRITERS},
    **{("POST", f"/api/{layer}"): roles for layer, roles in LAYER_WRITERS.items()
       if layer not in ("admin-units", "grids")},
    **{("PATCH", f"/api/{layer}/{{code}}"): roles for layer, roles in LAYER_WRITERS.items()},
    **{("POST", f"/api/{layer}/{{code}}/retire"): roles
       for layer, roles in LAYER_WRITERS.items()},
    ("GET", "/api/grids/{code}/summary"): EVERYONE,
    ("GET", "/api/admin-units/{code}/summary"): EVERYONE,
    ("GET", "/ogc"): EVERYONE,
    ("GET", "/ogc/conformance"): EVERYONE,
    ("GET", "/ogc/collections"): EVERYONE,
    ("GET", "/ogc/collections/{collection_id}"): EVERYONE,
    ("GET", "/ogc/collections/{collection_id}/items"): EVERYONE,
    ("GET", "/ogc/collections/{collection_id}/items/{feature_id}"): EVERYONE,
    ("GET", "/tiles/{layer}/{z}/{x}/{y}.pbf"): EVERYONE,
    ("POST", "/api/import/{layer}"): PLANNERS,  # residents: admins only
    ("GET", "/api/export/{layer}"): EVERYONE,  # residents: admins only
    ("GET", "/api/residents"): RESIDENT_READERS,
    ("POST", "/api/residents"): RESIDENT_WRITERS,
    ("GET", "/api/residents/{code}"): RESIDENT_READERS,
    ("PATCH", "/api/residents/{code}"): RESIDENT_WRITERS,
    ("GET", "/api/residents/{code}/history"): RESIDENT_READERS,
    ("POST", "/api/residents/{code}/move-out"): RESIDENT_WRITERS,
    ("POST", "/api/residents/{code}/move-in"): RESIDENT_WRITERS,
    # Warnings, alerts and delivery.
    ("POST", "/api/warnings"): WATCH,
    ("GET", "/api/feed"): FOLLOWERS,
    ("GET", "/api/alerts"): FOLLOWERS,
    ("GET", "/api/alerts/{alert_id}"): FOLLOWERS,
    ("POST", "/api/alerts/{alert_id}/ack"): ("admin", *GRID_TEAM),
    ("GET", "/api/delivery/backlog"): WATCH,
    ("GET", "/api/dead-letters"): WATCH,
    ("POST", "/api/dead-letters/requeue"): WATCH,
    # Checklists and reports.
    ("GET", "/api/checklists"): CHECKLIST_READERS,
    ("GET", "/api/checklists/rollup"): (*CHECKLIST_READERS, "unit_head"),
    ("GET", "/api/checklists/series"): (*CHECKLIST_READERS, "unit_head"),
    ("GET", "/api/checklists/{checklist_id}/items"): CHECKLIST_READERS,
    ("GET", "/api/checklists/items/{item_id}"): CHECKLIST_READERS,
    ("PATCH", "/api/checklists/items/{item_id}"): ("admin", *GRID_TEAM),
    ("GET", "/api/warnings/{identifier}/report.csv"): WATCH,
    ("GET", "/api/warnings/{identifier}/report.html"): WATCH,
    ("GET", "/reports"): WATCH,
    ("GET", "/reports/{identifier}"): WATCH,
    # Planning.
    ("POST", "/api/changesets"): PLANNERS,
    ("GET", "/api/changesets"): PLANNING_READERS,
    ("GET", "/api/changesets/{changeset_id}"): PLANNING_READERS,
    ("POST", "/api/changesets/{changeset_id}/operations"): PLANNERS,
    ("POST", "/api/changesets/{changeset_id}/validate"): PLANNERS,
    ("GET", "/api/changesets/{changeset_id}/preview"): PLANNING_READERS,
    ("POST", "/api/changesets/{changeset_id}/abandon"): PLANNERS,
    ("POST", "/api/changesets/{changeset_id}/override"): WATCH,
    ("POST", "/api/changesets/{changeset_id}/publish"): PLANNERS,
    ("GET", "/api/grids/{code}/history"): PLANNING_READERS,
    ("GET", "/api/planning/grids"): PLANNING_READERS,
}


def route_key(request: Request) -> tuple[str, str] | None:
    """Return (method, path template) of the route serving ``request`` (HEAD as GET, and
    ``/ogc/`` as ``/ogc``)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return None
    path = route.path.rstrip("/") or "/"  # an undocumented alias with a slash: its route's
    return ("GET" if request.method == "HEAD" else request.method, path)


def describe(request: Request) -> str:
    """Return "METHOD /path/{template}" of the route serving ``request``, or its URL path."""
    key = route_key(request)
    return f"{key[0]} {key[1]}" if key else f"{request.method} {request.url.path}"


def check(request: Request, role: str) -> None:
    """Raise Forbidden unless ``role`` may use the route serving ``request``."""
    key = route_key(request)
    if key is None or key in PUBLIC:
        return
    allowed = POLICY.get(key)
    if allowed is None:  # never reached: check_every_route_listed stops the app first
        raise Forbidden(f"no role may use {key[0]} {key[1]}")
    if role not in allowed:
        raise Forbidden(f"the {role} role may not use {key[0]} {key[1]}; "
                        f"it is for: {', '.join(allowed)}")


def check_every_route_listed(schema: dict[str, Any]) -> None:
    """Raise unless the table lists every operation of the OpenAPI document (or lists it as
    public), and nothing else; then write each operation's roles into it as ``x-roles``.
    (Every route gridgis serves is in the document, the docs pages aside.)"""
    served = {(method.upper(), path) for path, operations in schema["paths"].items()
              for method in operations}
    unlisted = sorted(served - POLICY.keys() - PUBLIC)
    stale = sorted(POLICY.keys() - served)
    if unlisted or stale:
        raise RuntimeError(f"gridgis.access.POLICY is out of date: routes with no roles "
                           f"{unlisted}, roles for no route {stale}")
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            key = (method.upper(), path)
            operation["x-roles"] = ["anyone"] if key in PUBLIC else list(POLICY[key])
