"""Issuing a warning over one grid and finding its checklist, for the checklist tests."""

import json

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session


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
