"""Local receivers for delivery tests, on 127.0.0.1 only: an HTTP endpoint and an SMTP server.

Both record every raw arrival (with its idempotency key and the time it came), so a test can
check what reached them before and after dropping repeats by key, as a real receiver would.
"""

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class Arrival:
    """One request as the receiver saw it."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any  # decoded JSON, or the raw bytes
    at: float  # time.monotonic()

    @property
    def key(self) -> str | None:
        if "Idempotency-Key" in self.headers:
            return self.headers["Idempotency-Key"]
        return self.body.get("idempotency_key") if isinstance(self.body, dict) else None


# Given an arrival and how many times its key came before it, the HTTP status to answer.
Script = Callable[[Arrival, int], int]


@dataclass
class HttpReceiver:
    """Records POSTs; answers each as ``script`` says, after ``delay_s``."""

    script: Script = lambda arrival, seen: 200
    delay_s: float = 0.0
    arrivals: list[Arrival] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def keys(self) -> list[str | None]:
        with self.lock:
            return [a.key for a in self.arrivals]

    def delivered(self) -> dict[str | None, Arrival]:
        """Return the first arrival of each key: what an idempotent receiver keeps."""
        with self.lock:
            kept: dict[str | None, Arrival] = {}
            for arrival in self.arrivals:
                kept.setdefault(arrival.key, arrival)
            return kept

    def handle(self, arrival: Arrival) -> int:
        with self.lock:
            seen = sum(1 for a in self.arrivals if a.key == arrival.key)
            self.arrivals.append(arrival)
        if self.delay_s:
            time.sleep(self.delay_s)
        return self.script(arrival, seen)


@contextmanager
def http_receiver(script: Script | None = None, delay_s: float = 0.0) -> Iterator[HttpReceiver]:
    """Run an HTTP receiver on a free loopback port; its ``url`` ends in ``/``."""
    receiver = HttpReceiver(delay_s=delay_s)
    if script is not None:
        receiver.script = script

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real endpoints do
        disable_nagle_algorithm = True  # else keep-alive answers wait on delayed ACKs
        wbufsize = 1 << 16  # head and body leave in one write

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            status = receiver.handle(Arrival(parts.path, query, dict(self.headers.items()),
                                             body, time.monotonic()))
            answer = json.dumps({"errcode": 0, "errmsg": "ok"} if status == 200
                                else {"error": status}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class SmtpReceiver:
    """Collects the messages an SMTP server on loopback accepted."""

    host: str = "127.0.0.1"
    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 Message accepted for delivery"


@contextmanager
def smtp_receiver(port: int) -> Iterator[SmtpReceiver]:
    """Run an SMTP server (aiosmtpd, no TLS, no auth) on 127.0.0.1:``port``."""
    receiver = SmtpReceiver(port=port)
    controller = Controller(receiver, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield receiver
    finally:
        controller.stop()
