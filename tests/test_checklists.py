"""Evacuation checklists: made with the alert from the data and the rules, shelters allocated,
items worked from the API with versions, stood down with the warning."""

import json
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from gridgis import db
from gridgis.alerts import checklists, dispatch, flows
from gridgis.errors import InvalidInput
from tests.checklist_helpers import busiest_grid, delete_warning, drawn_over, issue_over

Login = Callable[..., dict[str, str]]
XML = {"Content-Type": "application/cap+xml"}


def items(session: Session, checklist_id: int, kind: str) -> list[dict[str, object]]:
    return [dict(row) for row in session.execute(text(
        "SELECT * FROM checklist_item WHERE checklist_id = :c AND kind = :k ORDER BY id"),
        {"c": checklist_id, "k": kind}).mappings()]


def test_the_checklist_follows_the_data_and_the_rules(client: TestClient, session: Session,
                                                      login: Login) -> None:
    grid = busiest_grid(session)
    _, checklist_id = issue_over(client, session, login("cl-command", "command"), grid)
    expected = session.execute(text("""
        SELECT
          (SELECT count(DISTINCT r.household_code) FROM resident r JOIN building b
             ON b.id = r.building_id JOIN grid g ON g.id = b.grid_id
           WHERE g.code = :g AND r.moved_out_at IS NULL
             AND b.risk_flags && '{dilapidated,work_shed,temporary}') AS households,
          (SELECT count(*) FROM resident r JOIN building b ON b.id = r.building_id
           JOIN grid g ON g.id = b.grid_id WHERE g.code = :g AND r.moved_out_at IS NULL
             AND r.vulnerabilities && '{elderly_alone,disabled,bedridden,pregnant,chronic_ill}'
             AND NOT b.risk_flags && '{dilapidated,work_shed,temporary}'  -- those move
          ) AS contacts,
          (SELECT count(*) FROM resident r JOIN building b ON b.id = r.building_id
           JOIN grid g ON g.id = b.grid_id WHERE g.code = :g AND r.moved_out_at IS NULL
             AND r.vulnerabilities && '{elderly_alone,disabled,bedridden,pregnant,chronic_ill}'
          ) AS vulnerable,
          (SELECT count(*) FROM building b JOIN grid g ON g.id = b.grid_id WHERE g.code = :g
             AND b.risk_flags && '{dilapidated,work_shed,temporary,geohazard}') AS inspections
        """), {"g": grid}).one()
    assert expected.households > 0
    assert len(items(session, checklist_id, "transfer")) == expected.households
    assert len(items(session, checklist_id, "contact")) == expected.contacts
    assert expected.vulnerable > expected.contacts > 0  # some vulnerable people move
    assert len(items(session, checklist_id, "inspect")) == expected.inspections
    moving = session.execute(text(
        "SELECT coalesce(sum(people), 0) FROM checklist_item WHERE checklist_id = :c "
        "AND kind = 'transfer'"), {"c": checklist_id}).scalar_one()
    residents = session.execute(text(
        "SELECT count(*) FROM resident r JOIN building b ON b.id = r.building_id "
        "JOIN grid g ON g.id = b.grid_id WHERE g.code = :g AND r.moved_out_at IS NULL "
        "AND b.risk_flags && '{dilapidated,work_shed,temporary}'"), {"g": grid}).scalar_one()
    assert moving == residents  # everyone in those buildings moves


