"""Access: every endpoint of the API refuses a caller without credentials, every page sends
one to the log-in form; every endpoint refuses every role it is not for. The sweeps read the
OpenAPI document (and its ``x-roles``), so a new endpoint is checked without a new test."""

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm import Session

from gridgis.access import PUBLIC
from gridgis.models import ROLES

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


@pytest.mark.parametrize("role", ROLES)
def test_every_endpoint_refuses_the_roles_it_is_not_for(
        client: TestClient, login: Callable[..., dict[str, str]], role: str) -> None:
    """Each operation's ``x-roles`` is its decision; every other role gets 403 before the
    endpoint reads its input (a body, an If-Match) or its data."""
    grids = ["440402100001001"] if role in ("grid_head", "grid_worker") else []
    headers = login(f"acc-{role}", role, grids)
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    refused = 0
    for method, path, concrete in operations(client):
        roles = paths[path][method.lower()]["x-roles"]
        assert roles, (method, path)
        if (method, path) in PUBLIC or role in roles:
            continue
        answer = client.request(method, concrete, headers=headers, follow_redirects=False)
        assert answer.status_code == 403, (method, path, role, answer.status_code)
        assert f"the {role} role may not use" in answer.json()["detail"]
        refused += 1
    assert refused >= {"admin": 0, "command": 10}.get(role, 15)


def test_placeholder_secrets_stop_gridgis_outside_development() -> None:
    from pydantic import ValidationError

    from gridgis.settings import Settings
    from tests.conftest import run_cli

    placeholder = {"sms_gateway_key": "change-me", "smtp_password": "s3cr3t-from-vault"}
    assert Settings(environment="development", **placeholder)  # a laptop may
    for environment in ("test", "production"):
        with pytest.raises(ValidationError, match="GRIDGIS_SMS_GATEWAY_KEY: a placeholder"):
            Settings(environment=environment, **placeholder)
    assert Settings(environment="production", sms_gateway_key="k-81f3a", smtp_password="p-2c9d")
    refused = run_cli("serve", env={"GRIDGIS_ENVIRONMENT": "production",
                                    "GRIDGIS_SMS_GATEWAY_KEY": "change-me"})
    assert refused.returncode == 1
    assert refused.stderr.startswith("gridgis: bad settings: GRIDGIS_SMS_GATEWAY_KEY: a "
                                     "placeholder"), refused.stderr


def test_the_application_role_only_appends_to_the_audit_log(engine: Engine) -> None:
    """The server and dispatcher work as ``gridgis_app``: no superuser, no owner; it adds
    audit entries but cannot change or remove one."""
    from gridgis import db

    app = db.get_engine()
    with app.connect() as conn:
        who = conn.execute(text(
            "SELECT current_user, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles "
            "WHERE rolname = current_user")).one()
        assert tuple(who) == ("gridgis_app", False, False, False)
        entry = conn.execute(text(
            "INSERT INTO audit_log (action, entity, entity_id) VALUES ('probe', 'test', 'x') "
            "RETURNING id")).scalar_one()
        conn.commit()
        for change in ("UPDATE audit_log SET action = 'nothing' WHERE id = :id",
                       "DELETE FROM audit_log WHERE id = :id", "TRUNCATE audit_log"):
            with pytest.raises(ProgrammingError, match="permission denied"):
                conn.execute(text(change), {"id": entry})
            conn.rollback()
        with pytest.raises(ProgrammingError, match="must be owner"):
            conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER ALL"))
        conn.rollback()
        conn.execute(text("SELECT refresh_grid_total(false)"))  # the one owner task it may do
        conn.rollback()
    with engine.begin() as owner:
        assert owner.execute(text("SELECT action FROM audit_log WHERE id = :id"),
                             {"id": entry}).scalar_one() == "probe"
        owner.execute(text("DELETE FROM audit_log WHERE id = :id"), {"id": entry})


def test_an_expired_token_lets_nobody_in(client: TestClient, session: Session,
                                         login: Callable[..., dict[str, str]]) -> None:
    headers = login("acc-expiring", "command")
    assert client.get("/api/grids?limit=1", headers=headers).status_code == 200
    session.execute(text(
        "UPDATE auth_token SET expires_at = now() - interval '1 second' WHERE app_user_id = "
        "(SELECT id FROM app_user WHERE username = 'acc-expiring')"))
    answer = client.get("/api/grids?limit=1", headers=headers)
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer"
