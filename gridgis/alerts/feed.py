"""The in-app live feed: events published with NOTIFY, fanned out to SSE clients per process.

``publish`` runs ``pg_notify('gridgis_feed', ...)`` in the caller's transaction, so an event
leaves only when the work it reports is committed. A NOTIFY carries one event or several, one
JSON object per line (``pack``): a batch of a warning's events is a few dozen NOTIFYs to
read, not one per person. Every API process runs one ``Broadcaster``:
a background task LISTENing on that channel with its own psycopg connection, handing each
event to the connected clients whose scope it matches. A NOTIFY reaches every listening
process, which is how the feed spans several API workers.

An event is a small JSON object: ``id``, ``kind``, ``recipient`` (an ``app_user`` id, or None
for everyone allowed), ``grid`` (code), ``warning`` (identifier), ``alert`` (id), ``tier``,
``level``, ``gale_eta`` and a few optional extras. Clients reload state (``GET /api/alerts``)
on connecting and on a ``resync`` event, sent after the listener lost the database: events
NOTIFYed while no one listened are gone.
"""

import asyncio
import contextlib
import json
import logging
import random
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import orjson
import psycopg
from psycopg import sql
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from gridgis import auth
from gridgis.errors import InvalidInput
from gridgis.layers.models import Grid
from gridgis.models import AppUser

logger = logging.getLogger(__name__)

CHANNEL = "gridgis_feed"
KINDS = ("alert", "update", "stand_down", "cancel", "ack", "escalation", "warning",
         "progress")
# PostgreSQL refuses a NOTIFY payload of 8000 bytes or more.
MAX_PAYLOAD_BYTES = 7999
# What an event must keep; anything else is dropped first when the payload is too big.
ESSENTIAL = ("id", "kind", "recipient", "grid", "warning", "alert", "tier", "level", "gale_eta",
             "exercise")
# What makes two events the same news, whoever they are addressed to.
NEWS = ("kind", "warning", "grid", "alert", "tier", "level", "gale_eta", "version", "stage",
        "exercise")
SEES_ALL_ROLES = ("command", "admin")

HEARTBEAT_S = 15.0
WRITE_TIMEOUT_S = 30.0  # a client that takes no bytes for this long is cut off
PING = b": ping\n\n"
RETRY_MS = 3000  # how long a browser's EventSource waits before reconnecting
GRID_QUEUE = 256  # events a grid team member's client may fall behind by before it is dropped
ALL_QUEUE = 8192  # the same for a command-centre client, which sees every grid
READY_WAIT_S = 5.0
# Frames waiting for a client go out together, this many at most: a slow phone must take a
# write within WRITE_TIMEOUT_S, so a write stays small (~30 KB).
FRAMES_PER_WRITE = 100
HEALTH_CHECK_S = 30.0
BACKOFF_S = (0.5, 30.0)


# The function scan yields the array in order, so the NOTIFYs are queued in the events' order.
PUBLISH_SQL = text("SELECT count(pg_notify(:channel, p)) "
                   "FROM unnest(CAST(:payloads AS text[])) AS p")


def encode_event(app_user_id: int | None, payload: Mapping[str, Any]) -> str:
    """Return the NOTIFY payload for an event: compact JSON under 8000 bytes, with an id.

    A payload too big loses its optional keys (headline, ...); if it is still too big (a
    code of kilobytes), it is refused with InvalidInput.
    """
    kind = payload.get("kind", "alert")
    if kind not in KINDS:
        raise InvalidInput(f"feed event kind {kind!r}; kinds are {', '.join(KINDS)}")
    event = {**payload, "kind": kind, "recipient": app_user_id}
    event.setdefault("id", new_id())
    encoded = _dumps(event)
    if len(encoded.encode()) > MAX_PAYLOAD_BYTES:
        event = {k: v for k, v in event.items() if k in ESSENTIAL} | {"trimmed": True}
        encoded = _dumps(event)
    if len(encoded.encode()) > MAX_PAYLOAD_BYTES:
        raise InvalidInput(f"feed event of {len(encoded.encode())} bytes even when trimmed; "
                           f"NOTIFY takes under 8000: send ids and codes, not documents")
    return encoded


