"""The dispatcher against real receivers on loopback: shapes, keys, retries, limits, crashes.

The dispatcher reads committed rows with its own connections, so the module's warning, alert,
user and outbox rows are committed through ``engine`` and deleted afterwards.
"""

import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from gridgis import auth
from gridgis.alerts import channels, dead_letters, dispatch, feed, pacing
from gridgis.settings import PROJECT_DIR, Settings, TeamRoute
from tests.conftest import free_port
from tests.receivers import Arrival, http_receiver, smtp_receiver

GALE_ETA = "2024-09-05T18:00:00+00:00"  # 9月6日 02:00 in Beijing time


@dataclass(frozen=True)
class World:
    alert_id: int
    grid: str
    warning: str
    user_id: int  # a grid worker with a phone and an e-mail address


@pytest.fixture(scope="module")
def world(engine: Engine) -> Iterator[World]:
    identifier = f"dispatch-test-{uuid.uuid4()}"
    with engine.begin() as conn:
        grid_id, grid = conn.execute(text("SELECT id, code FROM grid ORDER BY id LIMIT 1")).one()
        warning_id = conn.execute(text(
            "INSERT INTO warning (identifier, sender, sent, source, msg_type, status, level, "
            "level_rank, event, headline) VALUES (:i, 'test', now(), 'drawn', 'alert', "
            "'actual', 'orange', 3, '台风', '台风“摩羯”逼近') RETURNING id"),
            {"i": identifier}).scalar_one()
        alert_id = conn.execute(text(
            "INSERT INTO alert (warning_id, grid_id, tier, coverage, gale_eta) VALUES "
            "(:w, :g, 'gale', 1.0, :eta) RETURNING id"),
            {"w": warning_id, "g": grid_id, "eta": GALE_ETA}).scalar_one()
        user_id = conn.execute(text(
            "INSERT INTO app_user (username, role, password_hash, phone, email) VALUES "
            "('dispatch-worker', 'grid_worker', '-', '+86 13800000001', "
            "'worker@grid.example') RETURNING id")).scalar_one()
    yield World(alert_id, grid, identifier, user_id)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM outbox WHERE alert_id = :a OR app_user_id = :u"),
                     {"a": alert_id, "u": user_id})
        conn.execute(text("DELETE FROM alert WHERE id = :a"), {"a": alert_id})
        conn.execute(text("DELETE FROM warning WHERE id = :w"), {"w": warning_id})
        conn.execute(text("DELETE FROM app_user WHERE id = :u"), {"u": user_id})


@pytest.fixture(autouse=True)
def empty_outbox(world: World, engine: Engine) -> Iterator[None]:
    """Each test starts and ends with none of this module's rows in the outbox."""
    yield
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM outbox WHERE alert_id = :a"), {"a": world.alert_id})


def queue(engine: Engine, world: World, channel: str, count: int = 1,
          **payload: Any) -> list[str]:
    """Commit ``count`` queued rows for the world's alert; return their idempotency keys."""
    run = uuid.uuid4().hex[:8]
    keys = [f"{world.alert_id}:test-{run}-{i}:{channel}" for i in range(count)]
    body = {"kind": "alert", "warning": world.warning, "grid": world.grid, "tier": "gale",
            "level": "orange", "event": "台风", "headline": "台风“摩羯”逼近",
            "gale_eta": GALE_ETA, "exercise": False, **payload}
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO outbox (alert_id, app_user_id, channel, idempotency_key, kind, payload) "
            "VALUES (:a, :u, :c, :k, :kind, CAST(:p AS jsonb))"),
            [{"a": world.alert_id, "u": world.user_id if channel in ("sms", "email", "feed")
              else None, "c": channel, "k": key, "kind": body["kind"], "p": json.dumps(body)}
             for key in keys])
    return keys


def rows(engine: Engine, keys: list[str]) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        found = conn.execute(text(
            "SELECT idempotency_key, state, attempts, last_error, sent_at FROM outbox "
            "WHERE idempotency_key = ANY(:k)"), {"k": keys}).mappings()
        return {row["idempotency_key"]: dict(row) for row in found}


