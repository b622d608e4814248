"""Faults survived by the API, on a real ``gridgis serve`` in a subprocess.

* The database restarting under a grid head's checklist work: the embedded cluster is
  stopped and started again while a grid head keeps changing checklist items. Meanwhile the
  API must answer 503 with a retry hint (never another error, never a hang), then carry on
  by itself; every change the head was told was saved must be in the database at the end.
* The server killed mid-request: the command centre's warning is held at a lock, the server
  is killed, and the client retries with the same Idempotency-Key on a new server.
"""

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from gridgis import auth
from gridgis.db import get_engine
from tests.checklist_helpers import busiest_grid, delete_warning, issue_committed
from tests.live_server import LiveServer, live_server
from tests.test_dispatch_restart import embedded_cluster, server_down

PASSWORD = "correct horse battery"
DOWN_S = 3.0


@dataclass
class Team:
    grid: str
    warning: str
    items: list[int]
    headers: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def team(engine: Engine) -> Iterator[Team]:
    """A grid head and a committed warning over the busiest grid, with its checklist."""
    with Session(engine) as session:
        grid = busiest_grid(session)
    warning = issue_committed(engine, grid)
    with engine.begin() as conn:
        items = list(conn.execute(text(
            "SELECT i.id FROM checklist_item i JOIN checklist c ON c.id = i.checklist_id "
            "JOIN alert a ON a.id = c.alert_id JOIN warning w ON w.id = a.warning_id "
            "WHERE w.identifier = :w AND i.kind = 'contact' ORDER BY i.id LIMIT 4"),
            {"w": warning}).scalars())
    with Session(engine) as session:
        auth.add_user(session, "fault-head", "grid_head", PASSWORD, [grid])
        session.commit()
    assert len(items) == 4
    yield Team(grid, warning, items)
    delete_warning(engine, warning)
    with engine.begin() as conn:
        user = "(SELECT id FROM app_user WHERE username = 'fault-head')"
        conn.execute(text(f"DELETE FROM audit_log WHERE app_user_id = {user}"))
        conn.execute(text(f"DELETE FROM auth_token WHERE app_user_id = {user}"))
        conn.execute(text("DELETE FROM app_user_grid WHERE app_user_id IN "
                          "(SELECT id FROM app_user WHERE username = 'fault-head')"))
        conn.execute(text("DELETE FROM app_user WHERE username = 'fault-head'"))


@dataclass
class Worker:
    """A grid head's phone: writes a new note on each item in turn, as fast as it can,
    repeating a change the API answered 503 to after the wait it was told."""

    server: LiveServer
    team: Team
    saved: dict[int, tuple[int, str]] = field(default_factory=dict)  # item -> (version, note)
    statuses: list[int] = field(default_factory=list)
    retry_hints: list[str | None] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.server.base, timeout=30) as client:
            token = client.post("/api/auth/token",
                                data={"username": "fault-head", "password": PASSWORD})
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            versions = {item: client.get(f"/api/checklists/items/{item}", headers=headers)
                        .headers["ETag"] for item in self.team.items}
            n = 0
            while not self.stop.is_set():
                n += 1
                item = self.team.items[n % len(self.team.items)]
                note = f"call {n}"
                while True:  # this change, until it is saved or found stale
                    answer = client.patch(f"/api/checklists/items/{item}", json={"note": note},
                                          headers={**headers, "If-Match": versions[item]})
                    self.statuses.append(answer.status_code)
                    if answer.status_code == 503:
                        self.retry_hints.append(answer.headers.get("Retry-After"))
                        time.sleep(0.2)  # shorter than told: the test has no time to lose
                        continue
                    break
                if answer.status_code == 200:
                    versions[item] = answer.headers["ETag"]
                    self.saved[item] = (answer.json()["version"], note)
                elif answer.status_code == 412:  # it landed before the answer was lost
                    versions[item] = f'"{answer.json()["current"]["version"]}"'
                else:
                    return  # anything else fails the test below


