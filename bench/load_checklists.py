"""Load test: 200 grid heads working their checklists at once while the command page's data
refreshes; no change lost, no error, latency recorded (issue 9).

    .venv/bin/python bench/load_checklists.py [--db gridgis_bench_load] [--heads 200]
                                              [--seconds 60] [--command 5] [--think 10]

On its own database (created, migrated and given the nansha demo when missing), a warning is
drawn over about 1.2 x ``--heads`` grids (bench/checklists.py: a circle, the ``area`` rules)
and its checklists made; the ``--heads`` grids with the most items each get a grid head.
A ``gridgis serve`` on a loopback port takes the traffic; every client logs in through
``POST /api/auth/token``. For ``--seconds`` each head (all starting within ``--think``
seconds), on its own connection, reads its grid's open checklist and its items as the phone
page does, picks an unfinished item and changes it one step (If-Match: the version read),
then waits a random 0..2 x ``--think`` seconds (10: 200 heads make some 20 changes a second,
far more than a typhoon's evacuation asks; ``--think 1`` for a stress run). A share
``--double`` of the changes are sent twice at once with the same version (a double tap), of
which one must be refused (412). ``--command`` command-centre clients keep the live feed
open and reload what the command page loads, at its intervals (``/api/map/state`` every
``--refresh`` seconds).

Afterwards the database is read: every change a client was told was saved must be there
(each version answered once, the item's version and its ``checklist_event`` rows counting
the changes saved, plus at most those left without an answer or with a 5xx; its state as the
last answer said), and each shelter's occupancy must have moved by the head-counts checked
in. The warning is then deleted and the occupancies put back. Prints a table, writes
``bench/results/load-checklists-<heads>.json`` and exits 1 on a lost or doubled change, a
5xx, an unexpected status, a connection error or a restart of the database server.
"""

import argparse
import asyncio
import json
import random
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from checklists import DELETE_SQL, draw_circle, incoming_for
from harness import RESULTS_DIR, bench_url, machine, percentile, prepare_database, serve, stop
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from gridgis import auth, db
from gridgis.alerts import flows

PASSWORD = "correct horse battery"  # bench users on a bench database only
SENDER = "gridgis:bench"  # incoming_for's sender: every warning in this database is ours
TIMEOUT = httpx.Timeout(60.0)
OPEN = ("pending", "in_progress")
# What the command page loads and how often it reloads it (s): gridgis/maps/command.py and
# static/command.js, gridgis.js. The map state's interval is --refresh.
COMMAND_PAGE = {"map state": ("/api/map/state", 0.0),
                "dead letters": ("/api/dead-letters?limit=500", 30.0),
                "stations": ("/api/stations?limit=5000", 60.0),
                "shelters": ("/api/shelters?limit=5000", 60.0),
                "grids": ("/api/grids?limit=5000", 300.0),
                "communities": ("/api/admin-units?level=community&limit=5000", 300.0),
                "streets": ("/api/admin-units?level=street&limit=5000", 300.0)}
CENTRE_SQL = text("SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(ST_Collect(ST_Centroid("
                  "boundary))) AS c FROM grid WHERE retired_at IS NULL) AS t")
BUSIEST_SQL = text("""
SELECT g.code, c.id FROM checklist c JOIN grid g ON g.id = c.grid_id
JOIN alert a ON a.id = c.alert_id JOIN warning w ON w.id = a.warning_id
JOIN checklist_item i ON i.checklist_id = c.id
WHERE w.identifier = :w GROUP BY g.code, c.id ORDER BY count(*) DESC, g.code LIMIT :n""")
ITEMS_SQL = text("""
SELECT i.id, i.version, i.state, i.stage, i.head_count, i.shelter_id,
       (SELECT count(*) FROM checklist_event e WHERE e.item_id = i.id) AS events
FROM checklist_item i JOIN checklist c ON c.id = i.checklist_id
JOIN alert a ON a.id = c.alert_id JOIN warning w ON w.id = a.warning_id
WHERE w.identifier = :w""")
OCCUPANCY_SQL = text("SELECT id, occupancy FROM shelter")
STARTED_SQL = text("SELECT pg_postmaster_start_time()")
KINDS = ("log in", "read checklist", "read items", "change item", "feed (open)", *COMMAND_PAGE)


