"""The Yagi drill: the real best track replayed as exercise advisories against Hengqin."""

from sqlalchemy import Engine, text

from gridgis.alerts import drill
from tests.conftest import run_cli


def test_yagi_reaches_hengqin_as_an_exercise(engine: Engine) -> None:
    lines: list[str] = []
    try:
        summary = drill.run_drill(engine, "yagi", speed=0, forecast_hours=24, limit=40,
                                  report=lines.append)
        with engine.connect() as conn:
            grids = conn.execute(text("SELECT count(*) FROM grid")).scalar_one()
            statuses = set(conn.execute(text(
                "SELECT status FROM warning WHERE storm_id LIKE 'drill-yagi-%'")).scalars())
            reached = conn.execute(text(
                "SELECT count(DISTINCT a.grid_id), min(a.gale_eta) FROM alert a JOIN warning w "
                "ON w.id = a.warning_id WHERE w.storm_id LIKE 'drill-yagi-%'")).one()
        assert len(lines) == 40 and "40 advisories" in summary
        assert statuses == {"exercise"}
        assert reached[0] == grids  # every Hengqin grid, by the 34-kt circle
        # Hengqin lies near the edge of Yagi's 34-kt circle on 5 September around 15-18Z.
        assert reached[1] is not None and reached[1].strftime("%Y-%m-%d") == "2024-09-05"
    finally:
        with engine.begin() as conn:
            drilled = "SELECT id FROM warning WHERE storm_id LIKE 'drill-yagi-%'"
            conn.execute(text(f"DELETE FROM outbox WHERE alert_id IN (SELECT id FROM alert "
                              f"WHERE warning_id IN ({drilled}))"))
            conn.execute(text(f"DELETE FROM alert WHERE warning_id IN ({drilled})"))
            conn.execute(text("DELETE FROM warning WHERE storm_id LIKE 'drill-yagi-%'"))


def test_unknown_drill_is_one_line() -> None:
    result = run_cli("drill", "katrina", "--speed", "0")
    assert result.returncode == 1 and "unknown drill 'katrina'" in result.stderr


def test_warn_dry_run_on_the_command_line(engine: Engine) -> None:
    from pathlib import Path

    cap = Path(__file__).parent / "fixtures" / "cap" / "typhoon_alert.xml"
    with engine.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM warning")).scalar_one()
    result = run_cli("warn", str(cap), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("(dry run): would reach ")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM warning")).scalar_one() == before
    refused = run_cli("warn", str(cap.with_name("bad_billion_laughs.xml")))
    assert refused.returncode == 1 and "entity" in refused.stderr
    assert "Traceback" not in refused.stderr
