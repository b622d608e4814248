"""HTTP for the live feed (Server-Sent Events) and for alerts: history, one alert, ack.

``GET /api/feed`` streams ``text/event-stream``: a ``retry:`` line and a ``: connected``
comment once subscribed, then one ``id:``/``data:`` event per feed event (JSON, see
``feed``), and a ``: ping`` comment every 15 s. ``Last-Event-ID`` is ignored: the
feed keeps no history, so a client reloads ``GET /api/alerts`` when it (re)connects.
"""

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from sqlalchemy.orm import Session
from starlette.responses import StreamingResponse
from starlette.types import Send

from gridgis import audit, auth, db
from gridgis.alerts import acks, backlog, dead_letters, feed
from gridgis.auth import CurrentUser
from gridgis.db import SessionDep
from gridgis.params import IfMatch


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Stop this process's feed listener (started by the first subscriber) at shutdown."""
    yield
    broadcaster = getattr(app.state, "feed", None)
    if broadcaster is not None:
        await broadcaster.stop()


router = APIRouter(prefix="/api", tags=["alerts"], lifespan=lifespan)


def broadcaster_of(app: FastAPI) -> feed.Broadcaster:
    """Return the process's broadcaster, made on first use."""
    found: feed.Broadcaster | None = getattr(app.state, "feed", None)
    if found is None:
        found = app.state.feed = feed.Broadcaster.for_engine(db.get_engine())
    return found


class FeedResponse(StreamingResponse):
    """One subscriber's event stream. Writes run in a cancel scope the broadcaster's heartbeat
    may cancel (a write stuck for WRITE_TIMEOUT_S); the subscriber is let go however the
    stream ends (disconnect, dropped for falling behind, cut off, shutdown)."""

    media_type = "text/event-stream"

    def __init__(self, broadcaster: feed.Broadcaster, subscriber: feed.Subscriber):
        self.frames = feed.frames(subscriber)
        super().__init__(self.frames, headers={"Cache-Control": "no-cache",
                                               "X-Accel-Buffering": "no"})
        self.broadcaster, self.subscriber = broadcaster, subscriber

    async def stream_response(self, send: Send) -> None:
        subscriber = self.subscriber
        try:
            with anyio.CancelScope() as scope:
                subscriber.cut_off = scope.cancel
                await send({"type": "http.response.start", "status": self.status_code,
                            "headers": self.raw_headers})
                async for frame in self.frames:
                    subscriber.writing_since = time.monotonic()
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
                    subscriber.writing_since = None
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self.broadcaster.unsubscribe(subscriber)
            await self.frames.aclose()


def feed_scope(request: Request,
               token: Annotated[str | None, Depends(auth.oauth2_scheme)],
               session: Annotated[Session, Depends(db.get_session, scope="function")],
               ) -> feed.FeedScope:
    """Return the caller's feed scope; the session is closed before the stream starts, so
    a connected client holds no database connection."""
    user = auth.current_user(auth.caller(request, session, token))
    return feed.scope_of(session, user)


@router.get("/feed", response_class=FeedResponse, status_code=200,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "the live feed, as Server-Sent Events"}})
async def live_feed(request: Request,
                    scope: Annotated[feed.FeedScope, Depends(feed_scope)]) -> FeedResponse:
    """The live feed of the caller: their grids' events (all, for the command centre)."""
    broadcaster = broadcaster_of(request.app)
    return FeedResponse(broadcaster, await broadcaster.subscribe(scope))


@router.get("/alerts", response_model=list[acks.AlertRecord])
def list_alerts(session: SessionDep, user: CurrentUser, warning: str | None = None,
                grid: str | None = None,
                limit: Annotated[int, Query(ge=1, le=20000)] = 5000) -> list[acks.AlertRecord]:
    """Alerts with acknowledgement and delivery states (a grid team: its own grids)."""
    return acks.alert_history(session, user, warning, grid, limit)


@router.get("/alerts/{alert_id}", response_model=acks.AlertDetail)
def read_alert(session: SessionDep, user: CurrentUser, alert_id: int,
               response: Response) -> acks.AlertDetail:
    """One alert with each outbox row; its ETag is its version."""
    detail = acks.read_alert(session, user, alert_id)
    response.headers["ETag"] = f'"{detail.version}"'
    return detail


@router.post("/alerts/{alert_id}/ack", response_model=acks.AlertDetail)
def acknowledge(session: SessionDep, user: CurrentUser, alert_id: int, version: IfMatch,
                response: Response) -> acks.AlertDetail:
    """Acknowledge an alert of one of your grids (If-Match: its version); idempotent."""
    acks.acknowledge(session, user, alert_id, version)
    session.commit()
    return read_alert(session, user, alert_id, response)


@router.get("/delivery/backlog", response_model=list[backlog.ChannelBacklog])
def delivery_backlog(session: SessionDep, user: CurrentUser) -> list[backlog.ChannelBacklog]:
    """Messages still to go, per channel (the command centre and admins): a channel that is
    down shows here first, its messages waiting to be retried in order."""
    auth.require_role(user, *acks.WATCH_ROLES)
    return backlog.backlog(session)


@router.get("/dead-letters", response_model=list[dead_letters.DeadLetter])
def list_dead_letters(session: SessionDep, user: CurrentUser, warning: str | None = None,
                      limit: Annotated[int, Query(ge=1, le=5000)] = 500
                      ) -> list[dead_letters.DeadLetter]:
    """Messages that will not be sent (the command centre and admins), newest first."""
    auth.require_role(user, *acks.WATCH_ROLES)
    return dead_letters.listed(session, warning, limit)


@router.post("/dead-letters/requeue")
def requeue_dead_letters(session: SessionDep, user: CurrentUser, warning: str | None = None,
                         channel: str | None = None) -> dict[str, int]:
    """Queue dead messages again, once their cause is mended (same idempotency keys)."""
    auth.require_role(user, *acks.WATCH_ROLES)
    count = dead_letters.requeue(session, warning, channel)
    audit.record(session, user, "requeue", "outbox", warning or "*",
                 {"channel": channel, "messages": count})
    session.commit()
    return {"requeued": count}