def test_the_database_restarting_under_checklist_work_loses_no_saved_change(
        database_url: str, team: Team) -> None:
    cluster = embedded_cluster(database_url)
    with live_server(database_url) as server:
        worker = Worker(server, team)
        thread = threading.Thread(target=worker.run, name="fault-head")
        thread.start()
        try:
            _wait_for(lambda: len(worker.statuses) >= 20, 30, "20 changes before the restart")
            with server_down(cluster):
                time.sleep(DOWN_S)
                assert server.process.poll() is None, "the server died with the database"
                assert worker.statuses[-1] == 503 and thread.is_alive()
            restarted = len(worker.statuses)
            _wait_for(lambda: worker.statuses[restarted:].count(200) >= 20, 60,
                      "20 changes saved after the restart")
        finally:
            worker.stop.set()
            thread.join(timeout=60)
    assert not thread.is_alive()
    assert set(worker.statuses) <= {200, 412, 503}, worker.statuses
    assert worker.statuses.count(503) >= 3
    assert set(worker.retry_hints) == {"5"}
    get_engine().dispose()  # its pooled connections died with the server
    with get_engine().connect() as conn:
        now = {row.id: (row.version, row.note) for row in conn.execute(text(
            "SELECT id, version, note FROM checklist_item WHERE id = ANY(:ids)"),
            {"ids": team.items})}
    assert len(worker.saved) == len(team.items)
    assert now == worker.saved  # the last change each was told was saved is the one kept


def _wait_for(condition: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {within_s} s"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def commander(engine: Engine) -> Iterator[str]:
    """A command-centre user, committed (the server reads it with its own connections)."""
    with Session(engine) as session:
        auth.add_user(session, "fault-command", "command", PASSWORD, [])
        session.commit()
    yield "fault-command"
    with engine.begin() as conn:
        user = "(SELECT id FROM app_user WHERE username = 'fault-command')"
        identifiers = list(conn.execute(text(
            f"SELECT identifier FROM warning WHERE app_user_id = {user}")).scalars())
    for identifier in identifiers:
        delete_warning(engine, identifier)
    with engine.begin() as conn:
        for table in ("request_key", "audit_log", "auth_token"):
            conn.execute(text(f"DELETE FROM {table} WHERE app_user_id = {user}"))
        conn.execute(text("DELETE FROM app_user WHERE username = 'fault-command'"))


# Where the server is held when it is killed: before its warning commits (the test holds
# a lock the warning's INSERT waits for), or after (the lock the checklist maker waits for).
HOLD = {"before the commit": "LOCK TABLE warning IN SHARE MODE",
        "after the commit": "SELECT pg_advisory_xact_lock(7324001)"}


@pytest.mark.parametrize("moment", list(HOLD))
def test_a_server_killed_mid_request_is_safe_to_retry_with_the_same_key(
        engine: Engine, database_url: str, commander: str, moment: str) -> None:
    """The command centre issues a warning; the server is killed (SIGKILL) while it works on
    it. The client retries with the same Idempotency-Key on a new server: one warning in
    the end, with its alerts once, whichever side of the commit the kill fell."""
    with Session(engine) as session:
        request = json.dumps({"area": _area(session), "level": "orange"})
    key = f"fault-{moment.replace(' ', '-')}"
    mine = text("SELECT count(*) FROM warning w JOIN app_user u ON u.id = w.app_user_id "
                "WHERE u.username = :u")
    with engine.connect() as conn:
        before = conn.execute(mine, {"u": commander}).scalar_one()
    holder = engine.connect()
    holding = holder.begin()
    holder.execute(text(HOLD[moment]))
    try:
        with live_server(database_url) as server:
            token = _token(server.base, commander)
            outcome: list[object] = []
            sender = threading.Thread(target=lambda: outcome.append(_post(
                server.base, token, key, request)))
            sender.start()
            _wait_for(lambda: _waiting_on_locks(engine) > 0, 30, "the request held at the lock")
            if moment == "after the commit":
                with engine.connect() as conn:
                    assert conn.execute(mine, {"u": commander}).scalar_one() == before + 1
            server.process.kill()
            sender.join(timeout=30)
            assert isinstance(outcome[0], httpx.TransportError)  # the client saw no answer
    finally:
        holding.rollback()
        holder.close()
    _wait_for(lambda: _waiting_on_locks(engine) == 0, 30, "the killed request's backend to end")
    with live_server(database_url) as server:
        answer = _post(server.base, _token(server.base, commander), key, request)
        again = _post(server.base, _token(server.base, commander), key, request)
    assert isinstance(answer, httpx.Response) and answer.status_code == 200, answer
    assert isinstance(again, httpx.Response) and again.status_code == 200
    replayed = answer.headers.get("Idempotent-Replayed") == "true"
    assert replayed == (moment == "after the commit")
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["identifier"] == answer.json()["identifier"]
    with engine.connect() as conn:
        assert conn.execute(mine, {"u": commander}).scalar_one() == before + 1
        alerts, messages = conn.execute(text(
            "SELECT count(DISTINCT a.id), count(o.id) FROM alert a JOIN warning w ON "
            "w.id = a.warning_id LEFT JOIN outbox o ON o.alert_id = a.id "
            "WHERE w.identifier = :w"), {"w": answer.json()["identifier"]}).one()
    assert alerts == answer.json()["grids"] >= 1 and messages >= alerts


def _area(session: Session) -> object:
    grid = busiest_grid(session)
    return json.loads(session.execute(text(
        "SELECT ST_AsGeoJSON(ST_Buffer(boundary, -0.0002), 7) FROM grid WHERE code = :g"),
        {"g": grid}).scalar_one())


def _token(base: str, username: str) -> str:
    answer = httpx.post(f"{base}/api/auth/token",
                        data={"username": username, "password": PASSWORD}, timeout=30)
    return str(answer.json()["access_token"])


def _post(base: str, token: str, key: str, body: str) -> httpx.Response | httpx.TransportError:
    try:
        return httpx.post(f"{base}/api/warnings", content=body, timeout=60, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json",
            "Idempotency-Key": key})
    except httpx.TransportError as exc:
        return exc


