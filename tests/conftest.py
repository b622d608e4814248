"""Tests run against a real PostGIS: the server in use (DATABASE_URL or the local cluster).

A fresh database ``<name>_test`` is created and migrated once per session, and the hengqin
demo is loaded into it. Each test that takes ``session`` or ``client`` runs inside a
transaction rolled back afterwards (commits inside become SAVEPOINT releases).
"""

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from gridgis import db
from gridgis.demo import load
from gridgis.settings import PROJECT_DIR, get_settings

OUTPUT_DIR = PROJECT_DIR / "test-output"


def _server_url() -> str:
    get_settings.cache_clear()
    return db.database_url()


def _sibling(url: str, suffix: str) -> str:
    """Return the URL of a sibling database; GRIDGIS_TEST_DB_TAG keeps parallel runs apart."""
    parsed = make_url(url)
    tag = os.environ.get("GRIDGIS_TEST_DB_TAG", "")
    return parsed.set(database=f"{parsed.database}_{suffix}{tag}").render_as_string(
        hide_password=False
    )


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """The URL of a fresh, migrated test database holding the hengqin demo."""
    url = _sibling(_server_url(), "test")
    db.ensure_database(url, recreate=True)
    os.environ["GRIDGIS_DATABASE_URL"] = url
    get_settings.cache_clear()
    db.get_engine.cache_clear()
    db._session_factory.cache_clear()
    db.upgrade_database(url)
    engine = db.make_engine(url)
    load.load_demo(engine, "hengqin")
    engine.dispose()
    yield url
    db.get_engine().dispose()
    db.drop_database(url)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    """The test database as its owner, for set-up and clean-up (the server and dispatcher
    processes the tests start work as the application's role)."""
    owner = db.make_engine(database_url)
    yield owner
    owner.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session whose work is rolled back after the test, commits included."""
    connection = engine.connect()
    outer = connection.begin()
    with Session(bind=connection, join_transaction_mode="create_savepoint",
                 expire_on_commit=False) as session:
        yield session
    outer.rollback()
    connection.close()


@dataclass(frozen=True)
class SessionTileReader:
    """Tile statements in a test's session: the app's async pool would not see the test's
    rolled-back transaction (its users, tokens and edits)."""

    session: Session

    async def fetch_one(self, statement: str, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        driver = self.session.connection().connection.driver_connection
        with driver.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchone()  # type: ignore[no-any-return]


@contextmanager
def requests_in(app: FastAPI, session: Session) -> Iterator[None]:
    """While inside, every request to ``app`` uses ``session`` (a test's rolled-back one),
    the tiles' statements included."""
    from gridgis.layers import tiles_router

    def request_session() -> Iterator[Session]:
        try:
            yield session
        except Exception:
            session.rollback()  # as a request's own session would be: nothing of it stays
            raise

    app.dependency_overrides[db.get_session] = request_session
    app.dependency_overrides[tiles_router.tile_reader] = lambda: SessionTileReader(session)
    try:
        yield
    finally:
        app.dependency_overrides.clear()


@pytest.fixture
def client(session: Session) -> Iterator[TestClient]:
    """The app, with every request using the test's rolled-back session."""
    from gridgis.main import create_app

    app = create_app()
    with requests_in(app, session), TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def login(client: TestClient, session: Session) -> Callable[..., dict[str, str]]:
    """Return a function making a user (role, grid codes) and giving its bearer header."""
    from gridgis import auth

    def make(name: str, role: str, grids: list[str] | None = None) -> dict[str, str]:
        auth.add_user(session, name, role, "correct horse battery", grids or [])
        session.commit()
        answer = client.post("/api/auth/token",
                             data={"username": name, "password": "correct horse battery"})
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}

    return make


@pytest.fixture(scope="session")
def empty_database_url(database_url: str) -> Iterator[str]:
    """A second migrated database with no layer data, for loads that must write nothing."""
    url = _sibling(_server_url(), "empty")
    db.ensure_database(url, recreate=True)
    db.upgrade_database(url)
    yield url
    db.drop_database(url)


@pytest.fixture
def empty_engine(empty_database_url: str) -> Iterator[Engine]:
    engine = db.make_engine(empty_database_url)
    yield engine
    engine.dispose()


def layer_counts(engine: Engine) -> dict[str, int]:
    """Return the number of rows in each layer table."""
    with engine.connect() as conn:
        return {table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in load.LAYER_TABLES}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None,
            cwd: Path = PROJECT_DIR) -> subprocess.CompletedProcess[str]:
    """Run the ``gridgis`` command in a subprocess, as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "gridgis.cli", *args], capture_output=True,
                          text=True, env=full_env, input=stdin, cwd=cwd, timeout=300, check=False)


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT_DIR.mkdir(exist_ok=True)
    return OUTPUT_DIR