def new_id() -> str:
    """Return an event id: milliseconds since the epoch (hex) and a random part; sortable."""
    return f"{time.time_ns() // 1_000_000:x}-{secrets.token_hex(4)}"


def publish(session: Session, app_user_id: int | None, payload: dict[str, Any]) -> None:
    """Queue a live-feed event in the caller's transaction; it is delivered on commit."""
    publish_many(session, [(app_user_id, payload)])


def publish_many(session: Session, events: list[tuple[int | None, dict[str, Any]]]) -> None:
    """Queue live-feed events (recipient, payload) in the caller's transaction, in one round
    trip; they are delivered on commit, in this order. Raise InvalidInput, queuing none, when
    one is refused."""
    payloads = pack([encode_event(app_user_id, payload) for app_user_id, payload in events])
    session.execute(PUBLISH_SQL, {"channel": CHANNEL, "payloads": payloads})


def pack(encoded: list[str]) -> list[str]:
    """Return NOTIFY payloads holding the encoded events in order, one per line, each payload
    under 8000 bytes (``encode_event`` keeps every event under it)."""
    payloads: list[str] = []
    lines: list[str] = []
    size = 0
    for event in encoded:
        length = len(event.encode())
        if lines and size + 1 + length > MAX_PAYLOAD_BYTES:
            payloads.append("\n".join(lines))
            lines, size = [], 0
        size += length + (1 if lines else 0)
        lines.append(event)
    if lines:
        payloads.append("\n".join(lines))
    return payloads


def unpack(payload: str) -> list[str]:
    """Return the encoded events a NOTIFY payload holds (``pack``), in order."""
    return payload.split("\n")


def _dumps(event: object) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"), default=_jsonable)


def _jsonable(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"a feed event holds ids, codes and times, not {type(value).__name__}")


@dataclass(frozen=True)
class FeedScope:
    """What one user sees: every event, or their grids' events and those addressed to them."""

    user_id: int
    sees_all: bool
    grid_codes: frozenset[str] = frozenset()


def scope_of(session: Session, user: AppUser) -> FeedScope:
    """Return the feed scope of ``user`` (their grids as of now; a reconnect refreshes it)."""
    if user.role in SEES_ALL_ROLES:
        return FeedScope(user.id, True)
    grid_ids = auth.watched_grid_ids(session, user)
    codes = session.scalars(select(Grid.code).where(Grid.id.in_(grid_ids)))
    return FeedScope(user.id, False, frozenset(codes))


@dataclass(eq=False)
class Subscriber:
    """One connected SSE client: its scope and a bounded queue of ready-made frames.

    The response writing the stream sets ``writing_since`` around each write and ``cut_off``
    to a way of abandoning it, so a client that stopped reading is let go of.
    """

    scope: FeedScope
    queue: asyncio.Queue[bytes | None] = field(repr=False)
    dropped: bool = False
    writing_since: float | None = None  # time.monotonic() at the start of a pending write
    cut_off: Callable[[], None] | None = None


