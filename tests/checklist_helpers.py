"""Issuing a warning over one grid, finding its checklist and working it, for the checklist
tests."""

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from gridgis.alerts import flows, intake
from gridgis.alerts.schemas import DrawnWarningIn

Login = Callable[..., dict[str, str]]
T0 = datetime(2026, 9, 6, 8, 0, tzinfo=UTC)


def busiest_grid(session: Session) -> str:
    """The grid with the most households to move under the 'area' rules (risky buildings)."""
    return session.execute(text(
        "SELECT g.code FROM grid g JOIN building b ON b.grid_id = g.id "
        "JOIN resident r ON r.building_id = b.id AND r.moved_out_at IS NULL "
        "WHERE b.risk_flags && '{dilapidated,work_shed,temporary}' "
        "GROUP BY g.code ORDER BY count(DISTINCT r.household_code) DESC LIMIT 1")).scalar_one()


def issue_over(client: TestClient, session: Session, headers: dict[str, str],
               grid: str) -> tuple[str, int]:
    """Issue a drawn warning just inside ``grid``; return its identifier and checklist id."""
    area = json.loads(session.execute(text(
        "SELECT ST_AsGeoJSON(ST_Buffer(boundary, -0.0002), 7) FROM grid WHERE code = :g"),
        {"g": grid}).scalar_one())
    answer = client.post("/api/warnings", json={"area": area, "level": "orange"},
                         headers=headers)
    assert answer.status_code == 200, answer.text
    identifier = answer.json()["identifier"]
    checklist_id = session.execute(text(
        "SELECT c.id FROM checklist c JOIN alert a ON a.id = c.alert_id JOIN warning w "
        "ON w.id = a.warning_id JOIN grid g ON g.id = c.grid_id "
        "WHERE w.identifier = :i AND g.code = :g"), {"i": identifier, "g": grid}).scalar_one()
    return identifier, checklist_id


def worked_checklist(client: TestClient, session: Session,
                     login: Login) -> tuple[str, str, dict[str, Any]]:
    """Issue a warning over the busiest grid and work three items, 10, 20 and 30 minutes in:
    a call made, a household gone from home, the same household checked in. Times are set
    on the rows (the test runs in one transaction, where now() stands still)."""
    grid = busiest_grid(session)
    identifier, checklist_id = issue_over(client, session, login("ru-command", "command"), grid)
    head = login("ru-head", "grid_head", [grid])
    listed = client.get(f"/api/checklists/{checklist_id}/items", headers=head).json()
    contact = next(i for i in listed if i["kind"] == "contact")
    transfer = next(i for i in listed if i["kind"] == "transfer" and i["shelter"])
    steps = [(contact, {"state": "done"}),
             (transfer, {"stage": "left_home", "head_count": transfer["people"]}),
             (transfer, {"stage": "checked_in"})]
    for item, change in steps:
        version = client.get(f"/api/checklists/items/{item['id']}", headers=head).headers["ETag"]
        answer = client.patch(f"/api/checklists/items/{item['id']}", json=change,
                              headers={**head, "If-Match": version})
        assert answer.status_code == 200, answer.text
    session.execute(text("UPDATE checklist SET created_at = :t WHERE id = :c"),
                    {"t": T0, "c": checklist_id})
    session.execute(text("UPDATE checklist_item SET created_at = :t WHERE checklist_id = :c"),
                    {"t": T0, "c": checklist_id})
    session.execute(text(
        "UPDATE checklist_event e SET at = :t + make_interval(mins => CAST(10 * n.rank AS int)) "
        "FROM (SELECT id, row_number() OVER (ORDER BY id) AS rank FROM checklist_event "
        "WHERE checklist_id = :c) n WHERE e.id = n.id"), {"t": T0, "c": checklist_id})
    session.commit()
    return identifier, grid, {"contact": contact, "transfer": transfer, "listed": listed,
                              "head": head}


def drawn_over(session: Session, grid: str) -> intake.Incoming:
    """An orange warning drawn just inside ``grid``."""
    area = session.execute(text(
        "SELECT ST_AsGeoJSON(ST_Buffer(boundary, -0.0002), 7) FROM grid WHERE code = :g"),
        {"g": grid}).scalar_one()
    return intake.read_drawn(DrawnWarningIn(area=json.loads(area), level="orange"), "test")


def issue_committed(engine: Engine, grid: str) -> str:
    """Issue (and commit) an orange warning drawn just inside ``grid``, with its checklist's
    items; return its identifier."""
    with Session(engine) as session:
        incoming = drawn_over(session, grid)
        flows.issue_committed(session, None, incoming)
    return incoming.identifier


def delete_warning(engine: Engine, identifier: str) -> None:
    """Take a committed warning away again, with its alerts, messages and checklists."""
    alerts = ("SELECT a.id FROM alert a JOIN warning w ON w.id = a.warning_id "
              "WHERE w.identifier = :w")
    with engine.begin() as conn:
        conn.execute(text(f"DELETE FROM outbox WHERE alert_id IN ({alerts})"), {"w": identifier})
        conn.execute(text(f"DELETE FROM alert WHERE id IN ({alerts})"), {"w": identifier})
        conn.execute(text("DELETE FROM warning WHERE identifier = :w"), {"w": identifier})
