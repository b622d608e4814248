"""The live state of the maps: alerts, acknowledgements and progress per grid, hazard areas
and the storm's track, the territory's figures; each reader sees their own scope."""

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.checklist_helpers import busiest_grid, issue_over
from tests.test_warnings import ADVISORY

Login = Callable[..., dict[str, str]]


def test_an_advisory_shows_its_grids_areas_and_track(client: TestClient, session: Session,
                                                     login: Login) -> None:
    command = login("ms-command", "command")
    issued = client.post("/api/warnings", json=ADVISORY, headers=command)
    assert issued.status_code == 200, issued.text
    state = client.get("/api/map/state", headers=command).json()
    reached = {t["code"] for t in issued.json()["targets"]}
    assert set(state["grids"]) == reached
    assert {g["tier"] for g in state["grids"].values()} == {"gale"}
    assert not any(g["acknowledged"] for g in state["grids"].values())
    assert state["totals"]["alerted"] == len(reached)
    assert {f["properties"]["tier"] for f in state["areas"]["features"]} >= {"gale", "storm"}
    (track,) = state["track"]["features"]
    assert track["geometry"]["type"] == "LineString"
    assert len(track["geometry"]["coordinates"]) > 1
    assert state["totals"]["dead_letters"] == 0


def test_progress_and_scope(client: TestClient, session: Session, login: Login) -> None:
    grid = busiest_grid(session)
    _, checklist_id = issue_over(client, session, login("ms-command2", "command"), grid)
    head = login("ms-head", "grid_head", [grid])
    item = session.execute(text("SELECT id FROM checklist_item WHERE checklist_id = :c "
                                "AND kind = 'inspect' ORDER BY id LIMIT 1"),
                           {"c": checklist_id}).scalar_one()
    done = client.patch(f"/api/checklists/items/{item}", json={"state": "done"},
                        headers={**head, "If-Match": '"1"'})
    assert done.status_code == 200
    mine = client.get("/api/map/state", headers=head).json()
    assert list(mine["grids"]) == [grid] and mine["grids"][grid]["finished"] == 1
    assert mine["totals"]["dead_letters"] is None  # the command centre's business
    other = session.execute(text("SELECT code FROM grid WHERE code <> :g ORDER BY code "
                                 "LIMIT 1"), {"g": grid}).scalar_one()
    stranger = client.get("/api/map/state", headers=login("ms-other", "grid_head", [other]))
    assert stranger.json()["grids"] == {}
    assert set(stranger.json()["vulnerable"]) <= {other}