def settings(**overrides: Any) -> Settings:
    """Delivery settings for tests: short waits, no rate limits, no real servers."""
    base: dict[str, Any] = {
        "dispatch_concurrency": 4, "dispatch_max_attempts": 5, "dispatch_lease_seconds": 5.0,
        "dispatch_backoff_seconds": 0.05, "dispatch_backoff_max_seconds": 1.0,
        "dispatch_poll_seconds": 0.05, "dispatch_timeout_seconds": 5.0, "dispatch_rates": {},
        "smtp_host": None, "sms_gateway_url": None, "team_webhooks": {}}
    return Settings(**{**base, **overrides})


def webhook(url: str, channel: str = "webhook", secret: str | None = None,
            prefix: str = "") -> dict[str, TeamRoute]:
    return {prefix: TeamRoute.model_validate({"channel": channel, "url": url,
                                              "secret": secret})}


def drain(engine: Engine, config: Settings, keys: list[str],
          within_s: float = 10.0) -> dict[str, dict[str, Any]]:
    """Run ``--once`` passes until every row is sent or dead (retries come due meanwhile)."""
    deadline = time.monotonic() + within_s
    while True:
        dispatch.run_dispatcher(config, once=True, engine=engine)
        states = rows(engine, keys)
        if all(r["state"] in ("sent", "dead") for r in states.values()):
            return states
        assert time.monotonic() < deadline, states
        time.sleep(0.02)


EXPECTED_TEXT = "【台风橙色预警】网格 {grid}：台风“摩羯”逼近，预计7级大风 9月6日 02:00 到达，" \
                "请立即查看转移清单并确认。"


def test_webhook_posts_json_with_the_idempotency_key(engine: Engine, world: World) -> None:
    with http_receiver() as receiver:
        keys = queue(engine, world, "webhook", 3)
        tally = dispatch.run_dispatcher(settings(team_webhooks=webhook(receiver.url + "hook")),
                                        once=True, engine=engine)
    assert tally.sent == 3
    assert sorted(receiver.keys()) == sorted(keys)
    for arrival in receiver.arrivals:
        assert arrival.path == "/hook"
        assert arrival.headers["Idempotency-Key"] == arrival.body["idempotency_key"]
        assert arrival.headers["Content-Type"] == "application/json"
        assert arrival.body["grid"] == world.grid and arrival.body["warning"] == world.warning
        assert arrival.body["text"] == EXPECTED_TEXT.format(grid=world.grid)
    assert all(r["state"] == "sent" and r["attempts"] == 1 and r["sent_at"]
               for r in rows(engine, keys).values())


def test_wecom_markdown_to_the_longest_matching_prefix(engine: Engine, world: World) -> None:
    with http_receiver() as receiver:
        routes = {**webhook(receiver.url + "everyone", "wecom"),
                  **webhook(receiver.url + "ours?key=robot-key", "wecom", prefix=world.grid[:8]),
                  **webhook(receiver.url + "other", "wecom", prefix=world.grid + "9")}
        keys = queue(engine, world, "wecom")
        dispatch.run_dispatcher(settings(team_webhooks=routes), once=True, engine=engine)
    [arrival] = receiver.arrivals
    assert (arrival.path, arrival.query) == ("/ours", {"key": "robot-key"})
    assert arrival.key == keys[0]
    assert set(arrival.body) == {"msgtype", "markdown"} and arrival.body["msgtype"] == "markdown"
    content = arrival.body["markdown"]["content"]
    assert content.startswith("**台风橙色预警**\n" + EXPECTED_TEXT.format(grid=world.grid))
    assert keys[0] in content


def test_dingtalk_markdown_signed_as_dingtalk_documents(engine: Engine, world: World) -> None:
    secret = "SEC" + uuid.uuid4().hex
    with http_receiver() as receiver:
        keys = queue(engine, world, "dingtalk", kind="update")
        config = settings(team_webhooks=webhook(receiver.url + "robot/send?access_token=tok",
                                                "dingtalk", secret))
        dispatch.run_dispatcher(config, once=True, engine=engine)
    [arrival] = receiver.arrivals
    assert arrival.query["access_token"] == "tok"
    timestamp = arrival.query["timestamp"]
    assert abs(int(timestamp) - time.time() * 1000) < 60_000
    expected = base64.b64encode(hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(),
                                         hashlib.sha256).digest()).decode()
    assert arrival.query["sign"] == expected
    markdown = arrival.body["markdown"]
    assert arrival.body["msgtype"] == "markdown" and set(markdown) == {"title", "text"}
    assert markdown["title"] == "台风橙色预警·更新"
    assert "请查看更新后的转移清单并确认" in markdown["text"] and keys[0] in markdown["text"]


