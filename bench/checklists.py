"""Benchmark: a warning over ~2,000 grids, its checklists timed (DESIGN.md: <= 5 s).

    .venv/bin/python bench/checklists.py [--db gridgis_bench] [--grids 2000] [--tier area]
                                         [--runs 5] [--explain]

Runs on the city of ``bench/gen_city.py``. A circle drawn around ``--centre`` (by default
touching the coast, south of the city centre) is widened or narrowed until it touches
``--grids`` grids; then, ``--runs`` times, a warning over it is issued the way the API does
(``gridgis.alerts.flows.issue_committed``): the warning, alerts, outbox rows and checklist
rows in one transaction, committed (timed: "alerts committed"), then the checklists' items
and shelters, committed (timed: "checklists made", the target), with every SQL statement
timed apart; the counts of what it made are read, and it is deleted again (so every run
starts from the same tables, vacuumed and analysed). ``--tier`` gives the circle a typhoon
tier instead of a plain drawn area (``hurricane`` moves the most people). ``--explain``
issues it once more, runs the item statements under EXPLAIN (ANALYZE, BUFFERS), rolls back,
and writes the plans to ``bench/results/``.
"""

import argparse
import dataclasses
import json
import os
import re
import statistics
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import shapely
from harness import RESULTS_DIR, use_database
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

from gridgis import db
from gridgis.alerts import checklists, flows, intake, nearest

TARGET_S = 5.0
LEVELS = {"area": "orange", "gale": "yellow", "storm": "orange", "hurricane": "red"}
CIRCLE_SQL = text("""
SELECT ST_AsBinary(ST_Buffer(CAST(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS geography),
                             :metres, 'quad_segs=16')::geometry)
""")
TOUCHED_SQL = text("SELECT count(*) FROM grid WHERE retired_at IS NULL "
                   "AND ST_Intersects(boundary, ST_GeomFromWKB(:wkb, 4326))")
CITY_SQL = text("""
SELECT (SELECT count(*) FROM grid) AS grids, (SELECT count(*) FROM building) AS buildings,
       (SELECT count(*) FROM resident) AS residents, (SELECT count(*) FROM shelter) AS shelters,
       (SELECT count(*) FROM station) AS stations, version() AS server,
       postgis_lib_version() AS postgis, current_setting('shared_buffers') AS shared_buffers,
       current_setting('work_mem') AS work_mem,
       (SELECT count(*) FROM pg_stat_activity WHERE state = 'active'
          AND pid <> pg_backend_pid()) AS other_active_backends
""")
MADE_SQL = text("""
WITH c AS (SELECT c.* FROM checklist c JOIN alert a ON a.id = c.alert_id
           WHERE a.warning_id = :w),
     i AS (SELECT i.* FROM checklist_item i JOIN c ON c.id = i.checklist_id)
SELECT (SELECT count(*) FROM alert WHERE warning_id = :w) AS alerts,
       (SELECT count(*) FROM outbox o JOIN alert a ON a.id = o.alert_id
          WHERE a.warning_id = :w) AS outbox_rows,
       (SELECT count(*) FROM c) AS checklists,
       (SELECT count(*) FROM i) AS items,
       (SELECT count(*) FROM i WHERE kind = 'contact') AS contact_items,
       (SELECT count(*) FROM i WHERE kind = 'transfer') AS households_to_transfer,
       (SELECT coalesce(sum(people), 0) FROM i WHERE kind = 'transfer') AS people_to_move,
       (SELECT count(*) FROM i WHERE kind = 'transfer' AND shelter_id IS NOT NULL)
           AS households_placed,
       (SELECT count(DISTINCT shelter_id) FROM i WHERE kind = 'transfer'
          AND shelter_id IS NOT NULL) AS shelters_allocated,
       (SELECT round(avg(distance_m)) FROM i WHERE kind = 'transfer') AS mean_distance_m,
       (SELECT coalesce(sum(unplaced), 0) FROM c) AS unplaced_people,
       (SELECT count(*) FROM c WHERE unplaced > 0) AS checklists_with_unplaced,
       (SELECT count(*) FROM i WHERE kind = 'inspect') AS inspect_items,
       (SELECT count(*) FROM i WHERE kind = 'open_shelter') AS open_shelter_items,
       (SELECT count(*) FROM i WHERE kind = 'staff_station') AS staff_station_items
""")
DELETE_SQL = [text("DELETE FROM outbox WHERE alert_id IN "
                   "(SELECT id FROM alert WHERE warning_id = :w)"),
              text("DELETE FROM alert WHERE warning_id = :w"),  # checklists and items cascade
              text("DELETE FROM warning WHERE id = :w")]  # areas cascade
