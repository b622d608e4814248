"""The largest request body gridgis reads: ``GRIDGIS_BODY_MAX_MB`` (a drawn area, a CAP
file, a changeset operation), ``GRIDGIS_IMPORT_MAX_MB`` for file imports. A body declared
larger is answered 413 before a byte of it is read; a body that turns out larger (no
Content-Length, chunked) stops being read at the limit and is answered 413 too. Both as
JSON with a ``detail``, like every refusal.
"""

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gridgis.errors import TooLarge

IMPORT_PREFIX = "/api/import/"


class BodyLimit:
    """ASGI middleware refusing request bodies over the limit of their path."""

    def __init__(self, app: ASGIApp, max_bytes: int, import_max_bytes: int):
        self.app, self.max_bytes, self.import_max_bytes = app, max_bytes, import_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = (self.import_max_bytes if scope["path"].startswith(IMPORT_PREFIX)
                 else self.max_bytes)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await too_large(send, limit)
            return
        read = 0

        async def counting() -> Message:
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > limit:  # the app's handler for TooLarge answers the 413
                    raise TooLarge(f"the request body is over {limit // 2**20} MB")
            return message

        await self.app(scope, counting, send)


async def too_large(send: Send, limit: int) -> None:
    body = json.dumps({"detail": f"the request body is over {limit // 2**20} MB: gridgis "
                                 "takes at most that"}).encode()
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
