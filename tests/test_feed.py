"""The live feed over a real server (uvicorn in a thread of this process) and acknowledgement.

The server commits for real, so the module's users, tokens and warning are committed through
``engine`` and deleted afterwards.
"""

import asyncio
import contextlib
import json
import statistics
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from gridgis import auth
from gridgis.alerts import feed
from gridgis.errors import InvalidInput
from tests.conftest import free_port

Received = tuple[float, dict[str, Any]]  # (perf_counter when read, event)


@dataclass(frozen=True)
class World:
    base: str
    grid_a: str
    grid_b: str
    warning: str
    alert_id: int
    tokens: dict[str, str]  # head_a, head_b, command, planner
    ids: dict[str, int]


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[str]:
    """The app, served by uvicorn in a thread on a loopback port."""
    from gridgis.main import create_app

    app = create_app()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, name="feed-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=15)


@pytest.fixture(scope="module")
def world(server: str, engine: Engine) -> Iterator[World]:
    """Heads of grids A and B, a command user, a planner; a warning over grid A only."""
    with Session(engine) as session:
        grid_a, grid_b = session.scalars(text("SELECT code FROM grid ORDER BY id LIMIT 2")).all()
        users = {"head_a": auth.add_user(session, "feed-head-a", "grid_head", "correct horse",
                                         [grid_a]),
                 "head_b": auth.add_user(session, "feed-head-b", "grid_head", "correct horse",
                                         [grid_b]),
                 "command": auth.add_user(session, "feed-command", "command", "correct horse", []),
                 "planner": auth.add_user(session, "feed-planner", "planner", "correct horse", [])}
        tokens = {name: auth.issue_token(session, user)[0] for name, user in users.items()}
        area = json.loads(session.execute(text(
            "SELECT ST_AsGeoJSON(ST_Buffer(boundary, -0.0002), 7) FROM grid WHERE code = :c"),
            {"c": grid_a}).scalar_one())
        session.commit()
        ids = {name: user.id for name, user in users.items()}
    answer = httpx.post(f"{server}/api/warnings", headers=bearer(tokens["command"]), timeout=30,
                        json={"area": area, "level": "orange", "headline": "live feed test"})
    assert answer.status_code == 200, answer.text
    issued = answer.json()
    assert [t["code"] for t in issued["targets"]] == [grid_a]
    with engine.connect() as conn:
        alert_id = conn.execute(text(
            "SELECT a.id FROM alert a JOIN warning w ON w.id = a.warning_id "
            "WHERE w.identifier = :i"), {"i": issued["identifier"]}).scalar_one()
    yield World(server, grid_a, grid_b, issued["identifier"], alert_id, tokens, ids)
    with engine.begin() as conn:
        warning_id = conn.execute(text("SELECT id FROM warning WHERE identifier = :i"),
                                  {"i": issued["identifier"]}).scalar_one()
        conn.execute(text("DELETE FROM outbox WHERE alert_id IN "
                          "(SELECT id FROM alert WHERE warning_id = :w)"), {"w": warning_id})
        conn.execute(text("DELETE FROM alert WHERE warning_id = :w"), {"w": warning_id})
        conn.execute(text("DELETE FROM warning WHERE id = :w"), {"w": warning_id})
        conn.execute(text("DELETE FROM audit_log WHERE app_user_id = ANY(:u)"),
                     {"u": list(ids.values())})
        conn.execute(text("DELETE FROM app_user WHERE id = ANY(:u)"), {"u": list(ids.values())})


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def publish_committed(engine: Engine, recipient: int | None, payload: dict[str, Any]) -> float:
    """Publish one event in its own committed transaction; return perf_counter at commit."""
    with Session(engine) as session:
        feed.publish(session, recipient, payload)
        started = time.perf_counter()
        session.commit()
    return started


