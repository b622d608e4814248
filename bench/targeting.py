"""Benchmark: a warning in -> every affected grid's alert and outbox rows committed (DESIGN.md:
<= 1 s for 2,000 grids; <= 0.25x the live point-in-polygon join).

    .venv/bin/python bench/targeting.py [--db gridgis_bench] [--grids 100,2000,20000]
                                        [--runs 5] [--runs-all 2] [--ref-runs 3]
                                        [--centre 113.5,22.58] [--no-geopandas] [--explain]

Runs on the city of ``bench/gen_city.py``. For each size in ``--grids`` a circle is drawn as
``bench/checklists.py`` draws it (widened or narrowed until it touches that many grids), and
``--runs`` times (``--runs-all`` for the whole city) a drawn warning over it is issued as
``gridgis.alerts.flows.issue`` does and committed: the warning, its areas, an alert per
grid, the outbox rows and the checklist rows (not the checklists' items: bench/checklists.py
times those). That is the figure timed ("alerts committed"), with each SQL statement timed
apart. Right after each commit, the bare targeting statement (``sql/target_grids.sql``, what
``targeting.find_targets`` runs) is run under EXPLAIN (ANALYZE, BUFFERS) over the committed
warning (its "Execution Time" is reported) and once plainly, timed from here. Then the
warning is deleted as bench/checklists.py deletes it (vacuumed, analysed).

References on the same data, in the same run, after one untimed warm-up each:

* live join: what targeting would cost without the kept membership and totals, as the peer
  measured it (``../shared/bench-peer/sjoin_bench.py``): the grids touching the circle, their
  buildings by point in polygon straight from ``building`` (GiST), and the residents and
  vulnerable residents of those buildings from ``resident``; the same counts targeting
  reads from ``grid_total``. Also the buildings-only join (the peer's buildings carried
  their residents, so its query read no second table). Parallel workers off, the peer's
  faster setting.
* geopandas: the grids and the buildings (with their residents counted) are loaded once
  from PostGIS (load time reported apart), then for each circle the grids it touches are
  found with ``sjoin`` (grids only) and, as the peer did, the buildings are ``sjoin``-ed
  within those grids and counted per grid.

Prints a table with the ratios and writes ``bench/results/targeting.json`` (median and p95 of
every figure, the machine, the versions, the commit) and the plans of the bare statement,
``bench/results/explain-targeting-<grids>.txt``; with ``--explain``, the plans of the issue's
heavy statements too (run again over an uncommitted warning, rolled back),
``bench/results/explain-issue-<grids>.txt``.
"""

import argparse
import json
import re
import statistics
import time
from datetime import UTC, datetime
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
from checklists import (
    CITY_SQL,
    DELETE_SQL,
    StatementClock,
    _squash,
    draw_circle,
    incoming_for,
    vacuum,
)
from harness import RESULTS_DIR, machine, percentile, use_database
from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from gridgis.alerts import channels, checklists, flows, targeting
from gridgis.settings import get_settings

