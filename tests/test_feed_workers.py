"""The live feed across two server processes, as two API workers behind one address.

Each worker LISTENs to PostgreSQL, so an event committed anywhere (by the dispatcher, by a
request on the other worker) reaches the subscribers of every worker, and each subscriber
only what is theirs. This is how gridgis runs beyond one process (bench/SCALING.md).
"""

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from gridgis import auth
from tests.checklist_helpers import delete_warning
from tests.live_server import live_server
from tests.test_feed import bearer, listening, next_event, publish_committed

USERS = {"head_a": "grid_head", "head_b": "grid_head", "command": "command"}


@pytest.fixture(scope="module")
def people(engine: Engine) -> Iterator[tuple[dict[str, str], dict[str, int], list[str]]]:
    """Heads of grids A and B and a command user, with tokens; committed, removed after."""
    with Session(engine) as session:
        grids = list(session.scalars(text("SELECT code FROM grid ORDER BY id LIMIT 2")))
        users = {name: auth.add_user(session, f"workers-{name}", role, "correct horse",
                                     {"head_a": grids[:1], "head_b": grids[1:]}.get(name, []))
                 for name, role in USERS.items()}
        tokens = {name: auth.issue_token(session, user)[0] for name, user in users.items()}
        session.commit()
        ids = {name: user.id for name, user in users.items()}
    yield tokens, ids, grids
    with engine.begin() as conn:
        for table in ("audit_log", "auth_token", "app_user_grid"):
            conn.execute(text(f"DELETE FROM {table} WHERE app_user_id = ANY(:u)"),
                         {"u": list(ids.values())})
        conn.execute(text("DELETE FROM app_user WHERE id = ANY(:u)"), {"u": list(ids.values())})


def test_two_workers_share_the_live_feed(database_url: str, engine: Engine,
                                         people: tuple[dict[str, str], dict[str, int],
                                                       list[str]]) -> None:
    tokens, ids, (grid_a, grid_b) = people
    with engine.connect() as conn:
        area = json.loads(conn.execute(text(
            "SELECT ST_AsGeoJSON(ST_Buffer(boundary, -0.0002), 7) FROM grid WHERE code = :c"),
            {"c": grid_a}).scalar_one())
    warnings: list[str] = []

    async def scenario(one: str, two: str) -> None:
        async with (httpx.AsyncClient(timeout=10) as http,
                    listening(http, one, tokens["head_a"]) as head_a,
                    listening(http, two, tokens["head_b"]) as head_b,
                    listening(http, two, tokens["command"]) as command):
            alert = {"kind": "alert", "grid": grid_a, "warning": "workers-test", "alert": 0,
                     "tier": "area", "level": "orange", "gale_eta": None}
            await asyncio.to_thread(publish_committed, engine, None, alert)
            for events in (head_a, command):  # on both workers, each within 1 s
                got = await next_event(events)
                assert (got["kind"], got["grid"]) == ("alert", grid_a)
            await asyncio.to_thread(publish_committed, engine, ids["head_b"], {
                "kind": "escalation", "grid": grid_b, "warning": "workers-test"})
            got = await next_event(head_b)  # grid A's alert never reached head B
            assert (got["grid"], got["recipient"]) == (grid_b, ids["head_b"])
            assert (await next_event(command))["grid"] == grid_b
            assert head_a.empty()
            # A warning issued through worker one is on worker two's map at once.
            issued = await http.post(f"{one}/api/warnings", headers=bearer(tokens["command"]),
                                     json={"area": area, "level": "blue"})
            assert issued.status_code == 200, issued.text
            warnings.append(issued.json()["identifier"])
            got = await next_event(command, within_s=5)
            assert (got["kind"], got["warning"]) == ("warning", warnings[0])

    try:
        with live_server(database_url) as one, live_server(database_url) as two:
            asyncio.run(scenario(one.base, two.base))
    finally:
        for identifier in warnings:
            delete_warning(engine, identifier)