def test_sms_gateway_gets_the_template_the_key_and_credentials(engine: Engine,
                                                               world: World) -> None:
    with http_receiver() as receiver:
        keys = queue(engine, world, "sms", headline=None, exercise=True)
        config = settings(sms_gateway_url=receiver.url + "sms", sms_gateway_key="gw-key",
                          sms_template="【{event}{level}预警】网格{grid}：大风预计{eta}到达。")
        dispatch.run_dispatcher(config, once=True, engine=engine)
    [arrival] = receiver.arrivals
    assert arrival.headers["Authorization"] == "Bearer gw-key"
    message = f"【台风橙色预警】网格{world.grid}：大风预计9月6日 02:00到达。"
    assert arrival.body == {"phone": "+86 13800000001", "idempotency_key": keys[0],
                            "message": message}
    assert arrival.headers["Idempotency-Key"] == keys[0]


def test_email_carries_a_message_id_derived_from_the_key(engine: Engine, world: World) -> None:
    port = free_port()
    with smtp_receiver(port) as receiver:
        keys = queue(engine, world, "email", exercise=True)
        config = settings(smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False,
                          smtp_from="预警 <alerts@gridgis.example>")
        dispatch.run_dispatcher(config, once=True, engine=engine)
    [mail] = receiver.messages
    assert mail["Message-ID"] == channels.message_id(keys[0], "alerts@gridgis.example")
    assert mail["Message-ID"].endswith("@gridgis.example>")
    assert mail["X-Idempotency-Key"] == keys[0] and mail["To"] == "worker@grid.example"
    assert mail["Subject"] == f"【演练】【台风橙色预警】网格 {world.grid}"
    body = mail.get_content()
    assert body.startswith("【演练】" + EXPECTED_TEXT.format(grid=world.grid)) and keys[0] in body
    assert rows(engine, keys)[keys[0]]["state"] == "sent"


def test_500_twice_then_200_retries_with_backoff(engine: Engine, world: World) -> None:
    def flaky(arrival: Arrival, seen: int) -> int:
        return 500 if seen < 2 else 200

    with http_receiver(flaky) as receiver:
        keys = queue(engine, world, "webhook")
        config = settings(team_webhooks=webhook(receiver.url), dispatch_backoff_seconds=0.2)
        row = drain(engine, config, keys)[keys[0]]
    assert (row["state"], row["attempts"], row["last_error"]) == ("sent", 3, "webhook: HTTP 500")
    first, second, third = (a.at for a in receiver.arrivals)
    # Equal jitter: after attempt n the wait is at least half of 0.2 * 2^(n-1) s.
    assert second - first >= 0.1 and third - second >= 0.2
    assert second - first < 1.0 and third - second < 1.5


def test_always_500_goes_dead_and_is_listed(engine: Engine, world: World,
                                            session: Session) -> None:
    with http_receiver(lambda arrival, seen: 500) as receiver:
        keys = queue(engine, world, "webhook")
        row = drain(engine, settings(team_webhooks=webhook(receiver.url),
                                     dispatch_max_attempts=3), keys)[keys[0]]
    assert (row["state"], row["attempts"]) == ("dead", 3) and len(receiver.arrivals) == 3
    [letter] = dead_letters.listed(session, world.warning)
    assert (letter.channel, letter.grid, letter.attempts, letter.last_error) == (
        "webhook", world.grid, 3, "webhook: HTTP 500")
    assert dead_letters.listed(session, "no-such-warning") == []
    assert dead_letters.requeue(session, world.warning) == 1
    assert session.execute(text("SELECT state, attempts FROM outbox WHERE idempotency_key = :k"),
                           {"k": keys[0]}).one() == ("queued", 0)


