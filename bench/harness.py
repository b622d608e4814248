"""What the benchmarks share: their database (a sibling of the one in use), a ``gridgis serve``
on a loopback port, percentiles, and the machine and versions a result was measured on."""

import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from gridgis import db
from gridgis.settings import get_settings

RESULTS_DIR = Path(__file__).with_name("results")
VERSIONS_SQL = text("SELECT current_setting('server_version') AS postgresql, "
                    "postgis_full_version() AS postgis, "
                    "current_setting('shared_buffers') AS shared_buffers, "
                    "current_setting('max_connections') AS max_connections")


def bench_url(name: str) -> str:
    """Return the URL of database ``name`` on the server (and as the user) in use."""
    get_settings.cache_clear()
    return make_url(db.database_url()).set(database=name).render_as_string(hide_password=False)


def use_database(name: str) -> tuple[str, Engine]:
    """Make database ``name`` the one gridgis uses in this process (``GRIDGIS_DATABASE_URL``,
    settings read again); return its URL and an engine on it (as its owner)."""
    url = bench_url(name)
    os.environ["GRIDGIS_DATABASE_URL"] = url
    get_settings.cache_clear()
    return url, db.make_engine(url)


def prepare_database(url: str, load: str | None) -> None:
    """Create and migrate the database at ``url`` when needed; load the demo territory
    ``load`` into it when it has no grids."""
    from gridgis.demo import load as demo

    db.ensure_database(url)
    db.upgrade_database(url)
    engine = db.make_engine(url)
    try:
        with Session(engine) as session:
            grids = session.scalar(text("SELECT count(*) FROM grid WHERE retired_at IS NULL"))
        if not grids and load:
            print(f"loading the {load} demo territory ...", flush=True)
            demo.load_demo(engine, load)
    finally:
        engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(url: str, log: IO[bytes] | None = None, env: dict[str, str] | None = None
          ) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``gridgis serve`` on a free loopback port over ``url`` (its output to ``log``,
    else dropped; ``env``: settings besides the database's); return the process and its base
    URL once it answers."""
    port = free_port()
    out = log if log is not None else subprocess.DEVNULL
    process = subprocess.Popen([sys.executable, "-m", "gridgis.cli", "serve", "--host",
                                "127.0.0.1", "--port", str(port)],
                               env={**os.environ, **(env or {}), "GRIDGIS_DATABASE_URL": url},
                               stdout=out, stderr=subprocess.STDOUT if log else out)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=1):
                return process, base
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("gridgis serve did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server ``serve`` started: terminate it, kill it if it does not go."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def percentile(ordered: list[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0-100) of ``ordered`` (sorted, not empty)."""
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def machine(engine: Engine) -> dict[str, Any]:
    """The machine, the database server and the commit a result comes from."""
    with Session(engine) as session:
        versions = dict(session.execute(VERSIONS_SQL).mappings().one())
    git = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                         text=True, cwd=Path(__file__).parent).stdout.strip()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"cpus": os.cpu_count(), "memory_gib": round(memory / 2**30, 1),
            "cpu": _cpu_model(), "python": platform.python_version(), "git": git, **versions}


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return next((line.split(":", 1)[1].strip() for line in lines
                 if line.startswith("model name")), platform.processor())