def test_households_get_the_nearest_shelter_with_room_for_their_needs(
        client: TestClient, session: Session, login: Login) -> None:
    grid = busiest_grid(session)
    _, checklist_id = issue_over(client, session, login("cl-command", "command"), grid)
    placed = session.execute(text("""
        SELECT i.people, i.needs, i.distance_m, s.id, s.wheelchair_access, s.medical,
               ST_Distance(CAST(s.location AS geography), CAST(b.location AS geography), false)
               AS d
        FROM checklist_item i JOIN shelter s ON s.id = i.shelter_id
        JOIN building b ON b.id = i.building_id
        WHERE i.checklist_id = :c AND i.kind = 'transfer'"""), {"c": checklist_id}).all()
    assert placed
    for row in placed:
        assert row.distance_m == pytest.approx(row.d, abs=1)
        assert "wheelchair" not in row.needs or row.wheelchair_access
        assert "medical" not in row.needs or row.medical
    over = session.execute(text("""
        SELECT s.code FROM shelter s JOIN checklist_item i ON i.shelter_id = s.id
        WHERE i.kind = 'transfer' GROUP BY s.id HAVING sum(i.people) > s.capacity - s.occupancy
        """)).all()
    assert over == []
    # The nearest shelter meeting a household's needs is its, unless it is full.
    first = session.execute(text("""
        SELECT i.id, i.shelter_id, (SELECT s.id FROM shelter s
            WHERE (NOT 'wheelchair' = ANY(i.needs) OR s.wheelchair_access)
              AND (NOT 'medical' = ANY(i.needs) OR s.medical)
            ORDER BY ST_Distance(CAST(s.location AS geography), CAST(b.location AS geography),
                                 false)
            LIMIT 1) AS nearest
        FROM checklist_item i JOIN building b ON b.id = i.building_id
        WHERE i.checklist_id = :c AND i.kind = 'transfer' ORDER BY i.id LIMIT 1"""),
        {"c": checklist_id}).one()
    assert first.shelter_id == first.nearest
    opened = {row["shelter_id"] for row in items(session, checklist_id, "open_shelter")}
    assert {row.id for row in placed} <= opened  # every shelter sent to is to be opened


def test_full_shelters_pass_people_on_and_none_left_is_flagged(
        client: TestClient, session: Session, login: Login) -> None:
    grid = busiest_grid(session)
    session.execute(text("UPDATE shelter SET occupancy = capacity"))
    _, checklist_id = issue_over(client, session, login("cl-command", "command"), grid)
    people = sum(int(row["people"]) for row in items(session, checklist_id, "transfer"))
    unplaced = session.execute(text("SELECT unplaced FROM checklist WHERE id = :c"),
                               {"c": checklist_id}).scalar_one()
    assert people > 0 and unplaced == people
    listed = client.get(f"/api/checklists?grid={grid}", headers=login("cl-cc", "command"))
    assert listed.json()[0]["unplaced"] == people


def test_a_transfer_is_worked_through_to_the_shelter(client: TestClient, session: Session,
                                                     login: Login) -> None:
    grid = busiest_grid(session)
    _, checklist_id = issue_over(client, session, login("cl-command", "command"), grid)
    head = login("cl-head", "grid_head", [grid])
    item = next(i for i in items(session, checklist_id, "transfer") if i["shelter_id"])
    url = f"/api/checklists/items/{item['id']}"
    got = client.get(url, headers=head)
    assert got.status_code == 200 and got.headers["etag"] == '"1"'
    occupancy = session.execute(text("SELECT occupancy FROM shelter WHERE id = :s"),
                                {"s": item["shelter_id"]}).scalar_one()
    left = client.patch(url, json={"stage": "left_home", "head_count": item["people"]},
                        headers={**head, "If-Match": '"1"'})
    assert left.status_code == 200, left.text
    assert (left.json()["state"], left.json()["version"]) == ("in_progress", 2)
    stale = client.patch(url, json={"stage": "checked_in"}, headers={**head, "If-Match": '"1"'})
    assert stale.status_code == 412 and stale.json()["current"]["stage"] == "left_home"
    arrived = client.patch(url, json={"stage": "checked_in"},
                           headers={**head, "If-Match": '"2"'})
    assert arrived.status_code == 200 and arrived.json()["state"] == "done"
    assert session.execute(text("SELECT occupancy FROM shelter WHERE id = :s"),
                           {"s": item["shelter_id"]}).scalar_one() == occupancy + item["people"]
    back = client.patch(url, json={"stage": "left_home"}, headers={**head, "If-Match": '"3"'})
    assert back.status_code == 422  # forward only
    recount = client.patch(url, json={"head_count": item["people"] - 1},
                           headers={**head, "If-Match": '"3"'})
    assert recount.status_code == 422  # the shelter counted them: no head-count edits now
    assert session.execute(text("SELECT occupancy FROM shelter WHERE id = :s"),
                           {"s": item["shelter_id"]}).scalar_one() == occupancy + item["people"]
    events = session.execute(text("SELECT stage FROM checklist_event WHERE item_id = :i "
                                  "ORDER BY id"), {"i": item["id"]}).scalars().all()
    assert events == ["left_home", "checked_in"]
    progress = client.get(f"/api/checklists?grid={grid}", headers=head).json()[0]
    assert progress["checked_in"] == item["people"]