TOUCHED_TABLES = ("warning", "warning_area", "alert", "outbox", "checklist", "checklist_item")
# The statements sent while the shelters are allocated (psycopg's pipeline: not seen by the
# clock below, so their time shows in "python", which they overlap), and the contact items.
CHECKLIST_STEPS = ("inspect items", "open_shelter items", "staff_station items")


class StatementClock:
    """Times every statement the engine runs, by name, while a phase is set."""

    def __init__(self, engine: Engine) -> None:
        self.names: dict[str, str] = {}
        self.phase: str | None = None
        self.spent: dict[str, float] = defaultdict(float)
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)
        compile_text = lambda sql: _squash(str(text(sql).compile(dialect=engine.dialect)))  # noqa: E731
        for name, sql in zip(CHECKLIST_STEPS, checklists.checklist_statements(), strict=True):
            self.names[compile_text(sql)] = name
        self.names[compile_text(checklists.contact_statement())] = "contact items"
        for name, clause in (("checklist rows (alerts' transaction)", checklists.OPEN_SQL),
                             ("checklists to make (locked)", checklists.TO_MAKE_SQL),
                             ("checklists marked made", checklists.MADE_SQL),
                             ("transfer households", checklists.HOUSEHOLDS_SQL),
                             ("shelters (for the k-d tree)", nearest.SHELTERS_SQL),
                             ("buildings' locations (for the k-d tree)", nearest.BUILDINGS_SQL),
                             ("shelter room (locked)", checklists.ROOM_SQL),
                             ("transfer items (with their shelters)", checklists.TRANSFERS_SQL),
                             ("assign shelters (items made before)", checklists.ASSIGN_SQL),
                             ("open assigned shelters", checklists.OPEN_ASSIGNED_SQL),
                             ("unplaced", checklists.UNPLACED_SQL)):
            self.names[compile_text(clause.text)] = name

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info["bench_t0"] = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self.phase is None:
            return
        seconds = time.perf_counter() - conn.info.pop("bench_t0", time.perf_counter())
        squashed = _squash(statement)
        name = self.names.get(squashed) or squashed[:60]
        self.spent[f"{self.phase}: {name}"] += seconds


def _squash(sql: str) -> str:
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return re.sub(r"\s+", " ", " ".join(lines)).strip()


def draw_circle(session: Session, lon: float, lat: float, grids: int) -> tuple[Any, float, int]:
    """Return a circle (shapely, EPSG:4326) around lon/lat touching about ``grids`` grids,
    its radius in metres (on the spheroid) and the grids it touches."""
    metres, touched, wkb = 7000.0, 0, b""
    for _ in range(12):
        wkb = bytes(session.execute(CIRCLE_SQL, {"lon": lon, "lat": lat,
                                                 "metres": metres}).scalar_one())
        touched = session.execute(TOUCHED_SQL, {"wkb": wkb}).scalar_one()
        if touched == 0:
            raise SystemExit(f"a {metres:.0f} m circle at {lon}, {lat} touches no grid: "
                             f"is the city generated (bench/gen_city.py)?")
        if abs(touched - grids) <= max(2, grids // 500):
            break
        metres *= (grids / touched) ** 0.5
    return shapely.from_wkb(wkb), metres, touched


def incoming_for(circle: Any, tier: str) -> intake.Incoming:
    """Return a fresh warning (new identifier) over ``circle`` with areas of ``tier``."""
    warning = intake.from_drawn(circle, LEVELS[tier], "台风", f"bench: {tier} circle",
                                "exercise", "gridgis:bench")
    if tier == "area":
        return warning
    area = intake.HazardArea(tier, warning.areas[0].geometry, f"bench {tier} circle")
    return dataclasses.replace(warning, areas=(area,))


def vacuum(engine: Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"VACUUM (ANALYZE) {', '.join(TOUCHED_TABLES)}"))