class Broadcaster:
    """LISTENs on the feed channel (one task per process) and fans events out to clients.

    Subscribers are indexed by user and by grid, so an event costs the clients it reaches,
    not every client connected. A second task puts a heartbeat in every queue each
    HEARTBEAT_S (no timer per client) and cuts off writes stuck for WRITE_TIMEOUT_S.
    """

    def __init__(self, connect_kwargs: dict[str, Any], channel: str = CHANNEL):
        self.connect_kwargs = connect_kwargs
        self.channel = channel
        self.subscribers: set[Subscriber] = set()
        self.listening = asyncio.Event()
        self.received = 0  # events read (a NOTIFY holds one or more)
        self._sees_all: set[Subscriber] = set()
        self._by_user: dict[int, set[Subscriber]] = {}
        self._by_grid: dict[str, set[Subscriber]] = {}
        self._seen: OrderedDict[object, None] = OrderedDict()  # recent addressed news, see fan_out
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def for_engine(cls, engine: Engine) -> "Broadcaster":
        """Return a broadcaster connecting where ``engine`` does (with its own connection)."""
        _, kwargs = engine.dialect.create_connect_args(engine.url)
        kwargs.pop("context", None)  # SQLAlchemy's adapters, not wanted on a plain connection
        return cls({**kwargs, "connect_timeout": 5, "application_name": "gridgis-feed"})

    async def subscribe(self, scope: FeedScope) -> Subscriber:
        """Return a new subscriber; starts the listener on first use and waits (briefly) for it."""
        subscriber = Subscriber(scope, asyncio.Queue(maxsize=ALL_QUEUE if scope.sees_all
                                                     else GRID_QUEUE))
        self.subscribers.add(subscriber)
        self._by_user.setdefault(scope.user_id, set()).add(subscriber)
        if scope.sees_all:
            self._sees_all.add(subscriber)
        for code in scope.grid_codes:
            self._by_grid.setdefault(code, set()).add(subscriber)
        self.start()
        try:
            async with asyncio.timeout(READY_WAIT_S):
                await self.listening.wait()
        except TimeoutError:
            logger.warning("live feed: not listening yet; the client gets events once it is")
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Forget a subscriber whose stream has ended (idempotent)."""
        self.subscribers.discard(subscriber)
        self._unindex(subscriber)

    def _unindex(self, subscriber: Subscriber) -> None:
        self._sees_all.discard(subscriber)
        _discard(self._by_user, subscriber.scope.user_id, subscriber)
        for code in subscriber.scope.grid_codes:
            _discard(self._by_grid, code, subscriber)

    def start(self) -> None:
        """Start the listener and the heartbeat unless they run (idempotent)."""
        if not self._tasks or any(task.done() for task in self._tasks):
            for task in self._tasks:
                task.cancel()
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._listen(), name="gridgis-feed-listen"),
                           loop.create_task(self._beat(), name="gridgis-feed-heartbeat")]

    async def stop(self) -> None:
        """Stop listening and end every client's stream."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for subscriber in list(self.subscribers):
            self._deliver(subscriber, None)
            self.unsubscribe(subscriber)

    async def _beat(self) -> None:
        """Each HEARTBEAT_S: a heartbeat to every client; cut off writes stuck too long."""
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            self.to_everyone(PING)
            now = time.monotonic()
            for subscriber in list(self.subscribers):
                since = subscriber.writing_since
                if since is not None and now - since > WRITE_TIMEOUT_S and subscriber.cut_off:
                    logger.warning("live feed: a client of user %s read nothing for %.0f s; "
                                   "cut off", subscriber.scope.user_id, now - since)
                    subscriber.cut_off()

    def fan_out(self, payload: str) -> int:
        """Hand the events of one NOTIFY payload to every subscriber each reaches; return how
        many deliveries that made."""
        return sum(self._fan_out_event(line) for line in unpack(payload))

    def _fan_out_event(self, payload: str) -> int:
        try:
            event = orjson.loads(payload)  # a third of json.loads's time: it runs per event
        except orjson.JSONDecodeError:
            logger.warning("live feed: ignored a payload that is not JSON: %.80r", payload)
            return 0
        if not isinstance(event, dict):
            return 0
        recipient, grid = event.get("recipient"), event.get("grid")
        if isinstance(recipient, int):
            targets = set(self._by_user.get(recipient, ()))
            # The dispatcher writes one outbox row per person, so the same news comes once per
            # recipient; a command-centre client wants it once.
            if self._sees_all and not self._repeated(event):
                targets |= self._sees_all
        elif recipient is None:
            targets = self._sees_all | (self._by_grid.get(grid, set())
                                        if isinstance(grid, str) else set())
        else:
            return 0
        if not targets:
            return 0
        one_line = "\r" not in payload  # as encode_event makes them (unpack split the lines)
        frame = sse_frame(event, payload if one_line else None)
        return sum(self._deliver(subscriber, frame) for subscriber in targets)

    def to_everyone(self, frame: bytes) -> int:
        """Queue a frame for every client, whatever its scope; return how many took it."""
        return sum(self._deliver(subscriber, frame) for subscriber in list(self.subscribers))

    def _repeated(self, event: Mapping[str, Any]) -> bool:
        key: object = tuple(event.get(k) for k in NEWS)
        try:
            hash(key)
        except TypeError:  # a list or an object among the values
            key = _dumps(key)
        if key in self._seen:
            self._seen.move_to_end(key)
            return True
        self._seen[key] = None
        if len(self._seen) > 2 * ALL_QUEUE:
            self._seen.popitem(last=False)
        return False

    def _deliver(self, subscriber: Subscriber, frame: bytes | None) -> bool:
        """Queue a frame without waiting; a client whose queue is full is dropped."""
        if subscriber.dropped:
            return False
        try:
            subscriber.queue.put_nowait(frame)
        except asyncio.QueueFull:
            subscriber.dropped = True  # its stream ends when it next takes from the queue
            self._unindex(subscriber)
            logger.warning("live feed: dropped a client of user %s, %d events behind",
                           subscriber.scope.user_id, subscriber.queue.qsize())
            return False
        return True

    async def _listen(self) -> None:
        """LISTEN and fan out for ever; reconnect with backoff when the database goes away."""
        delay, connected_before = BACKOFF_S[0], False
        listen = sql.SQL("LISTEN {}").format(sql.Identifier(self.channel))
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                        autocommit=True, **self.connect_kwargs) as conn:
                    await conn.execute(listen)
                    self.listening.set()
                    if connected_before:  # what was NOTIFYed meanwhile is lost: tell clients
                        self.to_everyone(sse_frame({"id": new_id(), "kind": "resync"}))
                    connected_before, delay = True, BACKOFF_S[0]
                    logger.info("live feed: listening on %s", self.channel)
                    while True:
                        async for notify in conn.notifies(timeout=HEALTH_CHECK_S):
                            before = self.received
                            self.received += notify.payload.count("\n") + 1
                            self.fan_out(notify.payload)
                            if self.received // 100 > before // 100:
                                await asyncio.sleep(0)  # let the streams drain a burst
                        await conn.execute("SELECT 1")  # a silently dead link shows here
            except (psycopg.Error, OSError) as exc:
                logger.warning("live feed: lost the database (%s); retrying in %.1f s",
                               _first_line(exc), delay)
            except Exception:
                logger.exception("live feed: listener failed; retrying in %.1f s", delay)
            self.listening.clear()
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, BACKOFF_S[1])