def test_refusal_is_dead_at_once_and_secrets_stay_out_of_logs(
        engine: Engine, world: World, caplog: pytest.LogCaptureFixture) -> None:
    secret = "robot-secret-" + uuid.uuid4().hex
    with http_receiver(lambda arrival, seen: 400) as receiver:
        keys = queue(engine, world, "dingtalk")
        route = webhook(f"{receiver.url}send?access_token={secret}", "dingtalk", secret)
        with caplog.at_level("DEBUG"):
            dispatch.run_dispatcher(settings(team_webhooks=route), once=True, engine=engine)
    row = rows(engine, keys)[keys[0]]
    assert (row["state"], row["attempts"], row["last_error"]) == ("dead", 1, "dingtalk: HTTP 400")
    assert secret not in caplog.text and "dingtalk: HTTP 400" in caplog.text


def test_unconfigured_channels_go_dead_with_the_setting_to_set(engine: Engine,
                                                               world: World) -> None:
    keys = queue(engine, world, "sms") + queue(engine, world, "email") + \
        queue(engine, world, "wecom")
    dispatch.run_dispatcher(settings(), once=True, engine=engine)
    errors = [r["last_error"] for r in rows(engine, keys).values()]
    assert all(r["state"] == "dead" for r in rows(engine, keys).values())
    assert sorted(errors) == sorted(["no SMS gateway (GRIDGIS_SMS_GATEWAY_URL)",
                                     "no SMTP server (GRIDGIS_SMTP_HOST)",
                                     f"no wecom route for grid {world.grid} "
                                     "(GRIDGIS_TEAM_WEBHOOKS)"])


def test_rate_limit_spaces_the_sends(engine: Engine, world: World) -> None:
    with http_receiver() as receiver:
        queue(engine, world, "webhook", 6)
        config = settings(team_webhooks=webhook(receiver.url), dispatch_rates={"webhook": 10.0})
        dispatch.run_dispatcher(config, once=True, engine=engine)
    times = sorted(a.at for a in receiver.arrivals)
    # 10 a second: the k-th send's slot is 0.1 k s after the first's (a late first send may
    # narrow one gap, never the span).
    assert len(times) == 6
    assert all(t - times[0] >= 0.1 * k - 0.05 for k, t in enumerate(times)), times


def test_a_slot_far_off_hands_the_row_back_until_then(engine: Engine, world: World) -> None:
    """At 2 a second, six sends take 2.5 s: rows further off than a second wait in the
    outbox, not on a thread, and still leave half a second apart. (Six grids' messages to
    one robot: one grid's would go one after another anyway, in order.)"""
    stop, tallies = threading.Event(), []
    with http_receiver() as receiver:
        config = settings(team_webhooks=webhook(receiver.url), dispatch_rates={"webhook": 2.0})
        keys = [key for n in range(6) for key in queue(engine, world, "webhook", grid=f"g{n}")]
        runner = threading.Thread(target=lambda: tallies.append(dispatch.run_dispatcher(
            config, engine=engine, stop=stop)))
        runner.start()
        try:
            deadline = time.monotonic() + 10
            while len(receiver.arrivals) < 6 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            runner.join(timeout=10)
    times = sorted(a.at for a in receiver.arrivals)
    assert sorted(receiver.keys()) == sorted(keys)
    assert all(t - times[0] >= 0.5 * k - 0.1 for k, t in enumerate(times)), times
    assert tallies[0].sent == 6 and tallies[0].released >= 2
    assert all(r["state"] == "sent" and r["attempts"] == 1 for r in rows(engine, keys).values())