TARGET_S = 1.0  # for 2,000 grids
TARGET_RATIO = 0.25  # of the live join
TARGET_GRIDS = 2000
COUNTED_SQL = text("""
SELECT (SELECT count(*) FROM alert WHERE warning_id = :w) AS alerts,
       (SELECT count(*) FROM outbox o JOIN alert a ON a.id = o.alert_id
          WHERE a.warning_id = :w) AS outbox_rows,
       (SELECT count(*) FROM checklist c JOIN alert a ON a.id = c.alert_id
          WHERE a.warning_id = :w) AS checklists
""")
# The live equivalent of targeting's counts: grids touching the circle, their buildings by
# point in polygon, the residents of those buildings (grid_total's definitions).
LIVE_JOIN_SQL = text("""
WITH c AS (SELECT ST_GeomFromWKB(:wkb, 4326) AS g),
ag AS (SELECT g.id, g.boundary FROM grid g, c
       WHERE g.retired_at IS NULL AND ST_Intersects(g.boundary, c.g)),
pb AS (SELECT ag.id AS grid_id, b.id AS building_id, b.risk_flags <> '{}' AS risky
       FROM ag JOIN building b ON ST_Intersects(ag.boundary, b.location)
       WHERE b.retired_at IS NULL),
pr AS (SELECT r.building_id, count(*) AS residents,
              count(*) FILTER (WHERE r.vulnerabilities <> '{}') AS vulnerable
       FROM resident r JOIN pb ON pb.building_id = r.building_id
       WHERE r.moved_out_at IS NULL GROUP BY r.building_id)
SELECT ag.id AS grid_id, count(pb.building_id) AS buildings,
       count(pb.building_id) FILTER (WHERE pb.risky) AS risky_buildings,
       coalesce(sum(pr.residents), 0) AS residents,
       coalesce(sum(pr.vulnerable), 0) AS vulnerable
FROM ag LEFT JOIN pb ON pb.grid_id = ag.id LEFT JOIN pr ON pr.building_id = pb.building_id
GROUP BY ag.id
""")
LIVE_BUILDINGS_SQL = text("""
WITH c AS (SELECT ST_GeomFromWKB(:wkb, 4326) AS g),
ag AS (SELECT g.id, g.boundary FROM grid g, c
       WHERE g.retired_at IS NULL AND ST_Intersects(g.boundary, c.g))
SELECT ag.id AS grid_id, count(b.id) AS buildings,
       count(b.id) FILTER (WHERE b.risk_flags <> '{}') AS risky_buildings,
       0 AS residents, 0 AS vulnerable
FROM ag LEFT JOIN building b ON ST_Intersects(ag.boundary, b.location)
                            AND b.retired_at IS NULL
GROUP BY ag.id
""")
GRIDS_FRAME_SQL = "SELECT id, boundary FROM grid WHERE retired_at IS NULL"
BUILDINGS_FRAME_SQL = """
SELECT b.id, b.location, (b.risk_flags <> '{}') AS risky,
       coalesce(r.residents, 0) AS residents, coalesce(r.vulnerable, 0) AS vulnerable
FROM building b
LEFT JOIN (SELECT building_id, count(*) AS residents,
                  count(*) FILTER (WHERE vulnerabilities <> '{}') AS vulnerable
           FROM resident WHERE moved_out_at IS NULL GROUP BY building_id) r
       ON r.building_id = b.id
WHERE b.retired_at IS NULL
"""
EXECUTION_RE = re.compile(r"Execution Time: ([\d.]+) ms")
PLANNING_RE = re.compile(r"Planning Time: ([\d.]+) ms")


def name_statements(clock: StatementClock, engine: Engine) -> None:
    """Give the statements ``flows.issue`` runs readable names in ``clock``."""
    def compiled(sql: str) -> str:
        return _squash(str(text(sql).compile(dialect=engine.dialect)))

    target = targeting.target_sql()
    clock.names[compiled(target + "\nORDER BY e.gale_eta NULLS LAST, g.code")] = \
        "targets (find_targets: target_grids.sql)"
    clock.names[compiled(targeting.sql_file("queue_messages"))] = "outbox rows (queue_messages)"
    clock.names[compiled(targeting.SCHEDULE_ACKS_SQL)] = "acknowledgement clocks"
    clock.names[compiled(checklists.OPEN_SQL.text)] = "checklist rows (open_checklists)"


def statement_name(name: str) -> str:
    """Shorten the names ``StatementClock`` falls back on (the SQL's first characters)."""
    if "INSERT INTO alert" in name:
        return "alerts (create_alerts: INSERT ... target_grids.sql)"
    if "pg_notify" in name:
        return "feed NOTIFY"
    return name


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median": round(statistics.median(ordered), 4),
            "p95": round(percentile(ordered, 95), 4), "min": round(ordered[0], 4),
            "max": round(ordered[-1], 4), "n": len(ordered)}


