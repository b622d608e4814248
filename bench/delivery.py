"""Benchmark: delivery. Outbox -> webhook throughput, and a live-feed alert fanned out to
2,000 connected grid heads (DESIGN.md: 99 % within 1 s at 2,000; p95 at 1,000 clients no
worse than the minimal SSE peer).

    .venv/bin/python bench/delivery.py [--db gridgis_bench] [--part webhook,sse]
        [--messages 1000,5000] [--webhook-runs 2] [--receiver-delay-ms 0]
        [--stats fresh|as-left] [--clients 1000,2000] [--command 5] [--rounds 5]
        [--warning-rounds 2] [--no-peer]

Runs on the city of ``bench/gen_city.py``; all load goes to 127.0.0.1, each part stops by
itself (bounded rounds and timeouts) and deletes what it made (warnings, alerts, outbox rows,
tokens, command users). About four minutes by default.

**Webhook throughput** (``--part webhook``). A local HTTP receiver (threaded, keep-alive,
answers 200 at once, or after ``--receiver-delay-ms``) is the team robot of every grid
(``GRIDGIS_TEAM_WEBHOOKS``, generic ``webhook`` shape, no rate limit:
``GRIDGIS_DISPATCH_RATES='{}'``). The real dispatcher, ``gridgis dispatch --channel webhook``
with its default concurrency, runs as a subprocess and is listening before a drawn warning
over about ``--messages`` grids is issued and committed (``flows.issue``): one team message
per grid, so every message has its own recipient and the dispatcher's per-recipient order
holds none back. The people's messages of the same warning (feed, SMS) are deleted before
the commit, so the queue holds the webhook messages only (``--keep-people-rows`` keeps them:
four more due rows per grid that the claim walks past); its checklists are marked made so
the dispatcher's sweep leaves them be (bench/checklists.py times them). Timed from the
commit: first and last arrival at the receiver, all rows ``sent`` in the database; messages
per second; each message's commit-to-arrival time.

``--stats``: every run starts from an emptied, vacuumed outbox, whose statistics then say
"empty". ``fresh`` (default) runs ANALYZE outbox in the issuing transaction (it counts that
transaction's rows), so the dispatcher's claims are planned for the rows really there: the
figure is the dispatcher's own pace. ``as-left`` keeps the "empty" statistics, as a quiet
outbox's would be when a typhoon's burst lands: the claim is then planned with a correlated
scan over every due row for each candidate (a 5,000-row burst: one claim took 67-90 s on
the bench machine; the claims are planned well again once autovacuum analyses the table).

**Live-feed fan-out** (``--part sse``). A real ``gridgis serve`` (bench/harness.py) on a
loopback port; raw asyncio clients, each on its own connection, ``GET /api/feed`` with the
bearer token of the grid head of one of the grids a 2,000-grid circle touches (the city's own
heads; tokens made here, deleted afterwards), and ``--command`` command users (made here,
deleted afterwards), who see every grid.

* ``notify`` rounds (``--rounds`` at each ``--clients`` count of heads, the heads joining
  between counts; then once more at the largest with the command clients connected too):
  one transaction NOTIFYs, for every connected head, the event the dispatcher's feed sender
  would publish for its grid's alert (addressed to the head, as
  ``channels.FeedSender`` makes it, packed several to a NOTIFY as ``feed.publish_many``
  packs them; the command clients see every grid's) and commits. A
  head holds the alert when its event arrives; a command client when every grid's has.
* ``warning`` rounds (``--warning-rounds``, at the largest count, command clients
  connected): end to end. A drawn warning over the 2,000-grid circle is issued and
  committed with ``gridgis dispatch --channel feed`` running (it NOTIFYs the head's and the
  worker's feed rows of every grid, in batches of 500); timed from the warning's commit to
  the alert on each head's feed (command clients: every grid's alert). The outbox's
  ``sent_at`` (a batch's transaction start) tells when the dispatcher began its first and
  its last batch.

For each series, the time from the commit until 50, 95, 99 and 100 % of the clients hold it
(per round; median and worst over rounds), and every client-round's latency pooled (p50,
p95, p99, max, share within 1 s) as the peer reported it.

The peer (``../shared/bench-peer/sse_server.py``: Starlette, one uvicorn worker, a queue per
client, ``POST /publish`` puts one message in every queue) is measured at the same counts
with the same clients, ``--rounds`` messages 0.5 s apart, timed from the POST (and from the
server's own timestamp, as the peer's ``sse_fanout.py`` does). When port 8091 is free the
peer's ``sse_fanout.py`` is run too, unchanged, at the same counts (10 messages).

Prints tables; writes ``bench/results/delivery.json`` (median and p95 of every figure, the
machine, the versions, the commit). The server's and dispatchers' logs go to
``/tmp/gridgis-delivery-*.log``.
"""

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import shapely
from checklists import DELETE_SQL, draw_circle, incoming_for, vacuum
from harness import RESULTS_DIR, free_port, machine, percentile, serve, stop, use_database
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from gridgis import auth
from gridgis.alerts import channels, feed, flows
from gridgis.alerts.channels import Message
from gridgis.models import AppUser
from gridgis.settings import get_settings