def test_exercises_reach_internal_channels_never_public_ones(
        engine: Engine, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    with http_receiver() as receiver:
        config = settings(team_webhooks=webhook(receiver.url))
        internal = queue(engine, world, "webhook", exercise=True)
        dispatch.run_dispatcher(config, once=True, engine=engine)
        assert receiver.arrivals[0].body["text"].startswith("【演练】【台风橙色预警】")
        monkeypatch.setattr(channels, "PUBLIC_CHANNELS", frozenset({"webhook"}))
        public = queue(engine, world, "webhook", exercise=True)
        dispatch.run_dispatcher(config, once=True, engine=engine)
    assert receiver.keys() == internal
    row = rows(engine, public)[public[0]]
    assert (row["state"], row["last_error"]) == (
        "dead", "exercise withheld from public channel webhook")


def feed_listener(database_url: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(database_url.replace("postgresql+psycopg", "postgresql"),
                           autocommit=True)
    conn.execute(f"LISTEN {feed.CHANNEL}")
    return conn


def test_feed_notify_commits_with_the_sent_mark(engine: Engine, world: World,
                                                database_url: str) -> None:
    with feed_listener(database_url) as listener:
        keys = queue(engine, world, "feed", 5)
        tally = dispatch.run_dispatcher(settings(), once=True, engine=engine, only=["feed"])
        events = [json.loads(line) for n in listener.notifies(timeout=1.0)
                  for line in feed.unpack(n.payload)]
    ours = [e for e in events if e.get("alert") == world.alert_id]
    assert tally.sent == 5 and sorted(e["id"] for e in ours) == sorted(keys)
    assert {(e["recipient"], e["grid"], e["kind"]) for e in ours} == {
        (world.user_id, world.grid, "alert")}
    assert all(r["state"] == "sent" for r in rows(engine, keys).values())


def test_a_feed_event_refused_goes_dead_alone_and_the_rest_of_its_batch_goes(
        engine: Engine, world: World, database_url: str) -> None:
    """A feed batch goes in one transaction; one event the feed cannot carry (too big even
    trimmed) rolls it back, and the batch is then sent one by one: that one dead, the rest
    sent, each event once."""
    with feed_listener(database_url) as listener:
        good = queue(engine, world, "feed", 2)
        bad = queue(engine, world, "feed", 1, grid="G" * 9000)
        # A bug making one event (a time no clock shows) is retried alone, not fatal.
        broken = queue(engine, world, "feed", 1, gale_eta="9999-12-31T23:00:00+00:00")
        tally = dispatch.run_dispatcher(settings(), once=True, engine=engine, only=["feed"])
        events = [json.loads(line) for n in listener.notifies(timeout=1.0)
                  for line in feed.unpack(n.payload)]
    assert (tally.sent, tally.dead, tally.failed) == (2, 1, 1)
    assert sorted(e["id"] for e in events if e.get("alert") == world.alert_id) == sorted(good)
    after = rows(engine, good + bad + broken)
    assert [after[k]["state"] for k in good + bad + broken] == ["sent", "sent", "dead", "failed"]
    assert "even when trimmed" in after[bad[0]]["last_error"]
    assert after[broken[0]]["last_error"] == "unexpected OverflowError"


def test_a_rate_limit_on_the_feed_is_kept(engine: Engine, world: World,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """With a rate set for the feed, its messages go one by one through the token bucket,
    not as a batch around it."""
    asked: list[int] = []
    admit = dispatch.RateLimits.admit

    def counted(self: Any, message_id: int, *args: Any) -> float | None:
        asked.append(message_id)
        return admit(self, message_id, *args)

    monkeypatch.setattr(dispatch.RateLimits, "admit", counted)
    keys = queue(engine, world, "feed", 4)
    tally = dispatch.run_dispatcher(settings(dispatch_rates={"feed": 1000.0}), once=True,
                                    engine=engine, only=["feed"])
    assert tally.sent == 4 and len(asked) == 4
    assert all(r["state"] == "sent" for r in rows(engine, keys).values())
    asked.clear()
    queue(engine, world, "feed", 2)
    assert dispatch.run_dispatcher(settings(), once=True, engine=engine, only=["feed"]).sent == 2
    assert asked == []  # no rate: the batch, no bucket


def test_the_feed_takes_turns_and_still_sends_everything(
        engine: Engine, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A feed backlog longer than one turn (batches of 2, a turn of one batch) is all sent,
    in turns with the other channels, before ``--once`` ends."""
    monkeypatch.setattr(dispatch, "FEED_BATCH", 2)
    monkeypatch.setattr(dispatch, "FEED_TURN_S", 0.0)
    keys = queue(engine, world, "feed", 5)
    with http_receiver() as receiver:
        hook = queue(engine, world, "webhook", 1)
        tally = dispatch.run_dispatcher(settings(team_webhooks=webhook(receiver.url)),
                                        once=True, engine=engine)
    assert tally.sent == 6
    assert all(r["state"] == "sent" for r in rows(engine, keys + hook).values())


def test_a_lease_taken_over_sends_no_feed_event(engine: Engine, world: World,
                                                database_url: str) -> None:
    config = settings()
    keys = queue(engine, world, "feed")
    [message] = dispatch.claim(engine, config, 10, ["feed"])
    with engine.begin() as conn:  # another dispatcher claimed it after our lease ran out
        conn.execute(text("UPDATE outbox SET attempts = attempts + 1 WHERE id = :i"),
                     {"i": message.id})
    with feed_listener(database_url) as listener, channels.open_senders(config) as senders:
        run = dispatch._Run(config, engine, senders, dispatch.RateLimits({}, 1.0),
                            threading.Event())
        assert dispatch.deliver(run, message) == "unrecorded"
        assert list(listener.notifies(timeout=0.3)) == []
    assert rows(engine, keys)[keys[0]]["state"] == "sending"


def test_a_lease_run_out_on_the_last_attempt_goes_dead_unsent(engine: Engine,
                                                                world: World) -> None:
    """A dispatcher died sending a message's last attempt: the next one marks it dead (the
    reap), never claims it for an attempt beyond the limit; a younger lease is taken over."""
    config = settings()
    last, earlier = queue(engine, world, "webhook", 2)
    with engine.begin() as conn:
        conn.execute(text(
            "UPDATE outbox SET state = 'sending', next_attempt_at = now() - interval '1 s', "
            "attempts = CASE idempotency_key WHEN :last THEN :max ELSE 1 END "
            "WHERE idempotency_key IN (:last, :earlier)"),
            {"last": last, "earlier": earlier, "max": config.dispatch_max_attempts})
    with http_receiver() as receiver:
        dispatch.run_dispatcher(settings(team_webhooks=webhook(receiver.url)), once=True,
                                engine=engine)
    after = rows(engine, [last, earlier])
    assert (after[last]["state"], after[last]["attempts"]) == ("dead", 5)
    assert after[last]["last_error"].endswith("lease ran out on the last attempt")
    assert (after[earlier]["state"], after[earlier]["attempts"]) == ("sent", 2)
    assert [a.headers["Idempotency-Key"] for a in receiver.arrivals] == [earlier]


def test_a_warning_from_the_api_reaches_sms_and_email(engine: Engine, world: World) -> None:
    """Targeting writes the outbox rows; the dispatcher sends the team's SMS and e-mail."""
    from gridgis.main import create_app

    with Session(engine) as session:
        command = auth.add_user(session, "dispatch-command", "command", "correct horse", [])
        token = auth.issue_token(session, command)[0]
        session.flush()
        command_id = command.id
        session.execute(text("INSERT INTO app_user_grid (app_user_id, grid_id) SELECT :u, id "
                             "FROM grid WHERE code = :g"), {"u": world.user_id, "g": world.grid})
        area = json.loads(session.execute(text(
            "SELECT ST_AsGeoJSON(ST_Buffer(boundary, -0.0002), 7) FROM grid WHERE code = :g"),
            {"g": world.grid}).scalar_one())
        session.commit()
    with TestClient(create_app()) as client:
        answer = client.post("/api/warnings", headers={"Authorization": f"Bearer {token}"},
                             json={"area": area, "level": "orange", "headline": "接口演练"})
    assert answer.status_code == 200, answer.text
    identifier = answer.json()["identifier"]
    port = free_port()
    try:
        with http_receiver() as sms, smtp_receiver(port) as smtp:
            config = settings(sms_gateway_url=sms.url, smtp_host="127.0.0.1", smtp_port=port,
                              smtp_starttls=False)
            tally = dispatch.run_dispatcher(config, once=True, engine=engine,
                                            only=["sms", "email"])
        with engine.connect() as conn:
            queued = conn.execute(text(
                "SELECT channel, idempotency_key, state FROM outbox "
                "WHERE payload->>'warning' = :w AND channel IN ('sms', 'email')"),
                {"w": identifier}).all()
        team_sms = {key for channel, key, _ in queued if channel == "sms"}
        assert team_sms and set(sms.keys()) == team_sms and tally.dead == 0
        assert [m["X-Idempotency-Key"] for m in smtp.messages] == [
            key for channel, key, _ in queued if channel == "email"]
        assert all(state == "sent" for _, _, state in queued)
        ours = next(a for a in sms.arrivals if a.body["phone"] == "+86 13800000001")
        assert ours.body["message"].startswith(f"【台风橙色预警】网格 {world.grid}：接口演练")
    finally:
        with engine.begin() as conn:
            warning_id = conn.execute(text("SELECT id FROM warning WHERE identifier = :i"),
                                      {"i": identifier}).scalar_one()
            conn.execute(text("DELETE FROM outbox WHERE alert_id IN "
                              "(SELECT id FROM alert WHERE warning_id = :w)"), {"w": warning_id})
            conn.execute(text("DELETE FROM alert WHERE warning_id = :w"), {"w": warning_id})
            conn.execute(text("DELETE FROM warning WHERE id = :w"), {"w": warning_id})
            conn.execute(text("DELETE FROM app_user_grid WHERE app_user_id = :u"),
                         {"u": world.user_id})
            conn.execute(text("DELETE FROM auth_token WHERE app_user_id = :u"), {"u": command_id})
            conn.execute(text("DELETE FROM audit_log WHERE app_user_id = :u"), {"u": command_id})
            conn.execute(text("DELETE FROM app_user WHERE id = :u"), {"u": command_id})


@contextmanager
def dispatcher_thread(config: Settings, engine: Engine,
                      join_s: float = 10.0) -> Iterator[threading.Thread]:
    """Run the dispatcher in a thread while inside; stop it and check it stopped."""
    stop = threading.Event()
    runner = threading.Thread(target=dispatch.run_dispatcher, args=(config,),
                              kwargs={"engine": engine, "stop": stop})
    runner.start()
    try:
        yield runner
    finally:
        stop.set()
        runner.join(timeout=join_s)
    assert not runner.is_alive(), "the dispatcher did not stop"


def test_queueing_wakes_an_idle_dispatcher(engine: Engine, world: World) -> None:
    """The outbox trigger NOTIFYs on insert: a dispatcher polling every 30 s sends at once."""
    with http_receiver() as receiver:
        config = settings(team_webhooks=webhook(receiver.url), dispatch_poll_seconds=30.0)
        with dispatcher_thread(config, engine):
            time.sleep(0.3)  # idle, listening
            started = time.monotonic()
            keys = queue(engine, world, "webhook")
            while not receiver.arrivals and time.monotonic() - started < 5:
                time.sleep(0.01)
            assert receiver.keys() == keys and time.monotonic() - started < 1.0


def test_backoff_grows_with_jitter_and_stops_at_the_cap() -> None:
    waits = [dispatch.backoff_seconds(n, 10.0, 900.0) for n in range(1, 12) for _ in range(20)]
    for n in range(1, 12):
        delay = min(900.0, 10.0 * 2 ** (n - 1))
        mine = waits[(n - 1) * 20:n * 20]
        assert all(delay / 2 <= w <= delay for w in mine) and len(set(mine)) > 1


def dispatcher_process(database_url: str, hook: str, *args: str) -> subprocess.Popen[str]:
    command = ["-m", "gridgis.cli", "dispatch"]
    env = {**os.environ, "GRIDGIS_DATABASE_URL": database_url,
           "GRIDGIS_DISPATCH_CONCURRENCY": "8", "GRIDGIS_DISPATCH_LEASE_SECONDS": "1.5",
           "GRIDGIS_DISPATCH_POLL_SECONDS": "0.1", "GRIDGIS_DISPATCH_BACKOFF_SECONDS": "0.1",
           "GRIDGIS_DISPATCH_RATES": "{}",
           "GRIDGIS_TEAM_WEBHOOKS": json.dumps({"": {"channel": "webhook", "url": hook}})}
    return subprocess.Popen([sys.executable, *command, *args], env=env, cwd=PROJECT_DIR,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_mid_send_loses_nothing_and_receivers_see_each_key_once(
        engine: Engine, world: World, database_url: str) -> None:
    with http_receiver(delay_s=0.02) as receiver:
        keys = queue(engine, world, "webhook", 300)
        first = dispatcher_process(database_url, receiver.url)
        try:
            deadline = time.monotonic() + 30
            while len(receiver.arrivals) < 80:
                assert first.poll() is None and time.monotonic() < deadline, first.stderr
                time.sleep(0.01)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
        states = rows(engine, keys)
        in_flight = [k for k, r in states.items() if r["state"] == "sending"]
        assert in_flight, "killed with no send under way"
        assert 0 < sum(r["state"] == "sent" for r in states.values()) < len(keys)

        second = dispatcher_process(database_url, receiver.url)
        try:
            deadline = time.monotonic() + 30
            while any(r["state"] != "sent" for r in rows(engine, keys).values()):
                assert second.poll() is None and time.monotonic() < deadline, second.stderr
                time.sleep(0.05)
        finally:
            second.send_signal(signal.SIGTERM)
            out, err = second.communicate(timeout=30)
        assert second.returncode == 0, err
        assert "dispatch: sent" in out

    raw = receiver.keys()
    assert set(raw) == set(keys)  # none lost: every key arrived at least once
    assert len(receiver.delivered()) == len(keys)  # after dropping repeats: exactly once each
    repeated = {k for k in raw if raw.count(k) > 1}
    assert repeated <= set(in_flight)  # only what was under way at the kill came twice
    reclaimed = rows(engine, in_flight)
    assert all(r["attempts"] >= 2 for r in reclaimed.values())


def test_default_retries_outlast_a_channel_down_for_ten_minutes() -> None:
    defaults = Settings()
    life = pacing.shortest_life_s(defaults.dispatch_max_attempts,
                                  defaults.dispatch_backoff_seconds,
                                  defaults.dispatch_backoff_max_seconds)
    assert life >= 2 * 600  # the test below plays the same outage out, 200 times faster


OUTAGE_S = 3.0  # ten minutes at the tests' backoff (0.05 s, not 10 s: 200 times faster)


def test_a_channel_down_keeps_messages_waiting_in_order_and_shows_the_backlog(
        engine: Engine, world: World, client: TestClient, login: Callable[..., Any]) -> None:
    """The SMS gateway and a team robot answer 503 for a while: their messages wait (none
    goes dead), the command centre sees them waiting, and once the channel is back each
    recipient gets every message once, in the order they were queued."""
    down = threading.Event()
    down.set()
    accepted: dict[str, list[str | None]] = {"webhook": [], "sms": []}  # keys, as answered 200

    def outage(arrival: Arrival, seen: int) -> int:
        if down.is_set():
            return 503
        accepted["sms" if arrival.path.endswith("sms") else "webhook"].append(arrival.key)
        return 200

    with http_receiver(outage) as receiver:
        # The default retries, 200 times faster: backoff 10 s -> 0.05 s, cap 900 s -> 4.5 s.
        config = settings(team_webhooks=webhook(receiver.url), sms_gateway_url=receiver.url
                          + "sms", dispatch_max_attempts=Settings().dispatch_max_attempts,
                          dispatch_backoff_seconds=0.05, dispatch_backoff_max_seconds=4.5)
        assert pacing.shortest_life_s(config.dispatch_max_attempts, 0.05, 4.5) > 2 * OUTAGE_S
        with dispatcher_thread(config, engine):
            keys: dict[str, list[str]] = {"webhook": [], "sms": []}
            for _ in range(5):  # queued one after another while the channels are down
                for channel, queued in keys.items():
                    queued += queue(engine, world, channel)
                time.sleep(OUTAGE_S / 5)
            command = login("backlog-watch", "command")
            waiting = {c["channel"]: c for c in
                       client.get("/api/delivery/backlog", headers=command).json()}
            state = client.get("/api/map/state", headers=command).json()
            every = keys["webhook"] + keys["sms"]
            assert all(r["state"] != "dead" for r in rows(engine, every).values())
            down.clear()
            deadline = time.monotonic() + 30
            while any(r["state"] != "sent" for r in rows(engine, every).values()):
                assert time.monotonic() < deadline, rows(engine, every)
                time.sleep(0.05)
    for channel in ("webhook", "sms"):
        assert waiting[channel]["waiting"] == 5 and waiting[channel]["retrying"] >= 1
        assert "HTTP 503" in waiting[channel]["last_error"]
    assert state["totals"]["waiting_messages"] >= 10
    for channel, queued in keys.items():
        assert accepted[channel] == queued, channel  # each once, in the order queued
    assert client.get("/api/delivery/backlog", headers=command).json() == []
    head = login("backlog-head", "grid_head", [world.grid])
    assert client.get("/api/delivery/backlog", headers=head).status_code == 403