def issue_once(engine: Engine, clock: StatementClock, circle: Any,
               explain: bool) -> dict[str, Any]:
    """Issue and commit one drawn warning over ``circle`` (timed); time the bare targeting
    statement over it; delete it. Return the times and counts."""
    incoming = incoming_for(circle, "area")
    clock.spent.clear()
    with Session(engine) as session:
        clock.phase, t0 = "issue", time.perf_counter()
        result = flows.issue(session, None, incoming)
        t1 = time.perf_counter()
        session.commit()
        t2 = time.perf_counter()
        clock.phase = None
    statements = {statement_name(k.removeprefix("issue: ")): round(v, 4)
                  for k, v in clock.spent.items()}
    with Session(engine) as session:
        warning_id = session.execute(text("SELECT id FROM warning WHERE identifier = :i"),
                                     {"i": incoming.identifier}).scalar_one()
        # fresh statistics (the tables were emptied and vacuumed before): else the counts and
        # the DELETEs below may be planned as nested loops over 80,000 rows
        session.execute(text("ANALYZE alert, outbox, checklist"))
        counted = dict(session.execute(COUNTED_SQL, {"w": warning_id}).mappings().one())
        params = {"warning_id": warning_id, "min_share": 0.0}
        plan = "\n".join(session.execute(text("EXPLAIN (ANALYZE, BUFFERS) "
                                              + targeting.target_sql()), params).scalars())
        t3 = time.perf_counter()
        rows = session.execute(text(targeting.target_sql()), params).all()
        t4 = time.perf_counter()
        for statement in DELETE_SQL:
            session.execute(statement, {"w": warning_id})
        session.commit()
    vacuum(engine)
    executed, planned = EXECUTION_RE.search(plan), PLANNING_RE.search(plan)
    return {"alerts_committed_s": t2 - t0, "issue_s": t1 - t0, "commit_s": t2 - t1,
            "bare_sql_execution_s": float(executed[1]) / 1000 if executed else float("nan"),
            "bare_sql_planning_s": float(planned[1]) / 1000 if planned else float("nan"),
            "bare_sql_wall_s": t4 - t3, "bare_sql_rows": len(rows),
            "grids": result.grids, "residents": result.residents,
            "vulnerable": result.vulnerable, **{k: int(v) for k, v in counted.items()},
            "statements_s": statements, **({"plan": plan} if explain else {})}


def explain_issue(engine: Engine, circle: Any) -> str:
    """Issue a warning over ``circle`` without committing, then run the heavy statements of
    the issue again under EXPLAIN (ANALYZE, BUFFERS): the targets, the outbox rows (as a
    second message per alert, same shape and count), the acknowledgement clocks and the
    checklist rows; roll it all back. Return the plans."""
    incoming = incoming_for(circle, "area")
    settings = get_settings()
    out = []
    with Session(engine) as session:
        flows.issue(session, None, incoming)
        warning_id, alert_ids = session.execute(text(
            "SELECT w.id, array_agg(a.id) FROM warning w JOIN alert a ON a.warning_id = w.id "
            "WHERE w.identifier = :i GROUP BY w.id"), {"i": incoming.identifier}).one()
        session.execute(text("UPDATE alert SET ack_due_at = NULL WHERE id = ANY(:a)"),
                        {"a": alert_ids})
        base = {"warning_id": warning_id, "alert_ids": alert_ids}
        shown = [("targets (find_targets)", targeting.target_sql(),
                  {"warning_id": warning_id, "min_share": 0.0}),
                 ("outbox rows (queue_messages, kind update: new keys, same rows)",
                  targeting.sql_file("queue_messages"),
                  {**base, "kind": "update", "routes": channels.team_routes(settings)}),
                 ("acknowledgement clocks", targeting.SCHEDULE_ACKS_SQL,
                  {**base, "windows": targeting.ack_windows(settings)}),
                 ("checklist rows (open_checklists, as an upsert over the rows made)",
                  checklists.OPEN_SQL.text,
                  {"alert_ids": alert_ids,
                   "margin_minutes": settings.checklist_margin_minutes})]
        for name, sql, params in shown:
            plan = session.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql), params).scalars()
            out.append(f"=== {name}\n" + "\n".join(plan) + "\n")
        session.rollback()
    return re.sub(r"'\{(\d+)((?:,\d+){20,})\}'",
                  lambda m: f"'{{{m[1]},... {m[2].count(',') + 1} ids}}'", "\n".join(out))


def live_join(conn: Connection, sql: Any, wkb: bytes, runs: int) -> dict[str, Any]:
    """Run a live join ``runs`` times after a warm-up; return its times and totals."""
    conn.execute(sql, {"wkb": wkb}).all()
    times: list[float] = []
    rows: list[Any] = []
    for _ in range(runs):
        t0 = time.perf_counter()
        rows = list(conn.execute(sql, {"wkb": wkb}).all())
        times.append(time.perf_counter() - t0)
    return {"s": percentiles(times), "grids": len(rows),
            "buildings": sum(r.buildings for r in rows),
            "residents": sum(r.residents for r in rows),
            "vulnerable": sum(r.vulnerable for r in rows)}


