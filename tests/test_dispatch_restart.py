"""The dispatcher through a restart of the database server, mid-send.

The server the tests use (the embedded cluster) is stopped while a ``gridgis dispatch``
process is sending, kept down long enough for every kind of statement to fail (claims, marks,
escalation, the LISTEN connection), and started again: the same process must carry on,
lose nothing, and leave every key once at the receiver after it drops repeats.
"""

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from gridgis.cluster import Cluster
from gridgis.settings import get_settings
from tests.receivers import http_receiver
from tests.test_dispatch import (  # noqa: F401  (world, empty_outbox: fixtures used here)
    World,
    dispatcher_process,
    empty_outbox,
    queue,
    rows,
    world,
)

DOWN_S = 2.0  # how long the server stays down: several claim passes and lease lengths


def embedded_cluster(database_url: str) -> Cluster:
    """Return the embedded cluster holding the test database, or skip: a server named by
    DATABASE_URL is not ours to restart."""
    cluster = Cluster.from_settings(get_settings())
    url = make_url(database_url)
    if url.host not in ("127.0.0.1", "localhost") or url.port != cluster.port \
            or not cluster.running():
        pytest.skip("the test database is not on the embedded cluster")
    return cluster


@contextmanager
def server_down(cluster: Cluster) -> Iterator[None]:
    """Stop the cluster for the length of the block; start it again whatever happens."""
    try:
        assert cluster.stop(), "the cluster was not running"
        yield
    finally:
        cluster.start()  # every later test needs it, failed assertion or not
        assert cluster.running()


def test_database_restart_mid_send_loses_nothing_and_the_dispatcher_carries_on(
        engine: Engine, world: World, database_url: str) -> None:  # noqa: F811
    cluster = embedded_cluster(database_url)
    with http_receiver(delay_s=0.02) as receiver:
        keys = queue(engine, world, "webhook", 300)
        dispatcher = dispatcher_process(database_url, receiver.url)
        try:
            deadline = time.monotonic() + 30
            while len(receiver.arrivals) < 80:
                assert dispatcher.poll() is None, "the dispatcher died before the restart"
                assert time.monotonic() < deadline, "80 messages did not arrive in 30 s"
                time.sleep(0.01)

            with server_down(cluster):
                time.sleep(DOWN_S)
                assert dispatcher.poll() is None, "the dispatcher died with the server down"
                while_down = len(receiver.arrivals)
            restarted = time.monotonic()
            assert while_down < len(keys), "everything was sent before the server went down"

            deadline = restarted + 30
            while any(r["state"] != "sent" for r in rows(engine, keys).values()):
                assert dispatcher.poll() is None, "the dispatcher died after the restart"
                assert time.monotonic() < deadline, {
                    state: sum(r["state"] == state for r in rows(engine, keys).values())
                    for state in ("queued", "sending", "failed", "dead")}
                time.sleep(0.05)
            finished_s = time.monotonic() - restarted
        finally:
            alive = dispatcher.poll() is None
            dispatcher.send_signal(signal.SIGTERM)
            out, err = dispatcher.communicate(timeout=30)
            print(err)  # the dispatcher's log, shown by pytest when the test fails
        assert alive, err
        assert dispatcher.returncode == 0, err
        assert "dispatch: sent" in out

    # The process saw the server go (its claims failed, and said so), then carried on.
    assert "claiming failed (OperationalError)" in err, err
    raw = receiver.keys()
    assert set(raw) == set(keys)  # none lost: every key arrived at least once
    assert len(receiver.delivered()) == len(keys)  # after dropping repeats: exactly once each
    final = rows(engine, keys)
    assert all(r["state"] == "sent" and r["sent_at"] for r in final.values())
    # A key came twice only when its row was claimed again (its mark was lost with the server).
    repeated = {k for k in raw if raw.count(k) > 1}
    assert all(final[k]["attempts"] >= 2 for k in repeated), repeated
    assert finished_s < 20, finished_s


def test_a_lost_listener_listens_again_and_a_notify_still_wakes(
        engine: Engine, world: World) -> None:  # noqa: F811 (the fixture imported above)
    """Its LISTEN connection killed, an idle dispatcher polling only every 30 s listens again
    on a new one and still sends a new row within a second of its NOTIFY."""
    from sqlalchemy import text

    from tests.test_dispatch import dispatcher_thread, settings, webhook

    def listeners() -> list[int]:
        with engine.connect() as conn:
            return list(conn.execute(text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND query = 'LISTEN gridgis_outbox'")).scalars())

    with http_receiver() as receiver:
        config = settings(team_webhooks=webhook(receiver.url), dispatch_poll_seconds=30.0)
        with dispatcher_thread(config, engine, join_s=40):
            deadline = time.monotonic() + 10
            while not (before := listeners()):
                assert time.monotonic() < deadline, "the dispatcher never listened"
                time.sleep(0.05)
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": before[0]})
            deadline = time.monotonic() + 10
            while not [pid for pid in listeners() if pid not in before]:
                assert time.monotonic() < deadline, "the dispatcher did not listen again"
                time.sleep(0.05)
            [key] = queue(engine, world, "webhook")
            queued_at = time.monotonic()
            while rows(engine, [key])[key]["state"] != "sent":
                assert time.monotonic() - queued_at < 2.0, "a NOTIFY no longer wakes it"
                time.sleep(0.02)
    assert receiver.keys() == [key]