def run_once(engine: Engine, clock: StatementClock, circle: Any, tier: str) -> dict[str, Any]:
    """Issue and commit one warning (its alerts, messages and checklist rows), then make its
    checklists' items and commit them, as ``flows.issue_committed`` does; count what was
    made, and delete it. Return the times and counts."""
    original_transfers, original_allocate = checklists.make_transfers, checklists.allocate_shelters
    took: dict[str, float] = {}

    def timed_transfers(*args: Any, **kwargs: Any) -> int:
        t0 = time.perf_counter()
        placed = original_transfers(*args, **kwargs)
        took["make_transfers_s"] = time.perf_counter() - t0
        return placed

    def timed_allocate(*args: Any) -> dict[int, tuple[int, float]]:
        t0 = time.perf_counter()
        given = original_allocate(*args)
        took["allocate_shelters_s"] = time.perf_counter() - t0
        return given

    checklists.make_transfers, checklists.allocate_shelters = timed_transfers, timed_allocate
    clock.spent.clear()
    incoming = incoming_for(circle, tier)
    try:
        with Session(engine) as session:
            clock.phase, t0 = "issue", time.perf_counter()
            result = flows.issue(session, None, incoming)
            session.commit()
            t1 = time.perf_counter()
            clock.phase = "checklists"
            checklists.make_items(session, incoming.identifier)
            session.commit()
            t2 = time.perf_counter()
    finally:
        checklists.make_transfers = original_transfers
        checklists.allocate_shelters = original_allocate
        clock.phase = None
    statements = dict(clock.spent)
    with Session(engine) as session:
        warning_id = session.execute(text("SELECT id FROM warning WHERE identifier = :i"),
                                     {"i": incoming.identifier}).scalar_one()
        made = dict(session.execute(MADE_SQL, {"w": warning_id}).mappings().one())
        for statement in DELETE_SQL:
            session.execute(statement, {"w": warning_id})
        session.commit()
    vacuum(engine)
    checklist_sql = sum(s for name, s in statements.items() if name.startswith("checklists:"))
    return {"alerts_committed_s": t1 - t0, "checklists_made_s": t2 - t1, "total_s": t2 - t0,
            **took, "checklist_python_s": t2 - t1 - checklist_sql,
            "grids": result.grids, "residents": result.residents,
            "vulnerable": result.vulnerable, **{k: int(v or 0) for k, v in made.items()},
            "statements_s": statements}