@dataclass
class Head:
    grid: str
    checklist: int
    token: str = ""
    changes: int = 0
    finished: bool = False  # nothing left to do on its checklist

    @property
    def username(self) -> str:
        return f"bench_head_{self.grid}"


@dataclass
class Tally:
    """Every request's latency and outcome by kind; the saved answers of item changes."""

    seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    outcomes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    saved: dict[int, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    unknown: Counter[int] = field(default_factory=Counter)  # changes with no answer or a 5xx
    doubles: Counter[str] = field(default_factory=Counter)
    feed_events: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)  # by kind and status or error
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    async def request(self, client: httpx.AsyncClient, kind: str, method: str, url: str,
                      **options: Any) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            answer = await client.request(method, url, **options)
        except httpx.HTTPError as error:
            self.outcomes[kind]["error"] += 1
            self.fail(f"{kind}: {type(error).__name__}", f"{method} {url}: {error}")
            return None
        self.seconds[kind].append(time.perf_counter() - started)
        outcome = outcome_of(answer.status_code)
        self.outcomes[kind][outcome] += 1
        if outcome in ("5xx", "other"):
            self.fail(f"{kind}: {answer.status_code}", f"{method} {url}: {answer.text[:300]}")
        return answer

    def fail(self, what: str, detail: str) -> None:
        """Count a failure; keep the first three of each sort, with the time (UTC)."""
        self.failures[what] += 1
        if self.failures[what] <= 3:
            self.examples[what].append(f"{datetime.now(UTC):%H:%M:%S.%f} {detail}")


def outcome_of(status: int) -> str:
    if 200 <= status < 300:
        return "2xx"
    if status in (409, 412):
        return str(status)
    return "5xx" if status >= 500 else "other"


def next_change(item: dict[str, Any], rng: random.Random) -> dict[str, Any] | None:
    """The next step for an item, as the phone page offers it (static/checklist.js), or
    None when it is finished: most are done, a few cannot be."""
    unable = {"state": "unable", "reason": "bench: 联系不上"}
    if item["kind"] == "transfer":
        if item["stage"] == "to_transfer" and item["state"] in OPEN:
            return (unable if rng.random() < 0.05 else
                    {"stage": "left_home", "head_count": item["people"]})
        if item["stage"] == "left_home":
            return {"stage": "checked_in"} if item["shelter"] else unable
        return None
    if item["state"] not in OPEN:
        return None
    return unable if rng.random() < 0.1 else {"state": "done"}


async def work(head: Head, base: str, tally: Tally, until: float, think: float,
               double: float, rng: random.Random) -> None:
    """One grid head: a step, a pause, until ``until`` or until the checklist is done."""
    bearer = {"Authorization": f"Bearer {head.token}"}
    async with httpx.AsyncClient(base_url=base, headers=bearer, timeout=TIMEOUT) as client:
        await asyncio.sleep(rng.uniform(0, think))  # heads do not all start on the same tick
        while time.monotonic() < until and await step(client, head, tally, until, double, rng):
            await asyncio.sleep(min(rng.uniform(0, 2 * think), until - time.monotonic()))


async def step(client: httpx.AsyncClient, head: Head, tally: Tally, until: float,
               double: float, rng: random.Random) -> bool:
    """Read the checklist and its items as the phone page does and change one unfinished
    item (twice at once, a share ``double`` of the time); False when none is left."""
    await tally.request(client, "read checklist", "GET", "/api/checklists",
                        params={"state": "open", "grid": head.grid})
    listed = (await tally.request(client, "read items", "GET",
                                  f"/api/checklists/{head.checklist}/items")
              if time.monotonic() < until else None)
    if listed is None or listed.status_code != 200 or time.monotonic() >= until:
        return True
    todo = [item for item in listed.json() if next_change(item, rng)]
    if not todo:
        head.finished = True
        return False
    item = rng.choice(todo)
    change = next_change(item, rng)
    taps = 2 if rng.random() < double else 1
    answers = await asyncio.gather(*(tally.request(
        client, "change item", "PATCH", f"/api/checklists/items/{item['id']}", json=change,
        headers={"If-Match": f'"{item["version"]}"'}) for _ in range(taps)))
    for answer in answers:
        if answer is not None and answer.is_success:
            tally.saved[item["id"]].append(answer.json())
            head.changes += 1
        elif answer is None or answer.status_code >= 500:
            tally.unknown[item["id"]] += 1  # saved or not: the database says
    if taps == 2:
        tally.doubles[" + ".join(sorted(str(a.status_code) if a is not None else "error"
                                        for a in answers))] += 1
    return True


