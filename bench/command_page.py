"""Benchmark: the command page's time to interactive in headless Chromium (DESIGN.md: the
nansha territory, 1,292 grids, within 2 s; the city stays usable on vector tiles).

    .venv/bin/python bench/command_page.py --db gridgis_bench_nansha --load nansha
    .venv/bin/python bench/command_page.py --db gridgis_bench            # the generated city

A ``gridgis serve`` on a loopback port serves the database; Chromium (Debian's ``chromium``)
logs in once, then opens ``/map/command`` ``--runs`` times. "Interactive" is the moment the
page has drawn every grid (GeoJSON mode) or the grids of the first view (vector-tile mode,
above ``GRIDGIS_MAP_VECTOR_TILES_ABOVE`` grids) and applied the live state, counted from the
start of the navigation. With ``--load SCALE`` a missing database is created and the demo
territory loaded into it first.
"""

import argparse
import json
import os
import shutil
import statistics
import time
from datetime import UTC, datetime

from harness import RESULTS_DIR, bench_url, prepare_database, serve, stop
from playwright.sync_api import sync_playwright
from sqlalchemy import text
from sqlalchemy.orm import Session

from gridgis import auth, db
from gridgis.settings import get_settings

TARGET_S = 2.0
USER = "bench_wall_screen"
PASSWORD = "correct horse battery"  # a bench user on a bench database only
READY_JS = """() => {
  const c = window.gridgis?.command;
  if (!c || c.refreshes < 1) return false;
  const grids = window.gridgis.layers.grids;
  return grids.setFeatureStyle ? c.props.size > 0
    : Object.keys(grids._features || {}).length === %d;
}"""


def prepare(url: str, load: str | None) -> int:
    """Make sure the database is migrated (loading ``load`` when it has no grids) and holds
    the bench user; return its grid count."""
    prepare_database(url, load)
    engine = db.make_engine(url)
    try:
        with Session(engine) as session:
            if not session.scalar(text("SELECT 1 FROM app_user WHERE username = :u"),
                                  {"u": USER}):
                auth.add_user(session, USER, "command", PASSWORD, [])
                session.commit()
            return int(session.scalar(text(
                "SELECT count(*) FROM grid WHERE retired_at IS NULL")) or 0)
    finally:
        engine.dispose()


def measure(base: str, grids: int, runs: int) -> list[float]:
    chromium = shutil.which("chromium")
    if not chromium:
        raise SystemExit("Debian's chromium is needed (make browser)")
    times = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1600, "height": 900})
        page.goto(f"{base}/login?next=/health")
        page.fill("input[name=username]", USER)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/health")
        for _ in range(runs):
            started = time.perf_counter()
            page.goto(f"{base}/map/command")
            page.wait_for_function(READY_JS % grids, timeout=120_000, polling=50)
            times.append(time.perf_counter() - started)
        browser.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="gridgis_bench_nansha")
    parser.add_argument("--load", choices=("hengqin", "nansha"), default=None)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    url = bench_url(args.db)
    grids = prepare(url, args.load)
    process, base = serve(url)
    try:
        times = measure(base, grids, args.runs)
    finally:
        stop(process)
    ordered = sorted(times)
    result = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "db": args.db,
              "grids": grids, "runs": [round(t, 3) for t in times],
              "median_s": round(statistics.median(times), 3),
              "p95_s": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
                             3),
              "mode": "vector tiles" if grids > get_settings().map_vector_tiles_above
              else "GeoJSON", "target_s": TARGET_S, "cpus": os.cpu_count()}
    print(json.dumps(result, indent=1))
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"command-page-{args.db}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
