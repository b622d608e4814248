"""Escalation of alerts a grid team leaves unacknowledged: community, then street and command.

Most tests run in the rolled-back ``session``: a drawn warning over one grid is issued through
the API, its alert's window is made to have passed (the clock, not the rule, is what the test
moves), and ``escalation.escalate`` takes it up. The last test runs the real dispatcher with a
window of a second and an SMS gateway on loopback.
"""

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from gridgis import auth
from gridgis.alerts import escalation
from gridgis.settings import Settings, get_settings
from tests.receivers import http_receiver
from tests.test_dispatch import dispatcher_thread

Login = Callable[..., dict[str, str]]


@dataclass(frozen=True)
class Issued:
    alert_id: int
    grid: str
    community: str
    street: str
    identifier: str


def drawn_over(session: Session, grid: str, level: str = "orange") -> dict[str, object]:
    area = json.loads(session.execute(text(
        "SELECT ST_AsGeoJSON(ST_Buffer(boundary, -0.0002), 7) FROM grid WHERE code = :g"),
        {"g": grid}).scalar_one())
    return {"area": area, "level": level, "headline": "升级测试"}


@pytest.fixture
def issued(client: TestClient, session: Session, login: Login) -> Issued:
    grid, community, street = session.execute(text(
        "SELECT g.code, c.code, s.code FROM grid g JOIN admin_unit c ON c.id = g.community_id "
        "JOIN admin_unit s ON s.id = c.parent_id ORDER BY g.code LIMIT 1")).one()
    answer = client.post("/api/warnings", json=drawn_over(session, grid),
                         headers=login("esc-command", "command"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["grids"] == 1
    identifier = answer.json()["identifier"]
    alert_id = session.execute(text(
        "SELECT a.id FROM alert a JOIN warning w ON w.id = a.warning_id "
        "WHERE w.identifier = :i"), {"i": identifier}).scalar_one()
    return Issued(alert_id, grid, community, street, identifier)


def window_passes(session: Session, alert_id: int) -> None:
    session.execute(text("UPDATE alert SET ack_due_at = now() - interval '1 second' "
                         "WHERE id = :a"), {"a": alert_id})


def escalation_rows(session: Session, alert_id: int) -> set[tuple[int, str, str]]:
    """(step, recipient, channel) of the alert's escalation messages."""
    rows = session.execute(text(
        "SELECT (o.payload->>'step')::int, u.username, o.channel FROM outbox o "
        "JOIN app_user u ON u.id = o.app_user_id "
        "WHERE o.alert_id = :a AND o.kind = 'escalation'"), {"a": alert_id})
    return {tuple(row) for row in rows}  # type: ignore[misc]


def state(session: Session, alert_id: int) -> tuple[int, bool]:
    """(escalation level, whether another step is scheduled)."""
    level, due = session.execute(text(
        "SELECT escalation_level, ack_due_at FROM alert WHERE id = :a"), {"a": alert_id}).one()
    return level, due is not None


def test_an_alert_gets_its_levels_window(session: Session, issued: Issued) -> None:
    window = session.execute(text(
        "SELECT extract(epoch FROM ack_due_at - now()) / 60 FROM alert WHERE id = :a"),
        {"a": issued.alert_id}).scalar_one()
    assert float(window) == pytest.approx(30.0, abs=0.1)  # orange: 30 minutes by default
    assert escalation.escalate(session, Settings()).alerts == 0  # not due yet


def test_unacknowledged_goes_to_community_then_street_and_command(
        session: Session, issued: Issued) -> None:
    command = auth.add_user(session, "esc-command-2", "command", "correct horse battery", [],
                            phone="13900000002")
    settings = Settings()
    window_passes(session, issued.alert_id)
    assert escalation.escalate(session, settings).alerts == 1
    community_head = f"community-{issued.community}"
    assert escalation_rows(session, issued.alert_id) == {
        (1, community_head, "feed"), (1, community_head, "sms")}
    assert state(session, issued.alert_id) == (1, True)
    assert escalation.escalate(session, settings).alerts == 0  # a new window runs

    window_passes(session, issued.alert_id)
    assert escalation.escalate(session, settings).alerts == 1
    step_two = {row for row in escalation_rows(session, issued.alert_id) if row[0] == 2}
    assert {(2, f"street-{issued.street}", "sms"), (2, command.username, "sms"),
            (2, command.username, "feed")} <= step_two
    assert state(session, issued.alert_id) == (2, False)  # the last step
    assert escalation.escalate(session, settings).alerts == 0


def test_second_channel_follows_the_setting(session: Session, issued: Issued) -> None:
    session.execute(text("UPDATE app_user SET email = 'head@community.example' "
                         "WHERE username = :u"), {"u": f"community-{issued.community}"})
    window_passes(session, issued.alert_id)
    escalation.escalate(session, Settings(escalation_channels=["email"]))
    assert {channel for _, _, channel in escalation_rows(session, issued.alert_id)} == {
        "feed", "email"}


def test_a_community_with_no_head_goes_straight_to_the_street(
        session: Session, issued: Issued) -> None:
    session.execute(text("DELETE FROM app_user_unit WHERE admin_unit_id = "
                         "(SELECT id FROM admin_unit WHERE code = :c)"), {"c": issued.community})
    window_passes(session, issued.alert_id)
    escalation.escalate(session, Settings())
    command = set(session.scalars(text(
        "SELECT username FROM app_user WHERE role = 'command' AND active")))
    assert "esc-command" in command
    assert {(step, who) for step, who, _ in escalation_rows(session, issued.alert_id)} == {
        (2, who) for who in {f"street-{issued.street}", *command}}  # the street and command
    assert state(session, issued.alert_id) == (2, False)


def test_acknowledged_or_stood_down_alerts_never_escalate(
        client: TestClient, session: Session, issued: Issued, login: Login) -> None:
    head = login("esc-head", "grid_head", [issued.grid])
    version = client.get(f"/api/alerts/{issued.alert_id}", headers=head).json()["version"]
    answer = client.post(f"/api/alerts/{issued.alert_id}/ack",
                         headers={**head, "If-Match": f'"{version}"'})
    assert answer.status_code == 200, answer.text
    window_passes(session, issued.alert_id)
    cancel = {"msg_type": "cancel", "references": [issued.identifier]}
    other = session.execute(text("SELECT id FROM grid WHERE code <> :g ORDER BY code LIMIT 1"),
                            {"g": issued.grid}).scalar_one()
    stood_down = session.execute(text(
        "INSERT INTO alert (warning_id, grid_id, tier, coverage, state, ack_due_at) "
        "SELECT warning_id, :g, tier, 1, 'stood_down', now() - interval '1 second' FROM alert "
        "WHERE id = :a RETURNING id"), {"g": other, "a": issued.alert_id}).scalar_one()
    assert escalation.escalate(session, Settings()).alerts == 0
    assert escalation_rows(session, issued.alert_id) == set()
    assert escalation_rows(session, stood_down) == set()
    assert cancel  # (a cancel stands alerts down: covered by the warnings tests)


def test_unit_heads_follow_their_units_alerts_but_read_no_residents(
        client: TestClient, session: Session, issued: Issued, login: Login) -> None:
    auth.add_user(session, "esc-street", "unit_head", "correct horse battery", [],
                  [issued.street])
    headers = login("esc-community", "unit_head")
    session.execute(text(
        "INSERT INTO app_user_unit (app_user_id, admin_unit_id) SELECT u.id, a.id FROM app_user "
        "u, admin_unit a WHERE u.username = 'esc-community' AND a.code = :c"),
        {"c": issued.community})
    window_passes(session, issued.alert_id)
    escalation.escalate(session, Settings())
    listed = client.get(f"/api/alerts?warning={issued.identifier}", headers=headers)
    assert listed.status_code == 200, listed.text
    [record] = listed.json()
    assert (record["grid"], record["escalation_level"]) == (issued.grid, 1)
    assert client.get(f"/api/residents?grid={issued.grid}", headers=headers).status_code == 403
    acked = client.post(f"/api/alerts/{issued.alert_id}/ack",
                        headers={**headers, "If-Match": f'"{record["version"]}"'})
    assert acked.status_code == 403  # the grid team acknowledges; the community chases them


def test_unit_heads_answer_only_for_communities_and_streets(session: Session) -> None:
    from gridgis.errors import InvalidInput

    grid = session.execute(text("SELECT code FROM grid LIMIT 1")).scalar_one()
    with pytest.raises(InvalidInput, match="unknown community or street code"):
        auth.add_user(session, "esc-bad", "unit_head", "correct horse battery", [], [grid])
    with pytest.raises(InvalidInput, match="only a unit_head"):
        auth.add_user(session, "esc-bad", "grid_head", "correct horse battery", [], ["x"])


@pytest.fixture
def committed_warning(engine: Engine) -> Iterator[Callable[[str], None]]:
    """Delete the warnings a test committed, with their alerts and messages."""
    identifiers: list[str] = []
    yield identifiers.append
    with engine.begin() as conn:
        conn.execute(text(
            "DELETE FROM outbox WHERE alert_id IN (SELECT a.id FROM alert a JOIN warning w "
            "ON w.id = a.warning_id WHERE w.identifier = ANY(:i))"), {"i": identifiers})
        conn.execute(text("DELETE FROM alert WHERE warning_id IN (SELECT id FROM warning "
                          "WHERE identifier = ANY(:i))"), {"i": identifiers})
        conn.execute(text("DELETE FROM warning WHERE identifier = ANY(:i)"), {"i": identifiers})


def test_the_dispatcher_escalates_by_sms_when_the_window_runs_out(
        engine: Engine, committed_warning: Callable[[str], None],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A red warning with a window of 0.6 s: the running dispatcher sends the alert to the
    grid team, then, unacknowledged, the escalation to the community's head by SMS."""
    from gridgis.alerts import flows, intake, schemas

    monkeypatch.setenv("GRIDGIS_ACK_WINDOW_MINUTES", '{"red": 0.01}')
    get_settings.cache_clear()
    try:
        with Session(engine) as session:
            before_issue = time.monotonic()  # the window opens later, in the issuing transaction
            grid, community = session.execute(text(
                "SELECT g.code, c.code FROM grid g JOIN admin_unit c ON c.id = g.community_id "
                "ORDER BY g.code DESC LIMIT 1")).one()
            drawn = schemas.DrawnWarningIn.model_validate(drawn_over(session, grid, "red"))
            incoming = intake.read_drawn(drawn, "esc-test")
            committed_warning(incoming.identifier)
            flows.issue(session, None, incoming)
            session.commit()
            head_phone = session.execute(text("SELECT phone FROM app_user WHERE username = :u"),
                                         {"u": f"community-{community}"}).scalar_one()
        with http_receiver() as sms:
            config = Settings(sms_gateway_url=sms.url, dispatch_poll_seconds=0.05,
                              dispatch_rates={})
            with dispatcher_thread(config, engine) as runner:
                deadline = time.monotonic() + 20
                while not any(a.body.get("phone") == head_phone for a in sms.arrivals):
                    assert runner.is_alive() and time.monotonic() < deadline, sms.arrivals
                    time.sleep(0.05)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    message = next(a.body["message"] for a in sms.arrivals if a.body["phone"] == head_phone)
    assert message.startswith(f"【台风红色预警·未确认】网格 {grid}")
    assert "请社区立即联系网格长" in message
    assert any(a.body["phone"] != head_phone for a in sms.arrivals)  # the grid team's alert
    escalated = min(a.at for a in sms.arrivals if a.body["phone"] == head_phone)
    # After the window, not with the alert. Measured from the issue, not from the alert's
    # sending: on a busy machine the dispatcher may start after the window has already run out,
    # and then the alert and its escalation rightly go out together.
    assert escalated - before_issue >= 0.6