async def watch(who: str, token: str, base: str, tally: Tally, until: float, start: float,
                refresh: float, heads_done: asyncio.Event) -> None:
    """One command-centre screen: the page's data reloaded when due until ``until``; the live
    feed open until the heads are done (and a second more, for the last events)."""
    bearer = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=bearer, timeout=TIMEOUT) as client:
        feed = asyncio.create_task(listen(who, client, tally))
        await asyncio.sleep(start)
        due = dict.fromkeys(COMMAND_PAGE, 0.0)  # the page opening loads everything
        while (now := time.monotonic()) < until:
            for kind, (path, every) in COMMAND_PAGE.items():
                if due[kind] <= now < until:
                    await tally.request(client, kind, "GET", path)
                    due[kind], now = now + (every or refresh), time.monotonic()
            await asyncio.sleep(max(0.0, min(*due.values(), until) - time.monotonic()))
        await heads_done.wait()
        await asyncio.sleep(1.0)
        feed.cancel()
        await asyncio.gather(feed, return_exceptions=True)


async def listen(who: str, client: httpx.AsyncClient, tally: Tally) -> None:
    started = time.perf_counter()
    try:
        async with client.stream("GET", "/api/feed",
                                 timeout=httpx.Timeout(10.0, read=None)) as answer:
            tally.seconds["feed (open)"].append(time.perf_counter() - started)
            tally.outcomes["feed (open)"][outcome_of(answer.status_code)] += 1
            async for line in answer.aiter_lines():
                if line.startswith("data:") and '"progress"' in line:
                    tally.feed_events[who] += 1
    except httpx.HTTPError as error:
        tally.outcomes["feed (open)"]["error"] += 1
        tally.fail(f"feed (open): {type(error).__name__}", f"{who}: {error}")


async def log_in(base: str, tally: Tally, usernames: list[str]) -> list[str]:
    """Log every user in through the API, a few at a time (Argon2 is slow on purpose)."""
    gate = asyncio.Semaphore(4)
    async with httpx.AsyncClient(base_url=base, timeout=TIMEOUT) as client:
        async def one(username: str) -> str:
            async with gate:
                answer = await tally.request(client, "log in", "POST", "/api/auth/token",
                                             data={"username": username, "password": PASSWORD})
            if answer is None or answer.status_code != 200:
                raise SystemExit(f"{username} could not log in")
            return str(answer.json()["access_token"])

        return list(await asyncio.gather(*(one(name) for name in usernames)))


async def load(base: str, heads: list[Head], commanders: list[str], args: argparse.Namespace,
               tally: Tally) -> tuple[float, float]:
    """Log everyone in, then run the heads and the command screens; return the seconds the
    log-ins took and the seconds the heads worked."""
    started = time.monotonic()
    tokens = await log_in(base, tally, [h.username for h in heads] + commanders)
    logged_in = time.monotonic() - started
    for head, token in zip(heads, tokens, strict=False):
        head.token = token
    started = time.monotonic()
    until = started + args.seconds
    heads_done, ended = asyncio.Event(), [until]

    async def all_heads() -> None:
        await asyncio.gather(*(work(head, base, tally, until, args.think, args.double,
                                    random.Random(args.seed + n)) for n, head in enumerate(heads)))
        ended[0] = time.monotonic()
        heads_done.set()

    await asyncio.gather(all_heads(), *(
        watch(name, token, base, tally, until, n * args.refresh / len(commanders), args.refresh,
              heads_done)
        for n, (name, token) in enumerate(zip(commanders, tokens[len(heads):], strict=True))))
    return logged_in, ended[0] - started


