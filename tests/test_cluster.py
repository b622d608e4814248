"""The embedded local PostGIS: created on first use, started, stopped, started again."""

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from gridgis import db
from gridgis.cluster import Cluster
from gridgis.errors import ClusterError
from gridgis.settings import PROJECT_DIR, get_settings
from tests.conftest import free_port, run_cli

# Inside the project (as the real cluster is): the unprivileged owner must reach it.
SCRATCH = PROJECT_DIR / "var" / "test-clusters"


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    SCRATCH.mkdir(parents=True, exist_ok=True)
    root = SCRATCH / uuid.uuid4().hex[:8]
    made = Cluster(root=root, port=free_port(), database="scratch",
                   system_user=get_settings().pg_system_user)
    yield made
    made.stop()
    shutil.rmtree(root, ignore_errors=True)
    for leftover in (made.password_file, root.with_name(f".{root.name}.lock")):
        leftover.unlink(missing_ok=True)


def test_start_stop_and_second_start(cluster: Cluster) -> None:
    assert cluster.init() is True
    assert cluster.init() is False  # a second set-up changes nothing
    assert cluster.start() is True
    assert cluster.running()
    assert cluster.start() is False  # already running: nothing to do
    url = cluster.url("postgres")
    engine = db.make_engine(url)
    try:
        server, postgis = db.postgis_version(engine)
        assert server and postgis
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_user")).scalar() == cluster.db_user
    finally:
        engine.dispose()
    assert cluster.stop() is True
    assert not cluster.running()
    assert cluster.stop() is False
    assert cluster.start() is True  # the same data folder starts again
    assert db.ensure_database(cluster.url()) is True
    assert db.ensure_database(cluster.url()) is False


def test_password_is_required(cluster: Cluster) -> None:
    cluster.init()
    cluster.start()
    wrong = cluster.url("postgres").replace(cluster.password_file.read_text().strip(), "wrong")
    with pytest.raises(db.DatabaseUnavailable, match="password authentication failed"):
        db.postgis_version(db.make_engine(wrong))


def test_port_in_use_is_named(cluster: Cluster) -> None:
    cluster.init()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", cluster.port))
        squatter.listen()
        with pytest.raises(ClusterError, match=f"port {cluster.port} .* in use"):
            cluster.start()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a folder to another user")
def test_folder_owned_by_someone_else_is_refused(cluster: Cluster) -> None:
    cluster.root.mkdir(parents=True)
    os.chown(cluster.root, 65534, -1)  # nobody
    with pytest.raises(ClusterError, match="belongs to nobody"):
        cluster.init()


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    port = free_port()
    dead = {"GRIDGIS_DATABASE_URL": f"postgresql://nobody:x@127.0.0.1:{port}/nothing"}
    result = run_cli("db", "status", env=dead)
    assert result.returncode == 1
    assert result.stderr.startswith("gridgis: the database at postgresql+psycopg://nobody:***@")
    assert "does not answer" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        env = {"GRIDGIS_DATABASE_URL": "", "DATABASE_URL": "",
               "GRIDGIS_PG_DIR": str(SCRATCH / f"cli-{port}"), "GRIDGIS_PG_PORT": str(port)}
        try:
            busy = run_cli("db", "up", env=env)
        finally:
            for leftover in SCRATCH.glob(f"*cli-{port}*"):
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink()
    assert busy.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use" in busy.stderr
    assert "Traceback" not in busy.stderr


def test_deep_folder_puts_the_socket_under_tmp() -> None:
    deep = Cluster(root=SCRATCH / ("d" * 120), port=55999, database="x", system_user="gridgis")
    assert str(deep.socket_dir).startswith("/tmp/gridgis-")
    near = Cluster(root=Path("/srv/pg"), port=55999, database="x", system_user="gridgis")
    assert near.socket_dir == Path("/srv/pg/run")


@pytest.mark.skipif(os.geteuid() != 0, reason="the fallback is for a cluster run as root")
def test_project_closed_to_others_falls_back_when_root(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    settings = get_settings().model_copy(update={"pg_dir": closed / "var" / "pg"})
    cluster = Cluster.from_settings(settings)
    assert cluster.root.is_relative_to(Path("/var/lib/gridgis"))
    assert Cluster.from_settings(settings) == cluster  # the same place every time