PEER_DIR = Path(__file__).resolve().parents[2] / "shared" / "bench-peer"
PEER_FANOUT_PORT = 8091  # sse_fanout.py's fixed port
PASSWORD = "correct horse battery"  # bench users on a bench database only
COMMAND_PREFIX = "bench-delivery-command-"
TARGET_WITHIN_S = 1.0
TARGET_SHARE = 99.0
SHARES = (50, 95, 99, 100)
ROUND_TIMEOUT_S = 15.0
CONNECT_AT_ONCE = 50
HEADS_SQL = text("""
SELECT DISTINCT ON (g.code) u.id, g.code, g.name
FROM grid g JOIN app_user_grid ug ON ug.grid_id = g.id
JOIN app_user u ON u.id = ug.app_user_id AND u.role = 'grid_head' AND u.active
WHERE g.retired_at IS NULL AND ST_Intersects(g.boundary, ST_GeomFromWKB(:wkb, 4326))
ORDER BY g.code, u.id
""")
WARNING_ROWS_SQL = text("""
SELECT count(*) FILTER (WHERE o.state = 'sent') AS sent,
       count(*) FILTER (WHERE o.state = 'dead') AS dead,
       count(*) FILTER (WHERE o.state = 'failed') AS failed, count(*) AS rows
FROM outbox o JOIN alert a ON a.id = o.alert_id
WHERE a.warning_id = (SELECT id FROM warning WHERE identifier = :i) AND o.channel = :channel
""")
MARK_MADE_SQL = text("""
UPDATE checklist c SET made_at = now() FROM alert a JOIN warning w ON w.id = a.warning_id
WHERE c.alert_id = a.id AND w.identifier = :i
""")
DROP_PEOPLE_ROWS_SQL = text("""
DELETE FROM outbox o USING alert a JOIN warning w ON w.id = a.warning_id
WHERE o.alert_id = a.id AND w.identifier = :i AND o.app_user_id IS NOT NULL
""")
LISTENERS_SQL = text("""
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND query ILIKE 'LISTEN%gridgis_outbox%'
  AND backend_start >= :since
""")
OTHER_DISPATCHERS_SQL = text("""
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND query ILIKE 'LISTEN%gridgis_outbox%'
""")


