"""The roll-up of a warning's checklists per grid, community, street and district: now, at a
past moment, and as a time series; shelters taken back to the moment; scoped by role."""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.checklist_helpers import T0, worked_checklist

Login = Callable[..., dict[str, str]]


def expected_units(session: Session, grid: str) -> dict[str, str]:
    return dict(session.execute(text(
        "SELECT 'grid', g.code FROM grid g WHERE g.code = :g UNION ALL "
        "SELECT 'community', cu.code FROM grid g JOIN admin_unit cu ON cu.id = g.community_id "
        "WHERE g.code = :g UNION ALL "
        "SELECT 'street', st.code FROM grid g JOIN admin_unit cu ON cu.id = g.community_id "
        "JOIN admin_unit st ON st.id = cu.parent_id WHERE g.code = :g UNION ALL "
        "SELECT 'district', di.code FROM grid g JOIN admin_unit cu ON cu.id = g.community_id "
        "JOIN admin_unit st ON st.id = cu.parent_id JOIN admin_unit di ON di.id = st.parent_id "
        "WHERE g.code = :g"), {"g": grid}).all())


def test_the_rollup_adds_up_at_every_level_now_and_in_the_past(
        client: TestClient, session: Session, login: Login) -> None:
    identifier, grid, worked = worked_checklist(client, session, login)
    command = login("ru-cc", "command")
    listed, transfer = worked["listed"], worked["transfer"]
    people = sum(i["people"] for i in listed if i["kind"] == "transfer")
    units = expected_units(session, grid)
    for level, unit in units.items():
        rows = client.get("/api/checklists/rollup",
                          params={"warning": identifier, "level": level}, headers=command)
        assert rows.status_code == 200, rows.text
        (row,) = rows.json()  # one grid reached: one unit at each level
        assert (row["unit"], row["level"], row["grids"]) == (unit, level, 1)
        assert row["items"] == len(listed) and row["finished"] == 2  # the call, the check-in
        assert row["contacted"] == 1 and row["to_transfer"] == people
        assert (row["on_the_way"], row["checked_in"]) == (0, transfer["people"])

    def at(moment: datetime) -> dict[str, Any]:
        answer = client.get("/api/checklists/rollup", headers=command, params={
            "warning": identifier, "level": "grid", "at": moment.isoformat()})
        assert answer.status_code == 200, answer.text
        return answer.json()[0]

    assert at(T0 + timedelta(minutes=5))["finished"] == 0
    quarter = at(T0 + timedelta(minutes=25))
    assert (quarter["finished"], quarter["contacted"]) == (1, 1)
    assert (quarter["on_the_way"], quarter["checked_in"]) == (transfer["people"], 0)
    before = client.get("/api/checklists/rollup", headers=command, params={
        "warning": identifier, "level": "grid", "at": (T0 - timedelta(minutes=1)).isoformat()})
    assert before.json() == []  # the checklist did not exist yet


def test_shelter_occupancy_is_taken_back_to_the_moment(client: TestClient, session: Session,
                                                       login: Login) -> None:
    identifier, grid, worked = worked_checklist(client, session, login)
    transfer = worked["transfer"]
    district = expected_units(session, grid)["district"]
    capacity = session.execute(text(
        "SELECT sum(s.capacity) FROM shelter s JOIN admin_unit cu ON cu.id = s.community_id "
        "JOIN admin_unit st ON st.id = cu.parent_id JOIN admin_unit di ON di.id = st.parent_id "
        "WHERE di.code = :d AND s.retired_at IS NULL"), {"d": district}).scalar_one()
    command = login("ru-cc2", "command")

    def shelters(moment: datetime) -> tuple[int, int]:
        rows = client.get("/api/checklists/rollup", headers=command, params={
            "warning": identifier, "level": "district", "at": moment.isoformat()}).json()
        return rows[0]["shelter_capacity"], rows[0]["shelter_occupancy"]

    now_capacity, now_occupancy = shelters(T0 + timedelta(hours=1))
    before_capacity, before_occupancy = shelters(T0 + timedelta(minutes=25))
    assert now_capacity == before_capacity == capacity
    assert now_occupancy - before_occupancy == transfer["people"]  # the check-in at 30 min


