"""Admission: at most as many requests at work as the database pool has connections.

A request takes its connection in the authentication dependency (on one worker thread), then
waits for a thread again to run its endpoint, holding the connection meanwhile. With more
requests in flight than connections, every thread can end up waiting for a connection held
by a request that waits for a thread: the server stalls until the pool's 30 s timeout (the
200-grid-head load test found it). Letting in no more requests than connections breaks the
cycle: each admitted request can always get its connection, and its thread (the threads
outnumber the connections). The others wait their turn a little, or are told to retry (503).

Not counted: the live feed (a stream that holds no connection once it runs) and the static
files (no database).
"""

import json

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send

RETRY_AFTER_S = 2


class Admission:
    """ASGI middleware letting ``limit`` requests work at once; a request waiting longer than
    ``wait_s`` for its turn is answered 503 with a retry hint."""

    def __init__(self, app: ASGIApp, limit: int, wait_s: float,
                 exempt: tuple[str, ...] = ("/api/feed", "/static/")):
        self.app, self.limit, self.wait_s, self.exempt = app, limit, wait_s, exempt
        self.slots: anyio.Semaphore | None = None  # made in the event loop, on first use

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        if self.slots is None:
            self.slots = anyio.Semaphore(self.limit)
        admitted = False
        with anyio.move_on_after(self.wait_s):  # bounds the wait for a turn, not the work
            await self.slots.acquire()
            admitted = True
        if not admitted:
            await busy(send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.slots.release()


async def busy(send: Send) -> None:
    body = json.dumps({"detail": "gridgis is busy: try again in "
                                 f"{RETRY_AFTER_S} seconds"}).encode()
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"application/json"), (b"retry-after", str(RETRY_AFTER_S).encode()),
        (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
