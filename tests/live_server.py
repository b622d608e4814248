"""A real ``gridgis serve`` in a subprocess on a free loopback port, for tests that kill it,
restart it, or drive it from a browser."""

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.conftest import free_port


@dataclass
class LiveServer:
    base: str
    process: subprocess.Popen[bytes]


def start(database_url: str, port: int | None = None, **env: str) -> LiveServer:
    """Start ``gridgis serve`` on the database; return once /health answers."""
    port = port or free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gridgis.cli", "serve", "--port", str(port)],
        env={**os.environ, "GRIDGIS_DATABASE_URL": database_url, **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=1) as answer:
                if answer.status == 200:
                    return LiveServer(base, process)
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                _, errors = process.communicate()
                raise RuntimeError(f"gridgis serve did not start: {errors!r}") from None
            time.sleep(0.2)


@contextmanager
def live_server(database_url: str, **env: str) -> Iterator[LiveServer]:
    """Run ``gridgis serve`` while inside; stop it (if still running) afterwards."""
    server = start(database_url, **env)
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.process.terminate()
        server.process.wait(timeout=10)