def set_up(engine: Engine, heads: int, commanders: int) -> tuple[str, list[Head], list[str]]:
    """Issue the warning (its checklists made), pick the busiest ``heads`` checklists and make
    sure every user exists; return the warning's identifier, the heads and the commanders."""
    with Session(engine) as session:
        for warning_id in session.scalars(text("SELECT id FROM warning WHERE sender = :s"),
                                          {"s": SENDER}).all():  # a run that did not finish
            for statement in DELETE_SQL:
                session.execute(statement, {"w": warning_id})
        session.commit()
        lon, lat = session.execute(CENTRE_SQL).one()
        circle, metres, touched = draw_circle(session, lon, lat, heads * 6 // 5)
        incoming = incoming_for(circle, "area")
        flows.issue_committed(session, None, incoming)
        picked = [Head(code, checklist) for code, checklist in session.execute(
            BUSIEST_SQL, {"w": incoming.identifier, "n": heads})]
        if len(picked) < heads:
            raise SystemExit(f"only {len(picked)} checklists with items; --heads {heads}")
        existing = set(session.scalars(text(
            "SELECT username FROM app_user WHERE username LIKE 'bench\\_%'")))
        names = [f"bench_command_{n}" for n in range(1, commanders + 1)]
        for head in picked:
            if head.username not in existing:
                auth.add_user(session, head.username, "grid_head", PASSWORD, [head.grid])
        for name in names:
            if name not in existing:
                auth.add_user(session, name, "command", PASSWORD, [])
        session.commit()
    print(f"warning {incoming.identifier}: circle r = {metres:.0f} m, {touched} grids; "
          f"{heads} grid heads on the busiest checklists")
    return incoming.identifier, picked, names


def verify(engine: Engine, identifier: str, tally: Tally,
           occupancy_before: dict[int, int]) -> tuple[list[str], dict[str, int]]:
    """Compare the database with what the clients were told; return the problems and counts."""
    problems: list[str] = []
    moved: Counter[int] = Counter()
    with Session(engine) as session:
        rows = session.execute(ITEMS_SQL, {"w": identifier}).all()
        occupancy_after = {s: o for s, o in session.execute(OCCUPANCY_SQL)}
    for row in rows:
        answers = sorted(tally.saved.get(row.id, []), key=lambda a: int(a["version"]))
        versions = [a["version"] for a in answers]
        unknown = tally.unknown[row.id]
        if row.stage == "checked_in":
            moved[row.shelter_id] += row.head_count
        if len(set(versions)) < len(versions) or any(v > row.version for v in versions):
            problems.append(f"item {row.id}: versions saved {versions}, the database has "
                            f"{row.version}")
        if not len(answers) <= row.version - 1 == row.events <= len(answers) + unknown:
            problems.append(f"item {row.id}: {len(answers)} changes saved ({unknown} not "
                            f"answered), the database has version {row.version} and "
                            f"{row.events} events")
        if answers:
            last = answers[-1]
            if last["version"] == row.version and (row.state, row.stage, row.head_count) != (
                    last["state"], last["stage"], last["head_count"]):
                problems.append(f"item {row.id}: the database has {row.state}/{row.stage}/"
                                f"{row.head_count}, the last answer {last['state']}/"
                                f"{last['stage']}/{last['head_count']}")
    for shelter, before in occupancy_before.items():
        if occupancy_after[shelter] - before != moved[shelter]:
            problems.append(f"shelter {shelter}: occupancy {before} -> "
                            f"{occupancy_after[shelter]}, {moved[shelter]} checked in")
    return problems, {"items": len(rows), "items_changed": sum(1 for r in rows if r.events),
                      "changes_saved": sum(len(a) for a in tally.saved.values()),
                      "changes_not_answered": tally.unknown.total(),
                      "events_in_database": sum(r.events for r in rows),
                      "people_checked_in": sum(moved.values()),
                      "shelters_checked_into": len(moved)}


def tear_down(engine: Engine, identifier: str, occupancy: dict[int, int]) -> None:
    """Delete the warning (its checklists and their events go with it); put the shelters'
    occupancy back as it was."""
    with Session(engine) as session:
        warning_id = session.scalar(text("SELECT id FROM warning WHERE identifier = :i"),
                                    {"i": identifier})
        for statement in DELETE_SQL:
            session.execute(statement, {"w": warning_id})
        session.execute(text("UPDATE shelter SET occupancy = :o WHERE id = :s"),
                        [{"s": s, "o": o} for s, o in occupancy.items()])
        session.commit()


def figures(tally: Tally, logged_in: float, seconds: float) -> dict[str, dict[str, Any]]:
    """Per request kind, and for all the load's requests: counts by outcome, requests/s and
    latency percentiles (ms). Log-ins come before the load: their rate is over their time."""
    kinds = [kind for kind in KINDS if kind in tally.outcomes]
    loaded = [kind for kind in kinds if kind != "log in"]
    out = {kind: row(tally.outcomes[kind], tally.seconds[kind],
                     logged_in if kind == "log in" else seconds) for kind in kinds}
    out["all but log in"] = row(sum((tally.outcomes[k] for k in loaded), Counter()),
                                [t for k in loaded for t in tally.seconds[k]], seconds)
    return out


def row(outcomes: Counter[str], times: list[float], seconds: float) -> dict[str, Any]:
    ordered = sorted(times) or [0.0]
    return {"requests": outcomes.total(),
            **{o: outcomes[o] for o in ("2xx", "412", "409", "other", "5xx", "error")},
            "per_s": round(outcomes.total() / seconds, 1),
            **{f"p{q}_ms": round(percentile(ordered, q) * 1000, 1) for q in (50, 95, 99)},
            "max_ms": round(ordered[-1] * 1000, 1)}


def print_table(table: dict[str, dict[str, Any]]) -> None:
    columns = ("requests", "2xx", "412", "409", "other", "5xx", "error", "per_s", "p50_ms",
               "p95_ms", "p99_ms", "max_ms")
    print("kind".ljust(16) + "".join(f"{c:>9}" for c in columns))
    for kind, line in table.items():
        print(kind.ljust(16) + "".join(f"{line[c]:>9}" for c in columns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="gridgis_bench_load")
    parser.add_argument("--load", default="nansha", help="demo territory loaded when empty")
    parser.add_argument("--heads", type=int, default=200)
    parser.add_argument("--command", type=int, default=5, help="command-centre screens")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--think", type=float, default=10.0, help="a head's mean pause (s)")
    parser.add_argument("--double", type=float, default=0.1, help="share of double taps")
    parser.add_argument("--refresh", type=float, default=2.0, help="map state every (s)")
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    if not (0 < args.seconds <= 600 and 0 < args.heads <= 1000 and 0 < args.command <= 50):
        raise SystemExit("--seconds 0..600, --heads 1..1000, --command 1..50")
    url = bench_url(args.db)
    prepare_database(url, args.load)
    engine = db.make_engine(url)
    identifier, heads, commanders = set_up(engine, args.heads, args.command)
    with Session(engine) as session:
        occupancy = {s: o for s, o in session.execute(OCCUPANCY_SQL)}
        db_started = session.scalar(STARTED_SQL)
    tally = Tally()
    with tempfile.NamedTemporaryFile(prefix="gridgis-load-", suffix=".log", delete=False) as log:
        process, base = serve(url, log)
        try:
            print(f"{args.heads} heads and {args.command} command screens for "
                  f"{args.seconds:g} s on {base} (server log {log.name}) ...", flush=True)
            logged_in, seconds = asyncio.run(load(base, heads, commanders, args, tally))
        finally:
            stop(process)
    try:
        problems, counts = verify(engine, identifier, tally, occupancy)
        with Session(engine) as session:
            restarted = session.scalar(STARTED_SQL) != db_started
        result = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "db": args.db,
                  "machine": machine(engine), "heads": args.heads, "command": args.command,
                  "seconds": round(seconds, 1), "think_s": args.think, "double": args.double,
                  "refresh_s": args.refresh, "requests": figures(tally, logged_in, seconds),
                  **counts, "changes_per_head": round(counts["changes_saved"] / len(heads), 1),
                  "heads_finished": sum(h.finished for h in heads),
                  "double_taps": dict(tally.doubles),
                  "feed_progress_events": dict(tally.feed_events),
                  "database_restarted": restarted, "problems": problems[:100],
                  "failures": dict(tally.failures), "failure_examples": tally.examples}
    finally:
        tear_down(engine, identifier, occupancy)
        engine.dispose()
    print_table(result["requests"])
    print(json.dumps({k: v for k, v in result.items() if k not in ("requests", "machine")},
                     indent=1, ensure_ascii=False))
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"load-checklists-{args.heads}.json"
    path.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    errors = tally.failures.total()
    verdict = ("FAILED: the database server restarted during the run" if restarted else
               f"FAILED: {len(problems)} lost or doubled changes" if problems else
               f"FAILED: {errors} errors (server log {log.name})" if errors else
               "passed: no change lost, no error")
    print(f"{counts['changes_saved']} changes saved, {counts['events_in_database']} events "
          f"in the database; {verdict}; {path}")
    raise SystemExit(0 if verdict.startswith("passed") else 1)


if __name__ == "__main__":
    main()