def raise_open_files() -> int:
    """Raise this process's (and its children's) open-file limit to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def spread(values: list[float]) -> dict[str, float]:
    """Median, p95 (nearest rank), p99, min, max and count of ``values`` (not empty)."""
    ordered = sorted(values)
    return {"median": round(statistics.median(ordered), 4),
            "p95": round(percentile(ordered, 95), 4), "p99": round(percentile(ordered, 99), 4),
            "min": round(ordered[0], 4), "max": round(ordered[-1], 4), "n": len(ordered)}


# ---- webhook throughput ---------------------------------------------------------------------

@dataclass
class Receiver:
    """What the webhook receiver saw: the first arrival of each idempotency key, all posts.
    Not tests/receivers.py's: that one keeps every arrival decoded and counts a key's
    repeats by a scan per arrival (quadratic at thousands): a throughput figure needs a
    receiver that costs next to nothing per post."""

    url: str = ""
    delay_s: float = 0.0
    first: dict[str, float] = field(default_factory=dict)  # key -> perf_counter
    posts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def arrived(self, key: str) -> None:
        now = time.perf_counter()
        with self.lock:
            self.posts += 1
            self.first.setdefault(key, now)


@contextlib.contextmanager
def webhook_receiver(delay_s: float) -> Iterator[Receiver]:
    """A threaded keep-alive HTTP receiver on a free loopback port, answering 200."""
    receiver = Receiver(delay_s=delay_s)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        wbufsize = 1 << 16

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            receiver.arrived(self.headers.get("Idempotency-Key") or "")
            if receiver.delay_s:
                time.sleep(receiver.delay_s)
            answer = b'{"errcode": 0, "errmsg": "ok"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/robot"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def start_dispatcher(engine: Engine, url: str, channel: str, env: dict[str, str],
                     log: IO[bytes]) -> subprocess.Popen[bytes]:
    """Start ``gridgis dispatch --channel CHANNEL`` over ``url``; return it once it listens."""
    with engine.connect() as conn:
        since = conn.execute(text("SELECT now()")).scalar_one()
    process = subprocess.Popen([sys.executable, "-m", "gridgis.cli", "dispatch", "--channel",
                                channel],
                               env={**os.environ, "GRIDGIS_DATABASE_URL": url, **env},
                               stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.execute(LISTENERS_SQL, {"since": since}).scalar_one():
                time.sleep(0.3)  # its first loop (escalations, sweep, claim) is done by now
                return process
        if process.poll() is not None:
            raise SystemExit(f"gridgis dispatch exited ({process.returncode}); see {log.name}")
        time.sleep(0.1)
    process.kill()
    raise SystemExit("gridgis dispatch did not start listening")


def stop_dispatcher(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def delete_warning(engine: Engine, identifier: str) -> None:
    with Session(engine) as session:
        warning_id = session.scalar(text("SELECT id FROM warning WHERE identifier = :i"),
                                    {"i": identifier})
        if warning_id is not None:
            for statement in DELETE_SQL:
                session.execute(statement, {"w": warning_id})
            session.commit()


def common_prefix(engine: Engine, wkb: bytes) -> str:
    with engine.connect() as conn:
        low, high = conn.execute(text(
            "SELECT min(code), max(code) FROM grid WHERE retired_at IS NULL "
            "AND ST_Intersects(boundary, ST_GeomFromWKB(:wkb, 4326))"), {"wkb": wkb}).one()
    return os.path.commonprefix([low, high])  # noqa: RUF071 (codes, not paths)


def webhook_run(engine: Engine, url: str, circle: Any, prefix: str, args: argparse.Namespace,
                log: IO[bytes]) -> dict[str, Any]:
    """One run: dispatcher listening, a warning's team messages committed, sent to the
    receiver; return the times."""
    with webhook_receiver(args.receiver_delay_ms / 1000) as receiver:
        routes = json.dumps({prefix: {"channel": "webhook", "url": receiver.url}})
        env = {"GRIDGIS_TEAM_WEBHOOKS": routes, "GRIDGIS_DISPATCH_RATES": "{}"}
        os.environ.update(env)  # this process queues the team rows: it must know the routes
        get_settings.cache_clear()
        process = start_dispatcher(engine, url, "webhook", env, log)
        incoming = incoming_for(circle, "area")
        try:
            with Session(engine) as session:
                flows.issue(session, None, incoming)
                session.execute(MARK_MADE_SQL, {"i": incoming.identifier})
                if not args.keep_people_rows:
                    session.execute(DROP_PEOPLE_ROWS_SQL, {"i": incoming.identifier})
                if args.stats == "fresh":  # counts this transaction's rows (see the doc)
                    session.execute(text("ANALYZE outbox"))
                queued = session.execute(WARNING_ROWS_SQL, {"i": incoming.identifier,
                                                            "channel": "webhook"}).one().rows
                others = session.scalar(text(
                    "SELECT count(*) FROM outbox WHERE state IN ('queued', 'failed')"))
                t0 = time.perf_counter()
                session.commit()
            all_sent_at = None
            deadline = time.perf_counter() + args.webhook_timeout
            with Session(engine) as session:
                while time.perf_counter() < deadline:
                    counts = session.execute(WARNING_ROWS_SQL, {
                        "i": incoming.identifier, "channel": "webhook"}).one()
                    session.rollback()
                    if counts.sent + counts.dead >= queued:
                        all_sent_at = time.perf_counter()
                        break
                    time.sleep(0.1)
        finally:
            stop_dispatcher(process)
            for name in env:
                os.environ.pop(name, None)
            get_settings.cache_clear()
        with Session(engine) as session:
            counts = session.execute(WARNING_ROWS_SQL, {"i": incoming.identifier,
                                                        "channel": "webhook"}).one()
        arrivals = sorted(receiver.first.values())
        posts = receiver.posts
    delete_warning(engine, incoming.identifier)
    vacuum(engine)
    if not arrivals:
        raise SystemExit(f"no webhook arrived; see {log.name}")
    last = arrivals[-1]
    latencies = [t - t0 for t in arrivals]
    return {"queued": queued, "other_due_rows": others, "received_keys": len(arrivals),
            "posts": posts, "repeats": posts - len(arrivals), "sent": counts.sent,
            "dead": counts.dead, "failed": counts.failed,
            "first_arrival_s": arrivals[0] - t0, "last_arrival_s": last - t0,
            "all_sent_in_db_s": (all_sent_at - t0) if all_sent_at else None,
            "messages_per_s": len(arrivals) / (last - t0),
            "steady_messages_per_s": (len(arrivals) - 1) / (last - arrivals[0])
            if last > arrivals[0] else None,
            "latency_s": spread(latencies)}


def webhook_part(engine: Engine, url: str, args: argparse.Namespace,
                 messages: int) -> dict[str, Any]:
    """``--webhook-runs`` runs with ``messages`` webhook messages queued at once."""
    with Session(engine) as session:
        circle, metres, touched = draw_circle(session, args.centre[0], args.centre[1],
                                              messages)
    prefix = common_prefix(engine, bytes(shapely.to_wkb(circle)))
    with engine.connect() as conn:
        if conn.execute(OTHER_DISPATCHERS_SQL).scalar_one():
            print("  warning: another dispatcher listens on this database; it may take some "
                  "of the messages", flush=True)
    print(f"webhook: {touched:,} grids (r = {metres / 1000:.2f} km), route prefix {prefix!r}, "
          f"receiver delay {args.receiver_delay_ms} ms, {args.webhook_runs} runs", flush=True)
    runs = []
    with tempfile.NamedTemporaryFile(prefix="gridgis-delivery-dispatch-", suffix=".log",
                                     delete=False) as log:
        for k in range(args.webhook_runs):
            run = webhook_run(engine, url, circle, prefix, args, log)
            runs.append(run)
            print(f"  run {k + 1}: {run['received_keys']:,}/{run['queued']:,} received, last "
                  f"{run['last_arrival_s']:.2f} s after the commit, all sent in the database "
                  f"{run['all_sent_in_db_s'] or float('nan'):.2f} s; "
                  f"{run['messages_per_s']:,.0f} messages/s; {run['repeats']} repeats, "
                  f"{run['dead']} dead", flush=True)
        print(f"  dispatcher log: {log.name}")
    for run in runs:
        run["latency_p50_s"] = run["latency_s"]["median"]
        run["latency_p95_s"] = run["latency_s"]["p95"]
    figures = ("first_arrival_s", "last_arrival_s", "all_sent_in_db_s", "messages_per_s",
               "steady_messages_per_s", "latency_p50_s", "latency_p95_s")
    return {"grids": touched, "radius_m": round(metres), "route_prefix": prefix,
            "outbox_statistics": args.stats,
            "receiver_delay_ms": args.receiver_delay_ms,
            "dispatch_concurrency": get_settings().dispatch_concurrency,
            "people_rows_kept": args.keep_people_rows,
            "figures": {k: spread([r[k] for r in runs if r[k] is not None])
                        for k in figures if any(r[k] is not None for r in runs)},
            "runs": runs}


# ---- SSE clients ----------------------------------------------------------------------------

@dataclass(eq=False)
class Client:
    """One raw SSE connection; per tag, when its first and last matching event arrived."""

    name: str
    kind: str  # head, command, peer
    headers: str
    first: dict[str, float] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)
    count: dict[str, int] = field(default_factory=dict)
    stamps: dict[str, float] = field(default_factory=dict)  # peer: the server's time.time()
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    error: str | None = None
    task: asyncio.Task[None] | None = None


def tag_of(event: dict[str, Any]) -> str | None:
    """The round an event belongs to: a gridgis alert's warning, or the peer's message."""
    if event.get("kind") == "alert":
        return str(event.get("warning"))
    if "t" in event and "alert" in event:
        return str(event["alert"])
    return None


async def read_stream(client: Client, port: int, path: str) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        client.error = f"connect: {exc}"
        client.connected.set()
        return
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                     f"{client.headers}\r\n".encode())
        await writer.drain()
        status = await reader.readline()
        if b" 200 " not in status:
            client.error = status.decode(errors="replace").strip()
            client.connected.set()
            return
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass
        while True:
            line = await reader.readline()
            if not line:
                client.error = client.error or "closed"
                return
            if line.startswith(b"data: "):
                now = time.perf_counter()
                event = json.loads(line[6:])
                tag = tag_of(event)
                if tag is None:
                    continue
                client.first.setdefault(tag, now)
                client.last[tag] = now
                client.count[tag] = client.count.get(tag, 0) + 1
                if "t" in event:
                    client.stamps.setdefault(tag, float(event["t"]))
            elif line.startswith(b": connected"):
                client.connected.set()
    except (OSError, ValueError) as exc:
        client.error = f"{type(exc).__name__}: {exc}"
    finally:
        client.connected.set()
        writer.close()


async def connect_all(clients: list[Client], port: int, path: str) -> float:
    """Open every client's stream, a few at a time; return the seconds it took."""
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    t0 = time.perf_counter()

    async def one(client: Client) -> None:
        async with gate:
            client.task = asyncio.create_task(read_stream(client, port, path))
            await asyncio.wait_for(client.connected.wait(), 60)

    await asyncio.gather(*(one(c) for c in clients))
    failed = [c for c in clients if c.error]
    if failed:
        raise SystemExit(f"{len(failed)} clients failed to connect, e.g. {failed[0].error}")
    return time.perf_counter() - t0


