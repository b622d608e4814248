"""Schemathesis against gridgis's own OpenAPI document: requests generated from it reach
every operation, as an admin (the widest role), on the real test database. None may end in a
server error, and every answer must match what the document says of it.

Each operation gets a bounded number of examples (``EXAMPLES``): enough to walk each
parameter's edges (empty, huge, unicode, wrong type) in well under a minute for the whole
API. Writes go into the test's rolled-back transaction, like every API test here.
"""

from collections.abc import Callable, Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance
from sqlalchemy.orm import Session

from gridgis.main import create_app
from tests.conftest import requests_in

EXAMPLES = 8
# The live feed is an endless stream (tested in test_feed.py); the form log-in and log-out
# answer HTML redirects (test_api.py).
SKIPPED = ("/api/feed", "/login", "/logout")


APP = create_app()  # the document is read at collection; requests get the test's session
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
for skipped in SKIPPED:
    schema = schema.exclude(path=skipped)


@pytest.fixture
def admin(session: Session, login: Callable[..., dict[str, str]]) -> Iterator[dict[str, str]]:
    """An admin's headers; meanwhile the app works in the test's rolled-back session."""
    headers = login("fuzz-admin", "admin")
    with requests_in(APP, session):
        yield headers


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_requests_get_no_server_error_and_answers_match_the_schema(
        case: schemathesis.Case, admin: dict[str, str]) -> None:
    case.call_and_validate(headers=admin,
                           checks=[not_a_server_error, response_schema_conformance])


def test_values_no_column_can_hold_are_refused_not_crashed_on(
        admin: dict[str, str]) -> None:
    """What schemathesis found first: a NUL byte in a text and an id beyond PostgreSQL's
    integer were server errors; they are 422s that say what was wrong."""
    from fastapi.testclient import TestClient

    client = TestClient(APP)
    nul = client.post("/api/auth/token", data={"username": "\x00", "password": "x"})
    assert nul.status_code == 422 and "NUL" in nul.json()["detail"]
    huge = client.get(f"/api/checklists/items/{2**40}", headers=admin)
    assert huge.status_code == 422 and "out of range" in huge.json()["detail"]