def explain(engine: Engine, circle: Any, tier: str) -> str:
    """Return EXPLAIN (ANALYZE, BUFFERS) of the checklist statements, rolled back."""
    incoming = incoming_for(circle, tier)
    out: list[str] = []
    with Session(engine) as session:
        flows.issue(session, None, incoming)
        alert_ids = list(session.scalars(text(
            "SELECT a.id FROM alert a JOIN warning w ON w.id = a.warning_id "
            "WHERE w.identifier = :i"), {"i": incoming.identifier}))
        rules = json.dumps(checklists.load_rules())
        params: dict[str, Any] = {"alert_ids": alert_ids, "rules": rules}

        def explained(name: str, sql: str, values: dict[str, Any]) -> None:
            t0 = time.perf_counter()
            plan = session.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql), values).scalars()
            out.append(f"=== {name} ({time.perf_counter() - t0:.2f} s with EXPLAIN "
                       f"ANALYZE)\n" + "\n".join(plan) + "\n")

        explained("transfer households", checklists.HOUSEHOLDS_SQL.text, params)
        households = checklists.read_households(session, alert_ids, rules)
        session.execute(checklists.ALLOCATION_LOCK_SQL)
        waiting = checklists.households_waiting(households)
        explained("shelter room (locked)", checklists.ROOM_SQL.text, {})
        room = dict(session.execute(checklists.ROOM_SQL).all())
        buildings = sorted({p[0] for _, _, p in waiting})
        explained("buildings' locations (for the k-d tree)", nearest.BUILDINGS_SQL.text,
                  {"ids": db.array_literal(buildings)})
        for name, sql in zip(CHECKLIST_STEPS, checklists.checklist_statements(), strict=True):
            explained(name, sql, params)
        given = checklists.allocate_shelters(
            waiting, nearest.Shelters.load(session),
            nearest.Places.of_buildings(session, buildings), room)
        new, _ = checklists.transfer_params(households, given)
        explained("transfer items (with their shelters)", checklists.TRANSFERS_SQL.text, new)
        explained("contact items", checklists.contact_statement(), params)
        explained("open assigned shelters", checklists.OPEN_ASSIGNED_SQL.text, params)
        explained("unplaced", checklists.UNPLACED_SQL.text, params)
        session.rollback()
    # id lists of thousands of alerts make a plan unreadable: keep the first and the count
    return re.sub(r"'\{(\d+)((?:,\d+){20,})\}'",
                  lambda m: f"'{{{m[1]},... {m[2].count(',') + 1} ids}}'", "\n".join(out))


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Return median and max of every time, and the counts of the last run."""
    times = [k for k, v in runs[0].items() if k.endswith("_s") and isinstance(v, float)]
    names = sorted({name for run in runs for name in run["statements_s"]})
    return {
        "median_s": {k: round(statistics.median(r[k] for r in runs), 3) for k in times},
        "max_s": {k: round(max(r[k] for r in runs), 3) for k in times},
        "statements_median_s": {n: round(statistics.median(r["statements_s"].get(n, 0.0)
                                                           for r in runs), 3) for n in names},
        "counts": {k: v for k, v in runs[-1].items() if isinstance(v, int)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="gridgis_bench")
    parser.add_argument("--grids", type=int, default=2000, help="grids the circle touches")
    parser.add_argument("--centre", default="113.5,22.58", help="lon,lat of the circle")
    parser.add_argument("--tier", choices=tuple(LEVELS), default="area")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()
    _, engine = use_database(args.db)
    lon, lat = (float(v) for v in args.centre.split(","))
    with Session(engine) as session:
        city = dict(session.execute(CITY_SQL).mappings().one())
        circle, metres, touched = draw_circle(session, lon, lat, args.grids)
    print(f"city: {city['grids']:,} grids, {city['buildings']:,} buildings, "
          f"{city['residents']:,} residents, {city['shelters']:,} shelters; "
          f"{city['other_active_backends']} other active backends")
    print(f"circle: r = {metres / 1000:.2f} km at {lon}, {lat}, touching {touched:,} grids; "
          f"tier {args.tier}")
    clock = StatementClock(engine)
    vacuum(engine)
    runs = []
    for n in range(1, args.runs + 1):
        run = run_once(engine, clock, circle, args.tier)
        runs.append(run)
        print(f"run {n}: alerts committed {run['alerts_committed_s']:.2f} s, checklists made "
              f"{run['checklists_made_s']:.2f} s (allocate_shelters "
              f"{run['allocate_shelters_s']:.2f} s); {run['checklists']:,} checklists, "
              f"{run['items']:,} items", flush=True)
    result = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "db": args.db,
              "tier": args.tier, "centre": [lon, lat], "radius_m": round(metres),
              "city": {k: v if isinstance(v, int) else str(v) for k, v in city.items()},
              "cpus": os.cpu_count(), "target_s": TARGET_S, **summary(runs), "runs": runs}
    print(json.dumps({k: result[k] for k in ("median_s", "max_s", "statements_median_s",
                                             "counts")}, indent=1, ensure_ascii=False))
    worst = result["max_s"]["checklists_made_s"]
    print(f"alerts committed: median {result['median_s']['alerts_committed_s']:.2f} s; "
          f"checklists made: median {result['median_s']['checklists_made_s']:.2f} s, max "
          f"{worst:.2f} s; target <= {TARGET_S:g} s: {'met' if worst <= TARGET_S else 'MISSED'}")
    RESULTS_DIR.mkdir(exist_ok=True)
    stem = f"checklists-{args.tier}-{args.grids}"
    (RESULTS_DIR / f"{stem}.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))
    if args.explain:
        plans = explain(engine, circle, args.tier)
        (RESULTS_DIR / f"explain-{stem}.txt").write_text(plans)
        print(f"plans: {RESULTS_DIR / f'explain-{stem}.txt'}")
    engine.dispose()


if __name__ == "__main__":
    main()
