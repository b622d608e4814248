"""Idempotency keys on issuing a warning: a retry gets the first answer, never a second
warning; a key reused for another request is refused."""

import json
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

Login = Callable[..., dict[str, str]]


def drawn(session: Session, level: str = "orange") -> bytes:
    area = session.execute(text(
        "SELECT ST_AsGeoJSON(ST_Buffer(boundary, -0.0002), 7) FROM grid ORDER BY code LIMIT 1"
    )).scalar_one()
    return json.dumps({"area": json.loads(area), "level": level}).encode()


def warnings(session: Session) -> int:
    return int(session.execute(text("SELECT count(*) FROM warning")).scalar_one())


def test_a_retry_with_the_same_key_gets_the_first_answer(client: TestClient, session: Session,
                                                         login: Login) -> None:
    headers = {**login("key-command", "command"), "Idempotency-Key": "a1b2-c3",
               "Content-Type": "application/json"}
    before = warnings(session)
    first = client.post("/api/warnings", content=drawn(session), headers=headers)
    again = client.post("/api/warnings", content=drawn(session), headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and first.json()["grids"] >= 1
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert warnings(session) == before + 1
    # Without the key, the same area is a second warning.
    plain = {k: v for k, v in headers.items() if k != "Idempotency-Key"}
    assert client.post("/api/warnings", content=drawn(session), headers=plain).status_code == 200
    assert warnings(session) == before + 2


def test_a_key_is_one_request_and_one_user(client: TestClient, session: Session,
                                           login: Login) -> None:
    command = {**login("key-command", "command"), "Content-Type": "application/json"}
    other = {**login("key-admin", "admin"), "Content-Type": "application/json"}
    before = warnings(session)
    ok = client.post("/api/warnings", content=drawn(session),
                     headers={**command, "Idempotency-Key": "k-1"})
    assert ok.status_code == 200
    changed = client.post("/api/warnings", content=drawn(session, "red"),
                          headers={**command, "Idempotency-Key": "k-1"})
    assert changed.status_code == 422 and "different request" in changed.json()["detail"]
    assert warnings(session) == before + 1
    # Keys are per user: another user's k-1 is their own request.
    theirs = client.post("/api/warnings", content=drawn(session),
                         headers={**other, "Idempotency-Key": "k-1"})
    assert theirs.status_code == 200 and "Idempotent-Replayed" not in theirs.headers
    for bad in ("", "x" * 201, "with space"):
        answer = client.post("/api/warnings", content=drawn(session),
                             headers={**command, "Idempotency-Key": bad})
        assert answer.status_code == 422, bad
    assert warnings(session) == before + 2


def test_a_refused_request_leaves_its_key_unused(client: TestClient, session: Session,
                                                login: Login) -> None:
    headers = {**login("key-command", "command"), "Idempotency-Key": "k-bad",
               "Content-Type": "application/json"}
    refused = client.post("/api/warnings", content=b'{"area": 1, "level": "orange"}',
                          headers=headers)
    assert refused.status_code == 422
    assert client.post("/api/warnings", content=drawn(session), headers=headers).status_code == 200