def test_bad_changes_are_refused_and_change_nothing(client: TestClient, session: Session,
                                                    login: Login) -> None:
    grid = busiest_grid(session)
    _, checklist_id = issue_over(client, session, login("cl-command", "command"), grid)
    other = session.execute(text("SELECT code FROM grid WHERE code <> :g LIMIT 1"),
                            {"g": grid}).scalar_one()
    head = login("cl-head2", "grid_head", [grid])
    item = next(i for i in items(session, checklist_id, "transfer") if i["shelter_id"])
    url = f"/api/checklists/items/{item['id']}"
    match = {"If-Match": '"1"'}
    refusals = {
        "another grid": (login("cl-other", "grid_head", [other]), {"state": "done"}, 403),
        "negative": (head, {"head_count": -1}, 422),
        "more than the household": (head, {"head_count": item["household_size"] + 1}, 422),
        "unable without a reason": (head, {"state": "unable"}, 422),
        "unknown shelter": (head, {"shelter": "no-such-shelter"}, 422),
        "no version": (head, {"state": "done"}, 428),
    }
    for what, (headers, body, status) in refusals.items():
        sent = headers if status == 428 else {**headers, **match}
        answer = client.patch(url, json=body, headers=sent)
        assert answer.status_code == status, (what, answer.text)
    session.execute(text("UPDATE shelter SET occupancy = capacity WHERE id = :s"),
                    {"s": item["shelter_id"]})
    full = client.patch(url, json={"stage": "checked_in"}, headers={**head, **match})
    assert full.status_code == 409 and "has room for 0" in full.json()["detail"]
    row = session.execute(text("SELECT state, stage, head_count, version FROM checklist_item "
                               "WHERE id = :i"), {"i": item["id"]}).one()
    assert tuple(row) == ("pending", "to_transfer", None, 1)


def test_a_cancel_stands_checklists_down_keeping_their_work(
        client: TestClient, session: Session, login: Login) -> None:
    grid = busiest_grid(session)
    command = login("cl-command", "command")
    identifier, checklist_id = issue_over(client, session, command, grid)
    head = login("cl-head3", "grid_head", [grid])
    item = items(session, checklist_id, "inspect")[0]
    url = f"/api/checklists/items/{item['id']}"
    done = client.patch(url, json={"state": "done", "note": "已排查"},
                        headers={**head, "If-Match": '"1"'})
    assert done.status_code == 200, done.text
    cancel = client.post("/api/warnings", headers={**command, **XML}, content=f"""
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>cl-cancel-1</identifier>
<sender>test</sender><sent>2024-09-06T10:00:00+08:00</sent><status>Actual</status>
<msgType>Cancel</msgType><scope>Public</scope>
<references>gridgis:cl-command,{identifier},2024-09-05T16:00:00+08:00</references><info><category>Met</category><event>台风</event>
<urgency>Past</urgency><severity>Minor</severity><certainty>Observed</certainty></info>
</alert>""".encode())
    assert cancel.status_code == 200, cancel.text
    state = session.execute(text("SELECT state FROM checklist WHERE id = :c"),
                            {"c": checklist_id}).scalar_one()
    assert state == "stood_down"
    kept = client.get(url, headers=head).json()
    assert (kept["state"], kept["note"], kept["updated_by"]) == ("done", "已排查", "cl-head3")
    late = client.patch(url, json={"state": "pending"}, headers={**head, "If-Match": '"2"'})
    assert late.status_code == 409


