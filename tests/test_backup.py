"""Backups: `gridgis db backup` and `gridgis db restore` bring back everything, into an empty
database only."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from gridgis import db
from tests.conftest import run_cli

TABLES = ("admin_unit", "grid", "building", "station", "shelter", "resident", "app_user",
          "app_user_grid", "audit_log", "grid_version", "warning", "alert", "outbox",
          "checklist", "checklist_item", "changeset", "alembic_version")


def counts(engine: Engine) -> dict[str, object]:
    with engine.connect() as conn:
        found: dict[str, object] = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                                    for t in TABLES}
        found["migration"] = conn.execute(text("SELECT version_num FROM alembic_version")
                                          ).scalar()
        found["geometry"] = conn.execute(text(
            "SELECT md5(string_agg(ST_AsEWKB(boundary)::text, ',' ORDER BY code)) FROM grid")
            ).scalar()
        found["totals"] = conn.execute(text("SELECT sum(residents) FROM grid_total")).scalar()
    return found


@pytest.fixture
def restored_name(database_url: str) -> Iterator[str]:
    name = f"{make_url(database_url).database}_restored"
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    db.drop_database(url)
    yield name
    db.drop_database(url)


def test_a_backup_restores_everything_into_an_empty_database(
        engine: Engine, database_url: str, restored_name: str, tmp_path: Path) -> None:
    file = tmp_path / "gridgis.dump"
    env = {"GRIDGIS_DATABASE_URL": database_url}
    made = run_cli("db", "backup", str(file), env=env)
    assert made.returncode == 0, made.stderr
    assert file.stat().st_size > 100_000
    back = run_cli("db", "restore", str(file), "--into", restored_name, env=env)
    assert back.returncode == 0, back.stderr
    restored = db.make_engine(make_url(database_url).set(database=restored_name)
                              .render_as_string(hide_password=False))
    try:
        assert counts(restored) == counts(engine)
        assert counts(engine)["grid"] and counts(engine)["resident"]
    finally:
        restored.dispose()
    again = run_cli("db", "restore", str(file), "--into", restored_name, env=env)
    assert again.returncode == 1 and "empty" in again.stderr  # never over live data
    missing = run_cli("db", "restore", str(tmp_path / "nothing.dump"), "--into", "x", env=env)
    assert missing.returncode == 1 and "no such backup file" in missing.stderr
