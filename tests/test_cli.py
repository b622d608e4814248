"""The ``gridgis`` command against the test database."""

from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from gridgis import db
from tests.conftest import run_cli


def test_db_url_and_status(database_url: str) -> None:
    url = run_cli("db", "url")
    assert url.returncode == 0 and url.stdout.strip() == database_url
    status = run_cli("db", "status")
    assert status.returncode == 0
    head = ScriptDirectory.from_config(db.alembic_config(database_url)).get_current_head()
    assert "PostGIS 3." in status.stdout and f"migration {head}" in status.stdout


def test_user_add_then_log_in(engine: Engine) -> None:
    added = run_cli("user", "add", "cli_head", "--role", "grid_head", "--grid",
                    _first_grid(engine), "--password-stdin", stdin="a long secret\n")
    try:
        assert added.returncode == 0, added.stderr
        with engine.connect() as conn:
            role, grids, hashed = conn.execute(text(
                "SELECT u.role, count(g.grid_id), u.password_hash FROM app_user u "
                "JOIN app_user_grid g ON g.app_user_id = u.id WHERE u.username = 'cli_head' "
                "GROUP BY u.id")).one()
        assert (role, grids) == ("grid_head", 1)
        assert hashed.startswith("$argon2id$") and "a long secret" not in hashed
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM app_user WHERE username = 'cli_head'"))


def test_user_add_refuses_bad_input(engine: Engine) -> None:
    unknown = run_cli("user", "add", "x", "--role", "grid_head", "--grid", "999999999999999",
                      "--password-stdin", stdin="a long secret\n")
    assert unknown.returncode == 1 and "unknown grid code(s): 999999999999999" in unknown.stderr
    role = run_cli("user", "add", "x", "--role", "emperor", "--password-stdin",
                   stdin="a long secret\n")
    assert role.returncode == 1 and "unknown role 'emperor'" in role.stderr
    short = run_cli("user", "add", "x", "--role", "admin", "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "at least 8 characters" in short.stderr
    with engine.connect() as conn:
        assert conn.execute(text(
            "SELECT count(*) FROM app_user WHERE username = 'x'")).scalar() == 0


def test_demo_load_twice_loads_nothing(engine: Engine) -> None:
    result = run_cli("demo", "load", "--scale", "hengqin")
    assert result.returncode == 0
    assert "already loaded: nothing to do" in result.stdout


def test_unknown_scale(engine: Engine) -> None:
    result = run_cli("demo", "load", "--scale", "atlantis")
    assert result.returncode == 1
    assert "unknown scale 'atlantis'" in result.stderr


def _first_grid(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT code FROM grid ORDER BY id LIMIT 1")).scalar())


def test_bad_setting_is_one_line() -> None:
    result = run_cli("db", "status", env={"GRIDGIS_PG_PORT": "abc"})
    assert result.returncode == 1
    assert result.stderr.startswith("gridgis: bad setting GRIDGIS_PG_PORT:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_migration_is_one_line(database_url: str) -> None:
    result = run_cli("db", "upgrade", "nosuchrevision")
    assert result.returncode == 1
    assert "migrations:" in result.stderr and "Traceback" not in result.stderr
