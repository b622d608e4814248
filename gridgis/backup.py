"""Backups: the whole database to one file (``pg_dump`` custom format) and back.

``gridgis db backup FILE`` dumps the database in use: schema, PostGIS, data, the audit log,
the migration it is at. ``gridgis db restore FILE --into NAME`` restores a dump into a
database that is empty or does not exist yet (created); restoring over live data is refused,
so a typing mistake never overwrites the territory. The PostgreSQL client programs of the
server's version are used (the embedded cluster's, or the newest installed).
"""

import os
import shutil
import subprocess
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from gridgis import db
from gridgis.cluster import ClusterError, find_pg_bindir
from gridgis.errors import Conflict, GridGisError, InvalidInput


def _program(name: str) -> str:
    try:
        candidate = find_pg_bindir() / name
        if candidate.exists():
            return str(candidate)
    except ClusterError:
        pass
    found = shutil.which(name)
    if not found:
        raise GridGisError(f"{name} not found: install the PostgreSQL client programs")
    return found


def _connection(url: str) -> tuple[list[str], dict[str, str]]:
    """libpq arguments and environment for ``url`` (the password never on a command line)."""
    parsed = make_url(url)
    args = ["--host", parsed.host or "127.0.0.1", "--port", str(parsed.port or 5432),
            "--username", parsed.username or "postgres", "--dbname", parsed.database or ""]
    env = {**os.environ, "PGPASSWORD": parsed.password or "", "PGCONNECT_TIMEOUT": "10"}
    return args, env


def backup(url: str, path: Path) -> int:
    """Dump the database at ``url`` into ``path``; return its size in bytes."""
    if path.exists() and path.is_dir():
        raise InvalidInput(f"{path} is a folder: name the backup file")
    args, env = _connection(url)
    done = subprocess.run([_program("pg_dump"), "--format=custom", "--no-owner",
                           f"--file={path}", *args], env=env, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        path.unlink(missing_ok=True)
        raise GridGisError(f"pg_dump failed: {done.stderr.strip().splitlines()[-1:]}")
    return path.stat().st_size


def restore(url: str, path: Path, into: str) -> None:
    """Restore ``path`` into database ``into`` on the server of ``url`` (created when
    missing); Conflict if that database holds tables already."""
    if not path.is_file():
        raise InvalidInput(f"{path}: no such backup file")
    target = make_url(url).set(database=into).render_as_string(hide_password=False)
    db.ensure_database(target)
    engine = db.make_engine(target)
    try:
        with engine.connect() as conn:
            tables = conn.execute(text(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'spatial_ref_sys'")).scalar_one()
    finally:
        engine.dispose()
    if tables:
        raise Conflict(f"database {into} holds {tables} tables: restore into an empty one")
    args, env = _connection(target)
    done = subprocess.run([_program("pg_restore"), "--no-owner", "--exit-on-error",
                           *args, str(path)], env=env, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise GridGisError(f"pg_restore failed: {done.stderr.strip().splitlines()[-1:]}")