async def close_all(clients: list[Client]) -> None:
    tasks = [c.task for c in clients if c.task is not None]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def wait_round(clients: list[Client], tag: str, expected: dict[str, int],
                     timeout: float) -> None:
    """Wait until every client holds round ``tag`` (``expected`` events by kind), or timeout."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if all(c.count.get(tag, 0) >= expected[c.kind] for c in clients):
            return
        await asyncio.sleep(0.01)


def held_times(clients: list[Client], tag: str, t0: float,
               expected: dict[str, int]) -> tuple[list[float], int]:
    """Each client's time from ``t0`` until it held round ``tag`` (a command client: all
    its events); return them and how many clients never did."""
    times, missing = [], 0
    for c in clients:
        if c.count.get(tag, 0) < expected[c.kind]:
            missing += 1
        else:
            times.append((c.last[tag] if expected[c.kind] > 1 else c.first[tag]) - t0)
    return times, missing


def round_figures(times: list[float], missing: int, total: int) -> dict[str, Any]:
    """The time until each share of ``total`` clients held it (None: that share never did)."""
    ordered = sorted(times)
    out: dict[str, Any] = {}
    for share in SHARES:
        needed = max(1, -(-share * total // 100))
        out[f"t{share}_s"] = round(ordered[needed - 1], 4) if needed <= len(ordered) else None
    out["within_1s_pct"] = round(100 * sum(t <= TARGET_WITHIN_S for t in ordered) / total, 2)
    out["missing"] = missing
    return out


@dataclass
class Rounds:
    """Figures of a series of rounds over some clients."""

    per_round: list[dict[str, Any]] = field(default_factory=list)
    pooled: list[float] = field(default_factory=list)
    missing: int = 0
    clients: int = 0

    def add(self, clients: list[Client], tag: str, t0: float,
            expected: dict[str, int]) -> None:
        times, lost = held_times(clients, tag, t0, expected)
        self.per_round.append(round_figures(times, lost, len(clients)))
        self.pooled += times
        self.missing += lost
        self.clients = len(clients)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"clients": self.clients, "rounds": len(self.per_round)}
        for share in SHARES:
            values = [r[f"t{share}_s"] for r in self.per_round]
            finite = [v for v in values if v is not None]
            out[f"t{share}_s"] = {
                "median": round(statistics.median(finite), 4) if finite else None,
                "max": round(max(finite), 4) if finite and len(finite) == len(values) else None}
        out["pooled_s"] = spread(self.pooled) if self.pooled else None
        out["pooled_within_1s_pct"] = round(
            100 * sum(t <= TARGET_WITHIN_S for t in self.pooled)
            / max(1, len(self.pooled) + self.missing), 2)
        out["missing"] = self.missing
        out["per_round"] = self.per_round
        return out


class KindRounds:
    """Rounds over every client, over the heads, and the command clients' first and last
    event (a command client holds a round once every grid's event has come)."""

    def __init__(self) -> None:
        self.all, self.heads = Rounds(), Rounds()
        self.command_first: list[float] = []
        self.command_all: list[float] = []

    def add(self, clients: list[Client], tag: str, t0: float,
            expected: dict[str, int]) -> None:
        self.all.add(clients, tag, t0, expected)
        self.heads.add([c for c in clients if c.kind == "head"], tag, t0, expected)
        for c in clients:
            if c.kind == "command" and tag in c.first:
                self.command_first.append(c.first[tag] - t0)
                if c.count[tag] >= expected["command"]:
                    self.command_all.append(c.last[tag] - t0)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"heads": self.heads.summary(), "all": self.all.summary()}
        if self.command_first:
            out["command_first_event_s"] = spread(self.command_first)
            out["command_every_event_s"] = (spread(self.command_all) if self.command_all
                                            else None)
        return out


# ---- SSE: the peer ----------------------------------------------------------------------------

def start_peer(port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-m", "uvicorn", "sse_server:app", "--app-dir",
                                str(PEER_DIR), "--host", "127.0.0.1", "--port", str(port),
                                "--no-access-log", "--log-level", "warning"],
                               stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return process
        time.sleep(0.1)
    process.kill()
    raise SystemExit("the peer's SSE server did not start")