@contextlib.asynccontextmanager
async def listening(http: httpx.AsyncClient, base: str,
                    token: str) -> AsyncIterator[asyncio.Queue[Received]]:
    """Open the feed as ``token``; yield the queue of its events once it is subscribed."""
    events: asyncio.Queue[Received] = asyncio.Queue()
    connected = asyncio.Event()

    async def read() -> None:
        async with http.stream("GET", f"{base}/api/feed", headers=bearer(token)) as answer:
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/event-stream")
            event_id = None
            async for line in answer.aiter_lines():
                if line == ": connected":
                    connected.set()
                elif line.startswith("id: "):
                    event_id = line[4:]
                elif line.startswith("data: "):
                    event = json.loads(line[6:])
                    assert event["id"] == event_id
                    events.put_nowait((time.perf_counter(), event))

    reader = asyncio.create_task(read())
    ready = asyncio.create_task(connected.wait())
    await asyncio.wait({reader, ready}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
    if reader.done():
        reader.result()  # raises what went wrong
    assert connected.is_set(), "the feed did not say it was connected"
    try:
        yield events
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


async def next_event(events: asyncio.Queue[Received], within_s: float = 1.0) -> dict[str, Any]:
    return (await asyncio.wait_for(events.get(), within_s))[1]


def test_feed_and_ack_reach_the_grid_and_the_command_centre_only(world: World,
                                                                 engine: Engine) -> None:
    alert = {"kind": "alert", "grid": world.grid_a, "warning": world.warning,
             "alert": world.alert_id, "tier": "area", "level": "orange", "gale_eta": None}
    ack_url = f"{world.base}/api/alerts/{world.alert_id}/ack"

    async def marker(recipient: int | None, grid: str) -> None:
        await asyncio.to_thread(publish_committed, engine, recipient, {
            "kind": "escalation", "grid": grid, "warning": world.warning, "note": "marker"})

    async def scenario() -> None:
        async with (httpx.AsyncClient(timeout=10) as http,
                    listening(http, world.base, world.tokens["head_a"]) as head_a,
                    listening(http, world.base, world.tokens["head_b"]) as head_b,
                    listening(http, world.base, world.tokens["command"]) as command):
            await asyncio.to_thread(publish_committed, engine, None, alert)
            for events in (head_a, command):  # each within 1 s of the commit
                got = await next_event(events)
                assert (got["kind"], got["grid"], got["warning"], got["alert"]) == (
                    "alert", world.grid_a, world.warning, world.alert_id)
            # Head B hears nothing of grid A: the next event it gets is one addressed to it.
            await marker(world.ids["head_b"], world.grid_b)
            assert (await next_event(head_b))["recipient"] == world.ids["head_b"]
            assert (await next_event(command))["note"] == "marker"  # the command sees all

            answers = {
                "other grid": await http.post(ack_url, headers={
                    **bearer(world.tokens["head_b"]), "If-Match": '"1"'}),
                "command": await http.post(ack_url, headers={
                    **bearer(world.tokens["command"]), "If-Match": '"1"'}),
                "stale": await http.post(ack_url, headers={
                    **bearer(world.tokens["head_a"]), "If-Match": '"7"'}),
                "no version": await http.post(ack_url, headers=bearer(world.tokens["head_a"])),
                "no token": await http.post(ack_url, headers={"If-Match": '"1"'}),
            }
            assert {k: a.status_code for k, a in answers.items()} == {
                "other grid": 404, "command": 403, "stale": 412, "no version": 428,
                "no token": 401}
            assert answers["stale"].json()["current"]["version"] == 1
            assert head_a.empty() and command.empty()  # refusals publish nothing

            acked = await http.post(ack_url, headers={**bearer(world.tokens["head_a"]),
                                                      "If-Match": '"1"'})
            assert acked.status_code == 200, acked.text
            assert acked.headers["ETag"] == '"2"'
            body = acked.json()
            assert (body["version"], body["acknowledged_by"]) == (2, "feed-head-a")
            for events in (command, head_a):
                got = await next_event(events)
                assert (got["kind"], got["alert"], got["version"], got["by"]) == (
                    "ack", world.alert_id, 2, "feed-head-a")

            again = await http.post(ack_url, headers={**bearer(world.tokens["head_a"]),
                                                      "If-Match": '"1"'})
            assert again.status_code == 200 and again.json() == body  # idempotent
            await marker(None, world.grid_a)  # no second 'ack' before it
            assert (await next_event(command))["note"] == "marker"
            await marker(world.ids["head_b"], world.grid_b)  # nor any 'ack' for head B
            assert (await next_event(head_b))["note"] == "marker"

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_feed_needs_a_login_and_is_documented(world: World) -> None:
    answer = httpx.get(f"{world.base}/api/feed", timeout=5)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    paths = httpx.get(f"{world.base}/openapi.json", timeout=5).json()["paths"]
    assert "text/event-stream" in paths["/api/feed"]["get"]["responses"]["200"]["content"]


def test_history_shows_each_alert_to_the_command_and_its_grid_only(world: World) -> None:
    def get(path: str, who: str) -> httpx.Response:
        return httpx.get(f"{world.base}{path}", headers=bearer(world.tokens[who]), timeout=5)

    listed = get(f"/api/alerts?warning={world.warning}", "command").json()
    assert [(a["id"], a["grid"], a["level"]) for a in listed] == [
        (world.alert_id, world.grid_a, "orange")]
    assert listed[0]["deliveries"]["feed"].get("queued", 0) >= 1  # the grid team's feed rows
    assert get(f"/api/alerts?warning={world.warning}", "head_a").json()[0]["id"] == world.alert_id
    assert get(f"/api/alerts?grid={world.grid_a}", "head_b").json() == []
    assert get(f"/api/alerts?warning={world.warning}", "planner").status_code == 403

    one = get(f"/api/alerts/{world.alert_id}", "head_a")
    assert one.status_code == 200 and one.headers["ETag"] == f'"{one.json()["version"]}"'
    assert ("feed", "feed-head-a") in {(o["channel"], o["recipient"])
                                       for o in one.json()["outbox"]}
    assert get(f"/api/alerts/{world.alert_id}", "head_b").status_code == 404


def test_two_hundred_clients_each_get_one_event(world: World, engine: Engine) -> None:
    """Fan-out on loopback; the publish -> receive figures are printed, not asserted."""
    clients = 200

    async def scenario() -> list[float]:
        limits = httpx.Limits(max_connections=clients + 10)
        async with (httpx.AsyncClient(timeout=30, limits=limits) as http,
                    contextlib.AsyncExitStack() as stack):
            feeds = await asyncio.gather(*(
                stack.enter_async_context(listening(http, world.base, world.tokens["head_a"]))
                for _ in range(clients)))
            committed = await asyncio.to_thread(publish_committed, engine, None, {
                "kind": "update", "grid": world.grid_a, "warning": world.warning,
                "alert": world.alert_id})
            received = await asyncio.wait_for(
                asyncio.gather(*(events.get() for events in feeds)), 10)
        assert all(event["kind"] == "update" for _, event in received)
        return sorted((at - committed) * 1000 for at, _ in received)

    latencies = asyncio.run(asyncio.wait_for(scenario(), 90))
    assert len(latencies) == clients
    p95 = latencies[int(0.95 * (clients - 1))]
    print(f"\nlive feed fan-out, {clients} clients: p50 {statistics.median(latencies):.1f} ms, "
          f"p95 {p95:.1f} ms, max {latencies[-1]:.1f} ms (commit -> read)")


def test_listener_comes_back_after_losing_the_database(world: World, engine: Engine) -> None:
    """The server's LISTEN connection is killed (no restart): clients get 'resync', then more."""
    async def scenario() -> None:
        async with (httpx.AsyncClient(timeout=10) as http,
                    listening(http, world.base, world.tokens["command"]) as command,
                    listening(http, world.base, world.tokens["head_b"]) as head_b):
            killed = await asyncio.to_thread(_kill_listener, engine)
            assert killed >= 1
            for events in (command, head_b):  # everyone, whatever their scope
                assert (await next_event(events, within_s=10))["kind"] == "resync"
            await asyncio.to_thread(publish_committed, engine, None, {
                "kind": "cancel", "grid": world.grid_b, "warning": world.warning})
            for events in (command, head_b):
                assert (await next_event(events))["kind"] == "cancel"

    asyncio.run(asyncio.wait_for(scenario(), 60))


def _kill_listener(engine: Engine) -> int:
    with engine.connect() as conn:
        return len(conn.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'gridgis-feed' AND datname = current_database()")).all())


# Without a server: the payload rules and the fan-out rules.

def test_events_are_compact_and_kept_under_the_notify_limit() -> None:
    encoded = feed.encode_event(7, {"kind": "alert", "grid": "G1", "warning": "W",
                                    "headline": "台风" * 3000})
    event = json.loads(encoded)
    assert event["recipient"] == 7 and event["trimmed"] and "headline" not in event
    assert len(encoded.encode()) < 8000 and event["id"]
    with pytest.raises(InvalidInput, match="even when trimmed"):
        feed.encode_event(None, {"kind": "alert", "grid": "G" * 9000})
    with pytest.raises(InvalidInput, match="kind"):
        feed.encode_event(None, {"kind": "gossip", "grid": "G1"})


def test_events_are_packed_several_to_a_notify_in_order_and_fanned_out_each(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch of events is a few NOTIFYs, each under PostgreSQL's 8000 bytes, one event per
    line; the broadcaster hands each line to its own recipient."""
    monkeypatch.setattr(feed.Broadcaster, "start", lambda self: None)
    encoded = [feed.encode_event(n, {"grid": f"G{n}", "id": f"e{n}", "headline": "台风" * 40})
               for n in range(300)]
    payloads = feed.pack(encoded)
    assert 1 < len(payloads) < 300
    assert all(len(p.encode()) <= feed.MAX_PAYLOAD_BYTES for p in payloads)
    assert [line for p in payloads for line in feed.unpack(p)] == encoded
    assert feed.pack([]) == [] and feed.pack(encoded[:1]) == encoded[:1]

    async def scenario() -> None:
        hub = feed.Broadcaster({})
        hub.listening.set()
        heads = [await hub.subscribe(feed.FeedScope(n, False, frozenset({f"G{n}"})))
                 for n in (0, 150, 299)]
        assert sum(hub.fan_out(p) for p in payloads) == 3
        for head in heads:
            frame = head.queue.get_nowait()
            assert frame is not None
            user = head.scope.user_id
            assert frame == f"id: e{user}\ndata: {encoded[user]}\n\n".encode()

    asyncio.run(scenario())


def test_fan_out_follows_scopes_and_drops_a_slow_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed.Broadcaster, "start", lambda self: None)
    monkeypatch.setattr(feed, "GRID_QUEUE", 2)

    async def scenario() -> None:
        hub = feed.Broadcaster({})
        hub.listening.set()
        head_a = await hub.subscribe(feed.FeedScope(1, False, frozenset({"A"})))
        head_b = await hub.subscribe(feed.FeedScope(2, False, frozenset({"B"})))
        command = await hub.subscribe(feed.FeedScope(3, True))
        assert hub.fan_out(feed.encode_event(None, {"grid": "A"})) == 2  # head A, command
        # The same news addressed to each of grid B's team reaches the command centre once.
        for _ in range(2):
            hub.fan_out(feed.encode_event(2, {"grid": "B", "warning": "W", "kind": "update"}))
        assert (head_a.queue.qsize(), head_b.queue.qsize(), command.queue.qsize()) == (1, 2, 2)
        hub.fan_out(feed.encode_event(None, {"grid": "B"}))  # head B's queue (2) is full
        assert head_b.dropped
        assert hub.fan_out(feed.encode_event(None, {"grid": "B"})) == 1  # the command only
        assert hub.fan_out(feed.encode_event(None, {"grid": "A"})) == 2  # the others go on
        frames = feed.frames(head_b)  # its stream says why it ends, and ends
        assert [f async for f in frames][-1].startswith(b": dropped")

    asyncio.run(scenario())


def test_frames_waiting_go_out_in_one_write_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """A burst (a warning's events to a command-centre client) is one write, not one per
    event; each frame is the NOTIFY payload itself, the stream still ends when told."""
    monkeypatch.setattr(feed.Broadcaster, "start", lambda self: None)

    async def scenario() -> None:
        hub = feed.Broadcaster({})
        hub.listening.set()
        command = await hub.subscribe(feed.FeedScope(3, True))
        payloads = [feed.encode_event(None, {"grid": f"G{n}", "id": f"e{n}"}) for n in range(3)]
        for payload in payloads:
            assert hub.fan_out(payload) == 1
        stream = feed.frames(command)
        assert (await anext(stream)).startswith(b"retry:")
        burst = await anext(stream)
        assert burst == b"".join(f"id: e{n}\ndata: {p}\n\n".encode()
                                 for n, p in enumerate(payloads))
        monkeypatch.setattr(feed, "FRAMES_PER_WRITE", 2)  # a write stays small
        for payload in payloads:
            hub.fan_out(payload)
        command.queue.put_nowait(None)  # the end, right behind an event
        frames = [f"id: e{n}\ndata: {p}\n\n".encode() for n, p in enumerate(payloads)]
        assert [chunk async for chunk in stream] == [frames[0] + frames[1], frames[2]]

    asyncio.run(scenario())
