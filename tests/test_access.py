"""Access: every endpoint of the API refuses a caller without credentials, every page sends
one to the log-in form; endpoints for the command centre, planners and admins refuse a grid
head. The sweep reads the OpenAPI document, so a new endpoint is checked without a new test."""

import re
from collections.abc import Callable

from fastapi.testclient import TestClient

PUBLIC = {("GET", "/health"), ("GET", "/login"), ("POST", "/login"), ("POST", "/logout"),
          ("POST", "/api/auth/token")}
SAMPLE = {"z": "1", "x": "0", "y": "0", "code": "440402100001001", "layer": "grids"}


def operations(client: TestClient) -> list[tuple[str, str, str]]:
    """Every (method, path template, concrete path) the app documents."""
    found = []
    for path, methods in client.app.openapi()["paths"].items():  # type: ignore[attr-defined]
        concrete = re.sub(r"\{(\w+)\}", lambda m: SAMPLE.get(m.group(1), "1"), path)
        found += [(method.upper(), path, concrete) for method in methods]
    return found


def test_nothing_answers_without_credentials(client: TestClient) -> None:
    checked = 0
    for method, path, concrete in operations(client):
        if (method, path) in PUBLIC:
            continue
        answer = client.request(method, concrete, follow_redirects=False)
        if path.startswith(("/api", "/ogc", "/tiles")):
            assert answer.status_code == 401, (method, path, answer.status_code)
        else:  # a page: to the log-in form, and back afterwards
            assert answer.status_code == 303, (method, path, answer.status_code)
            assert answer.headers["location"].startswith("/login?next="), path
        checked += 1
    assert checked > 60


def test_a_grid_head_is_refused_what_is_not_theirs(
        client: TestClient, login: Callable[..., dict[str, str]]) -> None:
    head = login("acc-head", "grid_head", ["440402100001001"])
    refused = [("GET", "/api/dead-letters"), ("POST", "/api/dead-letters/requeue"),
               ("POST", "/api/changesets"), ("GET", "/api/changesets"),
               ("POST", "/api/changesets/1/override"), ("POST", "/api/changesets/1/publish"),
               ("GET", "/api/warnings/x/report.csv"),
               ("GET", "/api/planning/grids?at=2026-09-06T08:00:00Z"),
               ("GET", "/api/export/residents")]
    for method, path in refused:
        answer = client.request(method, path, headers=head,
                                json={"reason": "test"} if method == "POST" else None)
        assert answer.status_code == 403, (method, path, answer.status_code, answer.text)