def _discard(index: dict[Any, set[Subscriber]], key: object, subscriber: Subscriber) -> None:
    members = index.get(key)
    if members is not None:
        members.discard(subscriber)
        if not members:
            del index[key]


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def sse_frame(event: Mapping[str, Any], encoded: str | None = None) -> bytes:
    """Return one event in the text/event-stream format (``id:`` line, one ``data:`` line);
    ``encoded``: the event as JSON already (a NOTIFY payload: one line), not dumped again."""
    event_id = str(event.get("id") or "").replace("\n", "").replace("\r", "")
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}data: {encoded or _dumps(event)}\n\n".encode()


async def frames(subscriber: Subscriber) -> AsyncGenerator[bytes]:
    """Yield a subscriber's stream: a greeting, then its frames until it ends or is dropped.
    Frames already waiting go out together, in one write (a burst of a warning's events to
    a command-centre client is a few writes, not thousands)."""
    yield f"retry: {RETRY_MS}\n: connected\n\n".encode()
    while True:
        waiting = [await subscriber.queue.get()]
        while (waiting[-1] is not None and not subscriber.queue.empty()
               and len(waiting) < FRAMES_PER_WRITE):
            waiting.append(subscriber.queue.get_nowait())
        ending = waiting[-1] is None
        chunk = b"".join(frame for frame in waiting if frame is not None)
        if subscriber.dropped:
            yield b": dropped: too far behind; reconnect and reload\n\n"
            return
        if chunk:
            yield chunk
        if ending:
            return