def post_publish(port: int, body: bytes) -> None:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/publish", data=body,
                                     method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


async def peer_counts(port: int, counts: list[int], rounds: int) -> dict[str, Any]:
    """The peer at each count of clients (added to those connected): ``rounds`` messages."""
    clients: list[Client] = []
    out: dict[str, Any] = {}
    try:
        for n in counts:
            new = [Client(f"peer-{i}", "peer", "") for i in range(len(clients), n)]
            took = await connect_all(new, port, "/events")
            clients += new
            await asyncio.sleep(1.0)
            series, pooled_stamp = Rounds(), []
            for k in range(rounds):
                tag = f"bench-peer-{n}-{k}"
                wall, t0 = time.time(), time.perf_counter()
                await asyncio.to_thread(post_publish, port, tag.encode())
                await wait_round(clients, tag, {"peer": 1}, ROUND_TIMEOUT_S)
                series.add(clients, tag, t0, {"peer": 1})
                stamp = next((c.stamps[tag] for c in clients if tag in c.stamps), wall)
                pooled_stamp += [c.first[tag] - t0 - (stamp - wall) for c in clients
                                 if tag in c.first]
                await asyncio.sleep(0.5)
            out[str(n)] = series.summary()
            out[str(n)]["connect_s"] = round(took, 2)
            out[str(n)]["pooled_from_server_stamp_s"] = spread(pooled_stamp)
            print_sse_row(f"peer, {n:,} clients", out[str(n)])
    finally:
        await close_all(clients)
    return out


def peer_script(counts: list[int], rounds: int) -> dict[str, Any]:
    """The peer's own sse_fanout.py, unchanged (it needs the peer on port 8091)."""
    out: dict[str, Any] = {}
    for n in counts:
        done = subprocess.run([sys.executable, str(PEER_DIR / "sse_fanout.py"), str(n),
                               str(rounds)], capture_output=True, text=True, timeout=120)
        lines = done.stdout.strip().splitlines()
        try:
            out[str(n)] = json.loads(lines[-1])
        except (IndexError, ValueError):
            out[str(n)] = {"error": (done.stderr or done.stdout)[-500:]}
        print(f"  peer's sse_fanout.py {n:,} clients: {json.dumps(out[str(n)])}", flush=True)
    return out


# ---- SSE: gridgis ----------------------------------------------------------------------------

@dataclass
class FeedPeople:
    heads: list[tuple[int, str, str, str]]  # user id, grid code, grid name, token
    commanders: list[tuple[int, str]]  # user id, token
    token_ids: list[int]
    command_ids: list[int]


def make_people(engine: Engine, wkb: bytes, heads: int, commanders: int) -> FeedPeople:
    """Tokens for the grid heads of the circle's first ``heads`` grids; ``commanders``
    command users with tokens. All committed; ``remove_people`` deletes them."""
    with Session(engine) as session:
        found = session.execute(HEADS_SQL, {"wkb": wkb}).all()[:heads]
        if len(found) < heads:
            raise SystemExit(f"the circle has {len(found)} grids with a grid head; "
                             f"{heads} wanted")
        users = {u.id: u for u in session.scalars(
            select(AppUser).where(AppUser.id.in_([row.id for row in found])))}
        before = session.scalar(text("SELECT coalesce(max(id), 0) FROM auth_token"))
        head_tokens = [auth.issue_token(session, users[row.id])[0] for row in found]
        command_users = [auth.add_user(session, f"{COMMAND_PREFIX}{i}", "command", PASSWORD, [])
                         for i in range(commanders)]
        command_tokens = [auth.issue_token(session, u)[0] for u in command_users]
        session.flush()
        ids = [u.id for u in command_users]
        token_ids = list(session.scalars(text(
            "SELECT id FROM auth_token WHERE id > :before AND app_user_id = ANY(:u)"),
            {"before": before, "u": [row.id for row in found] + ids}))
        session.commit()
    return FeedPeople([(row.id, row.code, row.name, token)
                       for row, token in zip(found, head_tokens, strict=True)],
                      list(zip(ids, command_tokens, strict=True)), token_ids, ids)


def remove_people(engine: Engine, people: FeedPeople) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM auth_token WHERE id = ANY(:t) OR app_user_id = ANY(:u)"),
                     {"t": people.token_ids, "u": people.command_ids})
        for table in ("audit_log", "app_user_grid", "app_user_unit"):
            conn.execute(text(f"DELETE FROM {table} WHERE app_user_id = ANY(:u)"),
                         {"u": people.command_ids})
        conn.execute(text("DELETE FROM app_user WHERE id = ANY(:u)"), {"u": people.command_ids})


def feed_events(heads: list[Client], people: dict[str, tuple[int, str, str]],
                tag: str) -> list[str]:
    """The NOTIFY payloads the dispatcher's feed sender would publish for each head's
    alert (gridgis.alerts.channels.FeedSender), tagged as warning ``tag``."""
    zone = get_settings().dispatch_timezone
    payloads = []
    for client in heads:
        user_id, code, name = people[client.name]
        key = f"0:0:alert:{user_id}:feed:{tag}"
        payload = {"kind": "alert", "alert": None, "warning": tag, "grid": code,
                   "grid_name": name, "tier": "area", "level": "orange", "event": "台风",
                   "headline": "bench: live feed fan-out", "gale_eta": None, "exercise": True}
        message = Message(id=0, channel="feed", kind="alert", idempotency_key=key,
                          payload=payload, attempts=1, app_user_id=user_id)
        fields = channels.text_fields(message, zone)
        event = {**payload, "id": key, "kind": fields["kind"], "alert": None,
                 "text": fields["text"]}
        payloads.append(feed.encode_event(user_id, event))
    return payloads