def test_the_series_steps_through_the_work(client: TestClient, session: Session,
                                           login: Login) -> None:
    identifier, _, worked = worked_checklist(client, session, login)
    people = worked["transfer"]["people"]
    answer = client.get("/api/checklists/series", headers=login("ru-cc3", "command"), params={
        "warning": identifier, "level": "street", "step": 600, "since": T0.isoformat(),
        "until": (T0 + timedelta(minutes=40)).isoformat()})
    assert answer.status_code == 200, answer.text
    points = [(p["at"], p["finished"], p["on_the_way"], p["checked_in"]) for p in answer.json()]
    minute = [(T0 + timedelta(minutes=m)).isoformat().replace("+00:00", "Z")
              for m in range(0, 50, 10)]
    assert [p[1:] for p in points] == [(0, 0, 0), (1, 0, 0), (1, people, 0), (2, 0, people),
                                       (2, 0, people)]
    assert [datetime.fromisoformat(p[0]) for p in points] == [
        datetime.fromisoformat(m) for m in minute]


def test_the_rollup_is_scoped_and_checked(client: TestClient, session: Session,
                                          login: Login) -> None:
    identifier, grid, worked = worked_checklist(client, session, login)
    other = session.execute(text("SELECT code FROM grid WHERE code <> :g ORDER BY code LIMIT 1"),
                            {"g": grid}).scalar_one()
    stranger = login("ru-stranger", "grid_head", [other])
    url = "/api/checklists/rollup"
    own = client.get(url, params={"warning": identifier, "level": "grid"},
                     headers=worked["head"])
    assert [r["unit"] for r in own.json()] == [grid]
    assert client.get(url, params={"warning": identifier}, headers=stranger).json() == []
    command = login("ru-cc4", "command")
    refused = {
        "unknown warning": ({"warning": "no-such-warning"}, 404),
        "unknown level": ({"warning": identifier, "level": "province"}, 422),
        "time without a zone": ({"warning": identifier, "at": "2026-09-06T08:00:00"}, 422),
    }
    for why, (params, status) in refused.items():
        answer = client.get(url, params=params, headers=command)
        assert answer.status_code == status, (why, answer.text)
    too_fine = client.get("/api/checklists/series", headers=command, params={
        "warning": identifier, "step": 10, "since": T0.isoformat(),
        "until": (T0 + timedelta(days=1)).isoformat()})
    assert too_fine.status_code == 422, too_fine.text
    assert "at most" in too_fine.json()["detail"]
    backwards = client.get("/api/checklists/series", headers=command, params={
        "warning": identifier, "since": T0.isoformat(),
        "until": (T0 - timedelta(hours=1)).isoformat()})
    assert backwards.status_code == 422 and "before" in backwards.json()["detail"]


def test_a_cancelled_chain_rolls_up_the_same_by_either_message(
        client: TestClient, session: Session, login: Login) -> None:
    identifier, grid, _ = worked_checklist(client, session, login)
    command = login("ru-cc5", "command")
    cancel = client.post("/api/warnings", headers={
        **command, "Content-Type": "application/cap+xml"}, content=f"""
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>ru-cancel-1</identifier>
<sender>test</sender><sent>2026-09-06T18:00:00+08:00</sent><status>Actual</status>
<msgType>Cancel</msgType><scope>Public</scope>
<references>gridgis:ru,{identifier},2026-09-06T16:00:00+08:00</references><info>
<category>Met</category><event>台风</event><urgency>Past</urgency><severity>Minor</severity>
<certainty>Observed</certainty></info></alert>""".encode())
    assert cancel.status_code == 200, cancel.text
    by_first, by_cancel = (client.get("/api/checklists/rollup", headers=command, params={
        "warning": name, "level": "community"}).json() for name in (identifier, "ru-cancel-1"))
    assert by_first == by_cancel and by_first[0]["closed"] == 1
    assert by_first[0]["finished"] == 2  # the work done before the cancel stays counted
    assert by_first[0]["at_risk"] == 0  # a closed checklist is no longer at risk
    report = client.get("/api/warnings/ru-cancel-1/report.csv", headers=command)
    assert report.status_code == 200 and grid in report.text