def load_frames(engine: Engine) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, dict[str, float]]:
    """Load the grids and the buildings (residents counted) from PostGIS; build their
    spatial indexes; return both and the seconds each step took."""
    took: dict[str, float] = {}
    with engine.connect() as conn:
        t0 = time.perf_counter()
        grids = gpd.read_postgis(text(GRIDS_FRAME_SQL), conn, geom_col="boundary")
        t1 = time.perf_counter()
        buildings = gpd.read_postgis(text(BUILDINGS_FRAME_SQL), conn, geom_col="location")
        t2 = time.perf_counter()
    _ = grids.sindex, buildings.sindex
    t3 = time.perf_counter()
    took.update(grids_load_s=t1 - t0, buildings_load_s=t2 - t1, sindex_s=t3 - t2)
    return grids, buildings, took


def sjoin_grids(grids: gpd.GeoDataFrame, circle: Any) -> pd.DataFrame:
    """The grids the circle touches (ids only): ``sjoin`` against a one-row frame."""
    frame = gpd.GeoDataFrame({"circle": [1]}, geometry=[circle], crs=grids.crs)
    return gpd.sjoin(grids, frame, how="inner", predicate="intersects")[["id"]]


def sjoin_counts(grids: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame,
                 circle: Any) -> pd.DataFrame:
    """As the peer did: the grids the circle touches (index query), the buildings within
    them (``sjoin``), counted per grid."""
    shapely.prepare(circle)
    hit = grids.iloc[grids.sindex.query(circle, predicate="intersects")]
    joined = gpd.sjoin(buildings, hit, how="inner", predicate="within")
    counts = joined.groupby("id_right").agg(
        buildings=("id_left", "size"), risky_buildings=("risky", "sum"),
        residents=("residents", "sum"), vulnerable=("vulnerable", "sum"))
    return hit[["id"]].merge(counts, left_on="id", right_index=True, how="left").fillna(0)


def timed(fn: Any, runs: int) -> tuple[list[float], Any]:
    fn()  # warm-up
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