def _waiting_on_locks(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE NOT l.granted AND a.datname = current_database()")).scalar_one())


def test_more_requests_than_connections_are_all_answered(database_url: str,
                                                         commander: str) -> None:
    """120 requests at once against 30 connections and 40 threads: before admission, the
    threads all waited for connections held by requests waiting for threads, until the
    pool's 30 s timeout (500s). Now every one is answered, in turn."""
    with live_server(database_url) as server:
        token = _token(server.base, commander)

        async def burst() -> list[int]:
            async with httpx.AsyncClient(base_url=server.base, timeout=60, limits=httpx.Limits(
                    max_connections=200)) as http:
                answers = await asyncio.gather(*(
                    http.get("/api/stations?limit=1", headers={"Authorization": f"Bearer {token}"})
                    for _ in range(120)))
            return [a.status_code for a in answers]

        started = time.monotonic()
        statuses = asyncio.run(burst())
        took = time.monotonic() - started
    assert statuses == [200] * 120
    assert took < 25, f"{took:.1f} s: requests waited for the pool's timeout"


def test_a_request_waiting_too_long_for_its_turn_is_told_to_retry(
        engine: Engine, database_url: str, commander: str) -> None:
    """One connection, one turn: while a request holds it (waiting on a lock), the next is
    answered 503 with Retry-After once its wait is over, and nothing else goes wrong."""
    env = {"GRIDGIS_DB_POOL_SIZE": "1", "GRIDGIS_DB_POOL_OVERFLOW": "0",
           "GRIDGIS_ADMISSION_WAIT_SECONDS": "0.5"}
    holder = engine.connect()
    holding = holder.begin()
    try:
        with live_server(database_url, **env) as server:
            token = _token(server.base, commander)
            headers = {"Authorization": f"Bearer {token}"}
            holder.execute(text("LOCK TABLE station IN ACCESS EXCLUSIVE MODE"))
            first: list[httpx.Response] = []
            slow = threading.Thread(target=lambda: first.append(httpx.get(
                f"{server.base}/api/stations?limit=1", headers=headers, timeout=30)))
            slow.start()
            _wait_for(lambda: _waiting_on_locks(engine) > 0, 20, "the first request at the lock")
            second = httpx.get(f"{server.base}/api/grids?limit=1", headers=headers, timeout=30)
            assert second.status_code == 503 and second.headers["Retry-After"] == "2"
            assert "busy" in second.json()["detail"]
            assert second.headers["x-content-type-options"] == "nosniff"
            holding.rollback()
            slow.join(timeout=30)
            assert first[0].status_code == 200
            again = httpx.get(f"{server.base}/api/grids?limit=1", headers=headers, timeout=30)
            assert again.status_code == 200
    finally:
        if holding.is_active:
            holding.rollback()
        holder.close()
