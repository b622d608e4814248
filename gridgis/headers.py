"""Security headers on every answer: no sniffing, no framing by other sites, no referrer
leaking codes in URLs, and a Content-Security-Policy that lets pages load only what gridgis
serves (plus the base-map tile server when one is set). folium pages carry inline scripts,
so scripts are 'self' and inline, never from another origin. No CORS headers are sent:
browsers on other origins may not call the API with a user's cookie or token.
"""

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def policy(basemap_url: str | None) -> str:
    """The Content-Security-Policy of the pages."""
    tiles = ""
    if basemap_url:  # a {s} subdomain placeholder allows any subdomain
        parts = urlsplit(basemap_url.replace("{s}", "subdomain"))
        if parts.scheme and parts.netloc:
            host = parts.netloc.replace("subdomain.", "*.", 1) if "{s}" in basemap_url \
                else parts.netloc
            tiles = f" {parts.scheme}://{host}"
    return ("default-src 'self'; script-src 'self' 'unsafe-inline'; "
            "style-src 'self' 'unsafe-inline'; font-src 'self' data:; "
            f"img-src 'self' data: blob:{tiles}; connect-src 'self'; worker-src 'self' blob:; "
            "frame-ancestors 'none'; base-uri 'self'; form-action 'self'")


class SecurityHeaders:
    """ASGI middleware adding the headers to every HTTP answer (streams included)."""

    def __init__(self, app: ASGIApp, basemap_url: str | None = None):
        self.app = app
        self.headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"content-security-policy", policy(basemap_url).encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *self.headers]
            await send(message)

        await self.app(scope, receive, with_headers)