def notify_committed(engine: Engine, events: list[str]) -> float:
    """NOTIFY every event in one transaction, packed as the feed sender packs them
    (``feed.pack``); return perf_counter at the commit."""
    with Session(engine) as session:
        session.execute(feed.PUBLISH_SQL, {"channel": feed.CHANNEL,
                                           "payloads": feed.pack(events)})
        t0 = time.perf_counter()
        w0 = time.time()
        session.commit()
        print("TIMING commit", w0, time.time(), flush=True)
    return t0


def issue_committed(engine: Engine, circle: Any,
                    fresh_stats: bool) -> tuple[str, float, datetime]:
    """Issue a drawn warning over ``circle`` (checklists marked made); return its identifier,
    perf_counter at its commit and the database's clock just after it."""
    incoming = incoming_for(circle, "area")
    with Session(engine) as session:
        flows.issue(session, None, incoming)
        session.execute(MARK_MADE_SQL, {"i": incoming.identifier})
        if fresh_stats:
            session.execute(text("ANALYZE outbox"))
        t0 = time.perf_counter()
        session.commit()
        committed = session.execute(text("SELECT clock_timestamp()")).scalar_one()
    return incoming.identifier, t0, committed


def feed_marks(engine: Engine, identifier: str, committed: datetime) -> tuple[float, float]:
    """When the dispatcher began its first and its last batch of the warning's feed rows
    (``sent_at`` is its transaction's start), in seconds after the commit."""
    with Session(engine) as session:
        first, last = session.execute(text(
            "SELECT min(o.sent_at), max(o.sent_at) FROM outbox o JOIN alert a "
            "ON a.id = o.alert_id JOIN warning w ON w.id = a.warning_id "
            "WHERE w.identifier = :i AND o.channel = 'feed'"), {"i": identifier}).one()
    return (first - committed).total_seconds(), (last - committed).total_seconds()


def wait_feed_sent(engine: Engine, identifier: str, timeout: float) -> float | None:
    """Wait until every feed row of the warning is sent; return perf_counter then."""
    deadline = time.perf_counter() + timeout
    with Session(engine) as session:
        while time.perf_counter() < deadline:
            counts = session.execute(WARNING_ROWS_SQL, {"i": identifier, "channel": "feed"}).one()
            session.rollback()
            if counts.sent + counts.dead >= counts.rows:
                return time.perf_counter()
            time.sleep(0.05)
    return None


async def notify_rounds(engine: Engine, clients: list[Client],
                        people: dict[str, tuple[int, str, str]], label: str,
                        rounds: int) -> dict[str, Any]:
    """``rounds`` times: every connected head's alert event NOTIFYed in one transaction."""
    heads = [c for c in clients if c.kind == "head"]
    expected = {"head": 1, "command": len(heads)}
    series = KindRounds()
    for k in range(rounds):
        tag = f"bench-{label}-{k}"
        payloads = feed_events(heads, people, tag)
        t0 = await asyncio.to_thread(notify_committed, engine, payloads)
        await wait_round(clients, tag, expected, ROUND_TIMEOUT_S)
        series.add(clients, tag, t0, expected)
        await asyncio.sleep(0.5)
    out = series.summary()
    out.update(heads_connected=len(heads), command_connected=len(clients) - len(heads),
               events_per_round=len(heads),
               notifies_per_round=len(feed.pack(feed_events(heads, people, "size"))))
    return out


async def gridgis_counts(engine: Engine, url: str, port: int, people: FeedPeople, circle: Any,
                         grids: int, args: argparse.Namespace,
                         log: IO[bytes]) -> dict[str, Any]:
    """gridgis: notify rounds with grid heads only at each count, then with the command
    clients too at the largest, then warning rounds (end to end) at the largest."""
    heads_all = [Client(f"head-{i}", "head", f"Authorization: Bearer {token}\r\n")
                 for i, (_, _, _, token) in enumerate(people.heads)]
    by_name = {f"head-{i}": (uid, code, name)
               for i, (uid, code, name, _) in enumerate(people.heads)}
    commanders = [Client(f"command-{i}", "command", f"Authorization: Bearer {token}\r\n")
                  for i, (_, token) in enumerate(people.commanders)]
    clients: list[Client] = []
    out: dict[str, Any] = {}
    try:
        for n in args.clients:
            new = heads_all[len(clients):n]
            took = await connect_all(new, port, "/api/feed")
            clients += new
            await asyncio.sleep(1.0)
            key = f"notify {n} heads"
            out[key] = await notify_rounds(engine, clients, by_name, key.replace(" ", "-"),
                                           args.rounds)
            out[key]["connect_s"] = round(took, 2)
            print_sse_row(f"gridgis notify, {n:,} heads", out[key]["heads"])
        if commanders:
            await connect_all(commanders, port, "/api/feed")
            clients += commanders
            await asyncio.sleep(1.0)
            key = f"notify {len(clients) - len(commanders)} heads + {len(commanders)} command"
            out[key] = await notify_rounds(engine, clients, by_name, "notify-command",
                                           args.rounds)
            print_sse_row(f"gridgis {key}: heads", out[key]["heads"])
            print_command(out[key])
        if args.warning_rounds:
            key = (f"warning {len(clients) - len(commanders)} heads + {len(commanders)} "
                   f"command")
            out[key] = await warning_rounds(engine, url, clients, circle, grids, args, log)
            print_sse_row(f"gridgis {key} (end to end): heads", out[key]["heads"])
            print_command(out[key])
    finally:
        await close_all(clients)
    return out