def print_table(sizes: list[dict[str, Any]], frames_took: dict[str, float] | None) -> None:
    head = ("grids", "runs", "alerts committed", "bare SQL exec", "live join",
            "live join bldg only", "gpd sjoin grids", "gpd sjoin +bldg", "ratio live",
            "ratio bldg-only", "ratio gpd")
    print("\n| " + " | ".join(head) + " |\n|" + "---|" * len(head))

    def ms(figure: dict[str, Any] | None) -> str:
        if not figure:
            return "-"
        return f"{figure['median'] * 1000:,.0f} / {figure['p95'] * 1000:,.0f}"

    for size in sizes:
        refs = size["references"]
        r = size["ratios_median"]
        cells = (f"{size['grids_touched']:,}", str(size["runs"]),
                 ms(size["figures_s"]["alerts_committed_s"]),
                 ms(size["figures_s"]["bare_sql_execution_s"]),
                 ms(refs["live_join"]["s"]), ms(refs["live_join_buildings_only"]["s"]),
                 ms(refs.get("geopandas_sjoin_grids", {}).get("s")),
                 ms(refs.get("geopandas_sjoin_buildings", {}).get("s")),
                 f"{r['to_live_join']:.2f}", f"{r['to_live_join_buildings_only']:.2f}",
                 f"{r.get('to_geopandas_sjoin_buildings', float('nan')):.2f}")
        print("| " + " | ".join(cells) + " |")
    print("(ms, median / p95; ratio = alerts committed median / reference median)")
    for size in sizes:
        r = size["bare_sql_ratios_median"]
        print(f"bare targeting SQL at {size['grids_touched']:,} grids: "
              + ", ".join(f"{v:.2f}x {k.removeprefix('to_')}" for k, v in r.items()))
    if frames_took:
        print("geopandas one-off load: " + ", ".join(f"{k} {v:.1f} s"
                                                     for k, v in frames_took.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="gridgis_bench")
    parser.add_argument("--grids", default="100,2000,20000", help="sizes, comma-separated")
    parser.add_argument("--centre", default="113.5,22.58", help="lon,lat of the circles")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--runs-all", type=int, default=2, help="runs for 10,000+ grids")
    parser.add_argument("--ref-runs", type=int, default=3, help="runs of each reference "
                        "(at most --runs-all for 10,000+ grids)")
    parser.add_argument("--no-geopandas", action="store_true")
    parser.add_argument("--explain", action="store_true", help="also EXPLAIN (ANALYZE, "
                        "BUFFERS) the issue's heavy statements (rolled back), per size")
    args = parser.parse_args()
    _, engine = use_database(args.db)
    lon, lat = (float(v) for v in args.centre.split(","))
    wanted = [int(v) for v in args.grids.split(",")]
    with Session(engine) as session:
        city = dict(session.execute(CITY_SQL).mappings().one())
        circles = {n: draw_circle(session, lon, lat, n) for n in wanted}
    print(f"city: {city['grids']:,} grids, {city['buildings']:,} buildings, "
          f"{city['residents']:,} residents; {city['other_active_backends']} other active "
          f"backends", flush=True)
    clock = StatementClock(engine)
    name_statements(clock, engine)
    vacuum(engine)
    sizes: list[dict[str, Any]] = []
    for n in wanted:
        circle, metres, touched = circles[n]
        runs = args.runs if n < 10_000 else args.runs_all
        print(f"\n{n:,} grids: r = {metres / 1000:.2f} km, touching {touched:,}; "
              f"{runs} runs", flush=True)
        done = []
        for k in range(runs):
            run = issue_once(engine, clock, circle, explain=k == runs - 1)
            done.append(run)
            print(f"  run {k + 1}: alerts committed {run['alerts_committed_s'] * 1000:,.0f} ms "
                  f"(issue {run['issue_s'] * 1000:,.0f}, commit {run['commit_s'] * 1000:,.0f})"
                  f"; bare targeting SQL {run['bare_sql_execution_s'] * 1000:,.0f} ms "
                  f"(EXPLAIN ANALYZE), {run['bare_sql_wall_s'] * 1000:,.0f} ms plain; "
                  f"{run['alerts']:,} alerts, {run['outbox_rows']:,} outbox rows", flush=True)
        plan = done[-1].pop("plan")
        RESULTS_DIR.mkdir(exist_ok=True)
        (RESULTS_DIR / f"explain-targeting-{n}.txt").write_text(
            f"-- bare targeting statement (gridgis/alerts/sql/target_grids.sql), a drawn "
            f"warning touching {touched} grids\n{plan}\n")
        if args.explain:
            (RESULTS_DIR / f"explain-issue-{n}.txt").write_text(explain_issue(engine, circle))
            vacuum(engine)
        figure_keys = [k for k, v in done[0].items() if k.endswith("_s") and
                       isinstance(v, float)]
        names = sorted({name for run in done for name in run["statements_s"]})
        size: dict[str, Any] = {
            "grids": n, "grids_touched": touched, "radius_m": round(metres), "runs": runs,
            "figures_s": {k: percentiles([r[k] for r in done]) for k in figure_keys},
            "statements_s": {name: percentiles([r["statements_s"].get(name, 0.0)
                                                for r in done]) for name in names},
            "counts": {k: v for k, v in done[-1].items() if isinstance(v, int)},
            "runs_detail": done}
        ref_runs = args.ref_runs if n < 10_000 else min(args.ref_runs, args.runs_all)
        wkb = shapely.to_wkb(circle)
        with engine.connect() as conn:
            conn.execute(text("SET max_parallel_workers_per_gather = 0"))
            size["references"] = {
                "live_join": live_join(conn, LIVE_JOIN_SQL, wkb, ref_runs),
                "live_join_buildings_only": live_join(conn, LIVE_BUILDINGS_SQL, wkb, ref_runs)}
            conn.rollback()
        for key in ("live_join", "live_join_buildings_only"):
            ref = size["references"][key]
            print(f"  {key}: {ref['s']['median'] * 1000:,.0f} ms median of {ref_runs} "
                  f"({ref['grids']:,} grids, {ref['buildings']:,} buildings, "
                  f"{ref['residents']:,} residents)", flush=True)
        size["ref_runs"] = ref_runs
        sizes.append(size)
    frames_took = None
    if not args.no_geopandas:
        print("\ngeopandas: loading the grids and buildings from PostGIS ...", flush=True)
        grids, buildings, frames_took = load_frames(engine)
        print("  " + ", ".join(f"{k} {v:.1f} s" for k, v in frames_took.items()), flush=True)
        for size in sizes:
            circle = circles[size["grids"]][0]
            times, hit = timed(lambda c=circle: sjoin_grids(grids, c), size["ref_runs"])
            size["references"]["geopandas_sjoin_grids"] = {"s": percentiles(times),
                                                           "grids": len(hit)}
            times, out = timed(lambda c=circle: sjoin_counts(grids, buildings, c),
                               size["ref_runs"])
            size["references"]["geopandas_sjoin_buildings"] = {
                "s": percentiles(times), "grids": len(out),
                "buildings": int(out.buildings.sum()), "residents": int(out.residents.sum()),
                "vulnerable": int(out.vulnerable.sum())}
            print(f"  {size['grids']:,} grids: sjoin grids "
                  f"{size['references']['geopandas_sjoin_grids']['s']['median'] * 1000:,.0f} "
                  f"ms, with buildings "
                  f"{size['references']['geopandas_sjoin_buildings']['s']['median'] * 1000:,.0f}"
                  f" ms", flush=True)
        del grids, buildings
    for size in sizes:
        ours = size["figures_s"]["alerts_committed_s"]["median"]
        bare = size["figures_s"]["bare_sql_execution_s"]["median"]
        size["ratios_median"] = {f"to_{k}": ratio(ours, ref["s"]["median"])
                                 for k, ref in size["references"].items()}
        size["bare_sql_ratios_median"] = {f"to_{k}": ratio(bare, ref["s"]["median"])
                                          for k, ref in size["references"].items()}
    print_table(sizes, frames_took)
    verdicts = {}
    for size in sizes:
        if abs(size["grids"] - TARGET_GRIDS) <= TARGET_GRIDS // 10:
            ours = size["figures_s"]["alerts_committed_s"]
            verdicts = {
                "alerts_committed_p95_le_1s": ours["p95"] <= TARGET_S,
                "alerts_committed_median_le_1s": ours["median"] <= TARGET_S,
                "ratio_to_live_join_le_0.25": size["ratios_median"]["to_live_join"]
                <= TARGET_RATIO,
                "ratio_to_live_join_buildings_only_le_0.25":
                    size["ratios_median"]["to_live_join_buildings_only"] <= TARGET_RATIO}
            met = {k: "met" if v else "MISSED" for k, v in verdicts.items()}
            print(f"\ntarget at {size['grids_touched']:,} grids: alerts committed median "
                  f"{ours['median']:.3f} s / p95 {ours['p95']:.3f} s (<= {TARGET_S:g} s: "
                  f"{met['alerts_committed_p95_le_1s']}); "
                  f"{size['ratios_median']['to_live_join']:.2f}x the live join, "
                  f"{size['ratios_median']['to_live_join_buildings_only']:.2f}x the "
                  f"buildings-only join (<= {TARGET_RATIO}x: "
                  f"{met['ratio_to_live_join_le_0.25']} / "
                  f"{met['ratio_to_live_join_buildings_only_le_0.25']})")
    for size in sizes:
        print(f"\nwhere the {size['grids_touched']:,}-grid issue goes (median ms):")
        for name, figure in sorted(size["statements_s"].items(),
                                   key=lambda item: -item[1]["median"]):
            print(f"  {figure['median'] * 1000:8.1f}  {name}")
    result = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "db": args.db,
              "machine": machine(engine),
              "city": {k: v if isinstance(v, int) else str(v) for k, v in city.items()},
              "centre": [lon, lat], "targets": {"alerts_committed_s": TARGET_S,
                                                "ratio_to_live_join": TARGET_RATIO,
                                                "grids": TARGET_GRIDS},
              "verdicts": verdicts, "geopandas_load_s": frames_took, "sizes": sizes}
    (RESULTS_DIR / "targeting.json").write_text(json.dumps(result, indent=1,
                                                           ensure_ascii=False, default=str))
    print(f"\nwritten: {RESULTS_DIR / 'targeting.json'}")
    engine.dispose()


if __name__ == "__main__":
    main()
