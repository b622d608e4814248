"""Waking the dispatcher: LISTEN/NOTIFY on ``gridgis_outbox``, and stopping on signals.

A trigger on ``outbox`` NOTIFYs the channel once per statement that queues rows (migration
0006), so an idle dispatcher claims new rows at once instead of at its next poll.
"""

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import FrameType

from sqlalchemy import Connection, Engine, text

log = logging.getLogger("gridgis.dispatch")
WAKE_CHANNEL = "gridgis_outbox"  # NOTIFY it when rows are queued: the dispatcher wakes at once


def idle(wake: Callable[[float], bool] | None, stop: threading.Event,
          seconds: float) -> Callable[[float], bool] | None:
    """Wait for a NOTIFY, ``stop`` or ``seconds``. While the listener cannot listen (the
    database went away) this polls; ``wake`` listens again once the database is back."""
    if wake is not None:
        try:
            deadline = time.monotonic() + seconds
            while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
                if wake(min(left, 0.25)):  # slices: a stop is seen within a quarter second
                    break
            return wake
        except Exception as exc:
            log.warning("listening for %s failed (%s); polling until it listens again",
                        WAKE_CHANNEL, type(exc).__name__)
    stop.wait(seconds)
    return wake


@contextmanager
def listening(engine: Engine) -> Iterator[Callable[[float], bool]]:
    """Yield wait(seconds) -> whether ``NOTIFY gridgis_outbox`` came within ``seconds``.

    When its connection breaks (a database restart), wait() LISTENs again on a fresh one
    and says True (rows queued meanwhile woke nobody: claim now), or raises while the
    database is down, to be called again at the next poll."""
    conn: Connection | None = _listen(engine)

    def wait_for(seconds: float) -> bool:
        nonlocal conn
        if conn is None:
            conn = _listen(engine)  # raises while the database is down
            log.info("listening for %s again", WAKE_CHANNEL)
            return True
        raw = conn.connection.driver_connection  # the psycopg connection
        assert raw is not None
        try:
            if not list(raw.notifies(timeout=seconds, stop_after=1)):
                return False
            list(raw.notifies(timeout=0.01))  # and the ones right behind it
            return True
        except Exception:
            broken, conn = conn, None
            with suppress(Exception):
                broken.invalidate()  # not back into the pool
                broken.close()
            log.info("the %s listener lost its connection; listening again", WAKE_CHANNEL)
            conn = _listen(engine)  # at once when the server is up (a killed backend)
            return True

    try:
        yield wait_for
    finally:
        if conn is not None:
            with suppress(Exception):
                conn.execute(text("UNLISTEN *"))
            conn.close()


def _listen(engine: Engine) -> Connection:
    """Return a connection of its own LISTENing on ``WAKE_CHANNEL`` (autocommit)."""
    conn = engine.connect()
    try:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(text(f"LISTEN {WAKE_CHANNEL}"))
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def stopping_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGTERM and SIGINT while inside (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        log.info("%s: finishing the sends under way", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, handle) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