async def warning_rounds(engine: Engine, url: str, clients: list[Client], circle: Any,
                         grids: int, args: argparse.Namespace,
                         log: IO[bytes]) -> dict[str, Any]:
    """End to end: a real warning over the circle, ``gridgis dispatch --channel feed``."""
    process = await asyncio.to_thread(start_dispatcher, engine, url, "feed", {}, log)
    expected = {"head": 1, "command": grids}
    series = KindRounds()
    feed_sent: list[float] = []
    marks: list[tuple[float, float]] = []
    try:
        for _ in range(args.warning_rounds):
            identifier, t0, committed = await asyncio.to_thread(
                issue_committed, engine, circle, args.stats == "fresh")
            try:
                await wait_round(clients, identifier, expected, ROUND_TIMEOUT_S)
                series.add(clients, identifier, t0, expected)
                done = await asyncio.to_thread(wait_feed_sent, engine, identifier, 60)
                if done is not None:
                    feed_sent.append(done - t0)
                    marks.append(await asyncio.to_thread(feed_marks, engine, identifier,
                                                         committed))
            finally:
                await asyncio.to_thread(delete_warning, engine, identifier)
            await asyncio.sleep(0.5)
    finally:
        await asyncio.to_thread(stop_dispatcher, process)
    out = series.summary()
    out["grids"] = grids
    out["all_feed_rows_sent_s"] = spread(feed_sent) if feed_sent else None
    if marks:
        out["dispatcher_first_batch_began_s"] = spread([m[0] for m in marks])
        out["dispatcher_last_batch_began_s"] = spread([m[1] for m in marks])
    return out


def print_command(s: dict[str, Any]) -> None:
    first, every = s.get("command_first_event_s"), s.get("command_every_event_s")
    if first:
        print(f"    command clients: first event median {first['median'] * 1000:,.0f} ms; every "
              f"grid's event median "
              + (f"{every['median'] * 1000:,.0f} ms, max {every['max'] * 1000:,.0f} ms"
                 if every else "never") + (
                  f"; all feed rows sent {s['all_feed_rows_sent_s']['median']:.2f} s (the "
                  f"dispatcher began its first batch "
                  f"{s['dispatcher_first_batch_began_s']['median']:.2f} s, its last "
                  f"{s['dispatcher_last_batch_began_s']['median']:.2f} s after the commit)"
                  if s.get("dispatcher_first_batch_began_s") else ""), flush=True)


def print_sse_row(label: str, s: dict[str, Any]) -> None:
    def ms(v: float | None) -> str:
        return "never" if v is None else f"{v * 1000:,.0f}"

    pooled = s["pooled_s"] or {}
    print(f"  {label}: time until 50/95/99/100 % hold it (median of {s['rounds']} rounds, ms) "
          f"{ms(s['t50_s']['median'])} / {ms(s['t95_s']['median'])} / "
          f"{ms(s['t99_s']['median'])} / {ms(s['t100_s']['median'])}; pooled p50 "
          f"{ms(pooled.get('median'))}, p95 {ms(pooled.get('p95'))}, max "
          f"{ms(pooled.get('max'))}; within 1 s {s['pooled_within_1s_pct']} %; "
          f"missing {s['missing']}", flush=True)


async def sse_async(engine: Engine, url: str, args: argparse.Namespace) -> dict[str, Any]:
    largest = max(args.clients)
    with Session(engine) as session:
        circle, metres, touched = draw_circle(session, args.centre[0], args.centre[1],
                                                max(largest, 2000))
    wkb = bytes(shapely.to_wkb(circle))
    result: dict[str, Any] = {"grids": touched, "radius_m": round(metres),
                              "command_clients": args.command}
    log = tempfile.NamedTemporaryFile(prefix="gridgis-delivery-serve-", suffix=".log",  # noqa: SIM115
                                      delete=False)
    print(f"sse: {args.clients} grid heads (of a {touched:,}-grid circle), then "
          f"{args.command} command clients too; {args.rounds} rounds each; log {log.name}",
          flush=True)
    if not args.no_peer:
        script_port_free = port_free(PEER_FANOUT_PORT)
        port = PEER_FANOUT_PORT if script_port_free else free_port()
        peer = start_peer(port, log)
        try:
            result["peer"] = await peer_counts(port, args.clients, args.rounds)
            if script_port_free:
                result["peer_script"] = await asyncio.to_thread(peer_script, args.clients, 10)
        finally:
            stop(peer)
    people = make_people(engine, wkb, largest, args.command)
    process = None
    try:
        process, base = serve(url, log)
        port = int(base.rsplit(":", 1)[1])
        result["gridgis"] = await gridgis_counts(engine, url, port, people, circle, touched,
                                                 args, log)
    finally:
        if process is not None:
            stop(process)
        remove_people(engine, people)
        log.close()
    return result


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def sse_part(engine: Engine, url: str, args: argparse.Namespace) -> dict[str, Any]:
    result = asyncio.run(sse_async(engine, url, args))
    peer = result.get("peer", {})
    ours = result["gridgis"]
    ratios: dict[str, Any] = {}
    for n in args.clients:
        mine, theirs = ours.get(f"notify {n} heads", {}).get("heads"), peer.get(str(n))
        if mine and theirs and mine["pooled_s"] and theirs["pooled_s"]:
            ratios[str(n)] = {"p95_to_peer": round(mine["pooled_s"]["p95"]
                                                   / theirs["pooled_s"]["p95"], 2),
                              "p50_to_peer": round(mine["pooled_s"]["median"]
                                                   / theirs["pooled_s"]["median"], 2),
                              "t100_to_peer": round(mine["t100_s"]["median"]
                                                    / theirs["t100_s"]["median"], 2)}
    result["ratios"] = ratios
    return result


# ---- the report -------------------------------------------------------------------------------