def test_rules_are_checked(tmp_path: Path) -> None:
    bad = tmp_path / "rules.toml"
    bad.write_text(checklists.RULES_FILE.read_text(encoding="utf-8")
                   .replace('"child"', '"kitten"', 1), encoding="utf-8")
    with pytest.raises(InvalidInput, match="unknown kitten"):
        checklists.load_rules(bad)
    missing = tmp_path / "missing.toml"
    missing.write_text("[tier.gale]\ncontact = []\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="tier area needs exactly"):
        checklists.load_rules(missing)


def test_a_checklist_lists_its_items_most_urgent_first(client: TestClient, session: Session,
                                                       login: Login) -> None:
    grid = busiest_grid(session)
    _, checklist_id = issue_over(client, session, login("cl-command", "command"), grid)
    head = login("cl-head4", "grid_head", [grid])
    listed = client.get(f"/api/checklists/{checklist_id}/items", headers=head)
    assert listed.status_code == 200, listed.text
    rows = listed.json()
    total = session.execute(text("SELECT count(*) FROM checklist_item WHERE checklist_id = :c"),
                            {"c": checklist_id}).scalar_one()
    assert len(rows) == total
    assert [r["priority"] for r in rows] == sorted(r["priority"] for r in rows)
    assert rows[0]["kind"] in ("transfer", "open_shelter") and rows[0]["lon"] is not None
    other = session.execute(text("SELECT code FROM grid WHERE code <> :g LIMIT 1"),
                            {"g": grid}).scalar_one()
    stranger = login("cl-other2", "grid_head", [other])
    assert client.get(f"/api/checklists/{checklist_id}/items",
                      headers=stranger).status_code == 403
    assert client.get("/api/checklists/999999/items", headers=head).status_code == 404


def test_households_whose_nearest_shelters_are_full_go_further(
        client: TestClient, session: Session, login: Login) -> None:
    """The few nearest shelters are tried first; when all of them are full (here: as many
    full shelters in the middle of the grid), a second pass looks much further."""
    grid = busiest_grid(session)
    full = session.execute(text("""
        INSERT INTO shelter (code, name, kind, community_id, capacity, occupancy, location,
                             wheelchair_access, medical)
        SELECT 'FULL-' || n, '已满' || n, 'school', g.community_id, 100, 100,
               ST_PointOnSurface(g.boundary), true, true
        FROM grid g, generate_series(1, :n) n WHERE g.code = :g
        RETURNING id"""), {"g": grid, "n": checklists.CANDIDATES[0]}).scalars().all()
    _, checklist_id = issue_over(client, session, login("cl-command", "command"), grid)
    placed = [row for row in items(session, checklist_id, "transfer") if row["shelter_id"]]
    assert placed and not {row["shelter_id"] for row in placed} & set(full)
    ranks = session.execute(text("""
        SELECT (SELECT count(*) FROM shelter s
                WHERE (NOT 'wheelchair' = ANY(i.needs) OR s.wheelchair_access)
                  AND (NOT 'medical' = ANY(i.needs) OR s.medical)
                  AND s.location <-> b.location < a.location <-> b.location) AS nearer
        FROM checklist_item i JOIN building b ON b.id = i.building_id
        JOIN shelter a ON a.id = i.shelter_id
        WHERE i.checklist_id = :c AND i.kind = 'transfer'"""), {"c": checklist_id}).scalars()
    assert max(ranks) >= checklists.CANDIDATES[0]  # found past the few nearest, all full


def test_items_come_after_the_alerts_and_a_lost_request_is_made_up_for(
        session: Session) -> None:
    """The alert's transaction opens the checklist; its items follow the commit. When the
    request dies in between, the checklist waits (made_at null) until a sweep makes it."""
    incoming = drawn_over(session, busiest_grid(session))
    flows.issue(session, None, incoming)
    session.commit()  # the alerts and messages are in; the process "dies" here
    waiting = session.execute(text(
        "SELECT c.id, c.made_at, (SELECT count(*) FROM checklist_item i "
        "WHERE i.checklist_id = c.id) AS items, (SELECT count(*) FROM outbox o "
        "WHERE o.alert_id = a.id) AS messages FROM checklist c JOIN alert a "
        "ON a.id = c.alert_id JOIN warning w ON w.id = a.warning_id "
        "WHERE w.identifier = :w"), {"w": incoming.identifier}).one()
    assert waiting.made_at is None and waiting.items == 0 and waiting.messages > 0
    assert checklists.make_items(session, older_than_s=30) == 0  # a request may be at it
    session.execute(text("UPDATE checklist SET created_at = created_at - interval '1 minute' "
                         "WHERE id = :c"), {"c": waiting.id})
    assert checklists.make_items(session, older_than_s=30) == 1
    made = session.execute(text(
        "SELECT made_at, (SELECT count(*) FROM checklist_item WHERE checklist_id = c.id) "
        "FROM checklist c WHERE id = :c"), {"c": waiting.id}).one()
    assert made[0] is not None and made[1] > 0
    assert checklists.make_items(session) == 0  # made once only


def test_two_makers_never_make_the_same_checklist(engine: Engine) -> None:
    """The dispatcher's sweep skips a checklist another maker holds, and makes it once it is
    free."""
    with Session(engine) as session:
        incoming = drawn_over(session, busiest_grid(session))
        flows.issue(session, None, incoming)  # committed without its items
        session.execute(text(
            "UPDATE checklist SET created_at = created_at - interval '1 minute' WHERE alert_id "
            "IN (SELECT a.id FROM alert a JOIN warning w ON w.id = a.warning_id "
            "WHERE w.identifier = :w)"), {"w": incoming.identifier})
        session.commit()
    try:
        with engine.connect() as holder:  # another maker at work on it
            holder.execute(text(
                "SELECT c.id FROM checklist c JOIN alert a ON a.id = c.alert_id JOIN warning w "
                "ON w.id = a.warning_id WHERE w.identifier = :w FOR UPDATE OF c"),
                {"w": incoming.identifier})
            assert dispatch.make_waiting_checklists(engine) == 0
            holder.rollback()
        assert dispatch.make_waiting_checklists(engine) == 1
        with engine.connect() as conn:
            items = conn.execute(text(
                "SELECT count(*) FROM checklist_item i JOIN checklist c ON c.id = i.checklist_id "
                "JOIN alert a ON a.id = c.alert_id JOIN warning w ON w.id = a.warning_id "
                "WHERE w.identifier = :w"), {"w": incoming.identifier}).scalar_one()
        assert items > 0
    finally:
        delete_warning(engine, incoming.identifier)


def test_an_update_remakes_the_checklist_and_keeps_its_work(
        client: TestClient, session: Session, login: Login) -> None:
    """A CAP update that changes the level re-makes the grid's checklist: nothing is lost or
    doubled, work done stays, and items whose content did not change keep their version."""
    grid = busiest_grid(session)
    command = login("cl-cc-up", "command")
    ring = session.execute(text(
        "SELECT string_agg(ST_Y(p.geom) || ',' || ST_X(p.geom), ' ' ORDER BY p.path) FROM "
        "grid g, ST_DumpPoints(ST_ExteriorRing(ST_GeometryN(ST_Buffer(g.boundary, -0.0002), 1)))"
        " p WHERE g.code = :g"), {"g": grid}).scalar_one()

    def cap(identifier: str, kind: str, severity: str, references: str = "") -> bytes:
        return f"""<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
<identifier>{identifier}</identifier><sender>test</sender>
<sent>2026-09-06T10:00:00+08:00</sent><status>Actual</status><msgType>{kind}</msgType>
<scope>Public</scope>{references}<info><category>Met</category><event>台风</event>
<urgency>Immediate</urgency><severity>{severity}</severity><certainty>Likely</certainty>
<area><areaDesc>网格</areaDesc><polygon>{ring}</polygon></area></info></alert>""".encode()

    first = client.post("/api/warnings", headers={**command, **XML},
                        content=cap("cl-up-1", "Alert", "Moderate"))
    assert first.status_code == 200, first.text
    checklist_id = session.execute(text(
        "SELECT c.id FROM checklist c JOIN alert a ON a.id = c.alert_id JOIN grid g "
        "ON g.id = c.grid_id JOIN warning w ON w.id = a.warning_id "
        "WHERE w.identifier = 'cl-up-1' AND g.code = :g"), {"g": grid}).scalar_one()
    before = {row["id"]: row for row in session.execute(text(
        "SELECT id, kind, version FROM checklist_item WHERE checklist_id = :c"),
        {"c": checklist_id}).mappings()}
    head = login("cl-head-up", "grid_head", [grid])
    inspect = next(i for i in before.values() if i["kind"] == "inspect")
    done = client.patch(f"/api/checklists/items/{inspect['id']}", json={"state": "done"},
                        headers={**head, "If-Match": '"1"'})
    assert done.status_code == 200, done.text
    update = client.post("/api/warnings", headers={**command, **XML}, content=cap(
        "cl-up-2", "Update", "Extreme",
        "<references>test,cl-up-1,2026-09-06T10:00:00+08:00</references>"))
    assert update.status_code == 200 and update.json()["changed"] >= 1, update.text
    after = session.execute(text(
        "SELECT c.made_at, c.alert_id, (SELECT w.identifier FROM alert a JOIN warning w "
        "ON w.id = a.warning_id WHERE a.id = c.alert_id) FROM checklist c WHERE c.id = :c"),
        {"c": checklist_id}).one()
    assert after.made_at is not None and after[2] == "cl-up-2"  # the same checklist, re-made
    items_now = {row["id"]: row for row in session.execute(text(
        "SELECT id, state, version FROM checklist_item WHERE checklist_id = :c"),
        {"c": checklist_id}).mappings()}
    assert set(items_now) == set(before)  # same tier: nothing added, nothing doubled
    assert items_now[inspect["id"]]["state"] == "done"
    assert all(items_now[i]["version"] == before[i]["version"]
               for i in before if i != inspect["id"])


def test_a_failure_making_items_never_refuses_an_accepted_warning(
        client: TestClient, session: Session, login: Login, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The alerts are committed first; when the items then cannot be made (here: the rules
    file is broken), the warning is still accepted, said so, and the items follow later."""
    from gridgis.settings import get_settings

    broken = tmp_path / "rules.toml"
    broken.write_text("[tier.area]\ncontact = 3\n", encoding="utf-8")
    monkeypatch.setenv("GRIDGIS_CHECKLIST_RULES", str(broken))
    get_settings.cache_clear()
    checklists.load_rules.cache_clear()
    try:
        grid = busiest_grid(session)
        area = session.execute(text(
            "SELECT ST_AsGeoJSON(ST_Buffer(boundary, -0.0002), 7) FROM grid WHERE code = :g"),
            {"g": grid}).scalar_one()
        answer = client.post("/api/warnings", json={"area": json.loads(area), "level": "red"},
                             headers=login("cl-cc-broken", "command"))
        assert answer.status_code == 200, answer.text
        assert answer.json()["checklists_made"] is False and answer.json()["grids"] >= 1
    finally:
        monkeypatch.delenv("GRIDGIS_CHECKLIST_RULES")
        get_settings.cache_clear()
        checklists.load_rules.cache_clear()
    identifier = answer.json()["identifier"]
    waiting = session.execute(text(
        "SELECT count(*) FILTER (WHERE c.made_at IS NULL), count(o.id) FROM alert a "
        "JOIN warning w ON w.id = a.warning_id JOIN checklist c ON c.alert_id = a.id "
        "LEFT JOIN outbox o ON o.alert_id = a.id WHERE w.identifier = :w"),
        {"w": identifier}).one()
    assert waiting[0] >= 1 and waiting[1] >= 1  # alerts and messages in, items to come
    assert checklists.make_items(session, identifier) >= 1


def test_at_risk_is_one_rule_everywhere(client: TestClient, session: Session,
                                        login: Login) -> None:
    """Past its due time with work left a checklist is at risk, in its list, the map and the
    roll-up alike; with its work done it is not, however late."""
    grid = busiest_grid(session)
    command = login("cl-risk", "command")
    identifier, checklist_id = issue_over(client, session, command, grid)

    def flags() -> tuple[bool, bool, int]:
        listed = client.get(f"/api/checklists?grid={grid}", headers=command).json()[0]
        state = client.get("/api/map/state", headers=command).json()["grids"][grid]
        rolled = client.get("/api/checklists/rollup", headers=command,
                            params={"warning": identifier, "level": "grid"}).json()[0]
        return listed["at_risk"], state["at_risk"], rolled["at_risk"]

    assert flags() == (False, False, 0)  # a drawn warning has no due time
    session.execute(text("UPDATE checklist SET due_at = now() - interval '1 hour', "
                         "created_at = now() - interval '3 hours' WHERE id = :c"),
                    {"c": checklist_id})
    assert flags() == (True, True, 1)
    session.execute(text(  # every item done, as the API records it (the item and its event)
        "WITH done AS (UPDATE checklist_item SET state = 'done' WHERE checklist_id = :c "
        "RETURNING id, checklist_id) INSERT INTO checklist_event (item_id, checklist_id, "
        "state) SELECT id, checklist_id, 'done' FROM done"), {"c": checklist_id})
    assert flags() == (False, False, 0)


def test_statements_sent_while_python_works_land_in_the_transaction_and_their_errors_surface(
        session: Session) -> None:
    """``db.running``: the statements go to the server in the session's transaction
    (psycopg's pipeline), the block's Python runs meanwhile, a failure is raised at its end."""
    ran = []
    with db.running(session, ["CREATE TEMP TABLE sent_meanwhile (n int)",
                                      "INSERT INTO sent_meanwhile VALUES (:n)"], {"n": 7}):
        ran.append(True)
    assert ran and session.execute(text("SELECT n FROM sent_meanwhile")).scalar_one() == 7
    session.execute(text("SAVEPOINT before_failure"))
    with pytest.raises(psycopg.errors.DivisionByZero), \
            db.running(session, ["SELECT 1 / :zero"], {"zero": 0}):
        ran.append(True)
    assert len(ran) == 2
    session.execute(text("ROLLBACK TO SAVEPOINT before_failure"))


def test_who_moves_is_on_the_transfer_and_who_stays_behind_is_called(
        client: TestClient, session: Session, login: Login, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One person, one item: a vulnerable resident who moves is on their household's transfer
    item, not a contact item too; one who stays behind in that household is called."""
    from gridgis.settings import get_settings

    rules = checklists.RULES_FILE.read_text(encoding="utf-8").replace(
        "[tier.area]\ncontact = [", "[tier.area]\ncontact = [\"disabled\", ", 1).replace(
        "transfer_people = []", "transfer_people = [\"disabled\"]", 1)
    (tmp_path / "rules.toml").write_text(rules, encoding="utf-8")
    monkeypatch.setenv("GRIDGIS_CHECKLIST_RULES", str(tmp_path / "rules.toml"))
    get_settings.cache_clear()
    checklists.load_rules.cache_clear()
    try:
        grid = busiest_grid(session)
        mover, stayer = session.execute(text("""
            INSERT INTO resident (code, building_id, household_code, name, residency,
                                  vulnerabilities)
            SELECT 'ONE-ITEM-' || n, b.id, 'ONE-ITEM-HH', '测试' || n, 'registered',
                   CASE n WHEN 1 THEN '{disabled}' ELSE '{pregnant}' END::text[]
            FROM (SELECT b.id FROM building b JOIN grid g ON g.id = b.grid_id
                  WHERE g.code = :g AND b.retired_at IS NULL AND cardinality(b.risk_flags) = 0
                  ORDER BY b.id LIMIT 1) b, generate_series(1, 2) n
            ORDER BY n RETURNING id"""), {"g": grid}).scalars().all()
        _, checklist_id = issue_over(client, session, login("cl-one-item", "command"), grid)
        called = {row["resident_id"] for row in items(session, checklist_id, "contact")}
        assert stayer in called and mover not in called
        (transfer,) = [row for row in items(session, checklist_id, "transfer")
                       if row["household_code"] == "ONE-ITEM-HH"]
        assert (transfer["people"], transfer["household_size"], transfer["needs"]) == (
            1, 2, ["wheelchair"])
    finally:
        monkeypatch.delenv("GRIDGIS_CHECKLIST_RULES")
        get_settings.cache_clear()
        checklists.load_rules.cache_clear()


@pytest.mark.parametrize(("values", "kind"), [
    ([1, None, -3, 2**31 - 1], "int[]"),
    ([0.1, None, 1e-300, -2.5, 123456.789], "float8[]"),
    ([True, None, False], "bool[]"),
    (['quote " and \\ backslash', None, "", "NULL", "a,b{c}", "网格 1"], "text[]"),
    ([], "int[]"),
])
def test_array_literals_read_back_exactly(session: Session, values: list[object],
                                          kind: str) -> None:
    """``db.array_literal`` (tens of thousands of values as one string): PostgreSQL reads
    back every value as it was, NULLs, quotes, commas and braces too."""
    read = session.execute(text(f"SELECT CAST(:a AS {kind})"),
                           {"a": db.array_literal(values)}).scalar_one()
    assert read == values