def print_tables(result: dict[str, Any], clients: list[int]) -> None:
    def ms(v: float | None) -> str:
        return "never" if v is None else f"{v * 1000:,.0f}"

    if "webhook" in result:
        print("\n| webhook messages | runs | first arrival | last arrival | all sent (db) | "
              "messages/s | steady messages/s | per-message p50 / p95 |\n|" + "---|" * 8)
        for w in result["webhook"]:
            f = w["figures"]
            print(f"| {w['runs'][0]['queued']:,} | {len(w['runs'])} | "
                  f"{ms(f['first_arrival_s']['median'])} / {ms(f['first_arrival_s']['p95'])} "
                  f"ms | {f['last_arrival_s']['median']:.2f} / {f['last_arrival_s']['p95']:.2f}"
                  f" s | " + (f"{f['all_sent_in_db_s']['median']:.2f} / "
                              f"{f['all_sent_in_db_s']['p95']:.2f} s"
                              if "all_sent_in_db_s" in f else "-")
                  + f" | {f['messages_per_s']['median']:,.0f} | "
                  f"{f['steady_messages_per_s']['median']:,.0f} | "
                  f"{f['latency_p50_s']['median']:.2f} / {f['latency_p95_s']['median']:.2f} s |")
        print("(median / p95 over runs; times from the warning's commit; messages/s: received "
              "/ (last arrival - commit); steady: between first and last arrival)")
    if "sse" in result:
        s = result["sse"]
        print("\n| server | what | clients measured | 50 % | 95 % | 99 % | 100 % | "
              "pooled p50 | pooled p95 | pooled p99 | max | within 1 s |\n|" + "---|" * 12)
        rows = [("peer", "broadcast, 1 message", s.get("peer", {}).get(str(n)))
                for n in clients]
        for key, v in s["gridgis"].items():
            rows.append(("gridgis", f"{key}: heads", v["heads"]))
            if "command" in key:
                rows.append(("gridgis", f"{key}: all (command: every grid's event)",
                             v["all"]))
        for server, what, v in rows:
            if not v:
                continue
            p = v["pooled_s"] or {}
            print(f"| {server} | {what} | {v['clients']:,} | {ms(v['t50_s']['median'])} | "
                  f"{ms(v['t95_s']['median'])} | {ms(v['t99_s']['median'])} | "
                  f"{ms(v['t100_s']['median'])} | {ms(p.get('median'))} | {ms(p.get('p95'))} "
                  f"| {ms(p.get('p99'))} | {ms(p.get('max'))} | {v['pooled_within_1s_pct']} % |")
        print("(ms; 50-100 %: time from the commit (peer: from the POST) until that share of "
              "the clients held it, median over rounds; pooled: every client-round)")
        for n, r in s.get("ratios", {}).items():
            print(f"gridgis heads / peer at {int(n):,} clients: pooled p95 {r['p95_to_peer']}x, "
                  f"p50 {r['p50_to_peer']}x, 100 % {r['t100_to_peer']}x")


def verdicts(result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    s = result.get("sse")
    if not s:
        return out
    for key, v in s["gridgis"].items():
        heads = v["heads"]
        if heads["clients"] >= 2000:
            t99 = heads["t99_s"]["max"]
            out[f"{key}: 99 % of heads within 1 s (every round)"] = (t99 is not None
                                                                     and t99 <= 1.0)
    if "1000" in s.get("ratios", {}):
        out["1,000 heads: pooled p95 no worse than the peer's"] = (
            s["ratios"]["1000"]["p95_to_peer"] <= 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="gridgis_bench")
    parser.add_argument("--part", default="webhook,sse")
    parser.add_argument("--centre", default="113.5,22.58", help="lon,lat of the circles")
    parser.add_argument("--messages", default="1000,5000",
                        help="webhook messages (grids) queued at once; comma-separated")
    parser.add_argument("--webhook-runs", type=int, default=2)
    parser.add_argument("--webhook-timeout", type=float, default=120.0)
    parser.add_argument("--receiver-delay-ms", type=float, default=0.0)
    parser.add_argument("--keep-people-rows", action="store_true")
    parser.add_argument("--stats", choices=("fresh", "as-left"), default="fresh",
                        help="outbox statistics when the messages land (see the doc)")
    parser.add_argument("--clients", default="1000,2000", help="grid heads connected")
    parser.add_argument("--command", type=int, default=5,
                        help="command clients, connected after the heads")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warning-rounds", type=int, default=2)
    parser.add_argument("--no-peer", action="store_true")
    args = parser.parse_args()
    args.centre = tuple(float(v) for v in args.centre.split(","))
    args.clients = sorted(int(v) for v in args.clients.split(","))
    args.messages = [int(v) for v in args.messages.split(",")]
    parts = set(args.part.split(","))
    limit = raise_open_files()
    if limit < max(args.clients) + args.command + 200:
        raise SystemExit(f"open-file limit {limit}: too low for {max(args.clients)} clients")
    for name in ("GRIDGIS_TEAM_WEBHOOKS", "GRIDGIS_DISPATCH_RATES"):
        os.environ.pop(name, None)
    url, engine = use_database(args.db)
    result: dict[str, Any] = {"when": datetime.now(UTC).isoformat(timespec="seconds"),
                              "db": args.db, "machine": machine(engine),
                              "targets": {"sse_99pct_within_s": TARGET_WITHIN_S,
                                          "sse_clients": 2000,
                                          "p95_at_1000_vs_peer": "<= 1x"}}
    try:
        if "webhook" in parts:
            result["webhook"] = [webhook_part(engine, url, args, n) for n in args.messages]
        if "sse" in parts:
            result["sse"] = sse_part(engine, url, args)
    finally:
        vacuum(engine)
    result["verdicts"] = verdicts(result)
    print_tables(result, args.clients)
    for name, met in result["verdicts"].items():
        print(f"target {name}: {'met' if met else 'MISSED'}")
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / "delivery.json"
    path.write_text(json.dumps(result, indent=1, ensure_ascii=False, default=str))
    print(f"written: {path}")
    engine.dispose()


if __name__ == "__main__":
    main()
