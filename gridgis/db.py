"""Engine and sessions: the database in use is ``DATABASE_URL`` or the embedded cluster."""

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any

import psycopg
from fastapi import Depends
from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from gridgis.cluster import Cluster
from gridgis.errors import DatabaseUnavailable
from gridgis.settings import Settings, get_settings


def database_url(settings: Settings | None = None) -> str:
    """Return the SQLAlchemy URL in use: the configured server, else the local cluster."""
    settings = settings or get_settings()
    if settings.database_url:
        return normalise_url(settings.database_url)
    return Cluster.from_settings(settings).url()


def normalise_url(url: str) -> str:
    """Return ``url`` with the psycopg 3 driver (``postgresql://`` is accepted as given)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, role: str | None = None) -> Engine:
    """Return an engine for ``url``; connections give up after a few seconds, not minutes.
    With ``role``, every connection works as that role (the application's, not the owner's)."""
    settings = get_settings()
    engine = create_engine(
        url,
        pool_pre_ping=True,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_overflow,
        connect_args={"connect_timeout": 5, "application_name": "gridgis"},
    )
    if role:
        @event.listens_for(engine, "connect")
        def set_role(dbapi_connection: Any, record: Any) -> None:
            # Outside a transaction: a rollback must not undo it (SQLAlchemy's recipe).
            autocommit = dbapi_connection.autocommit
            dbapi_connection.autocommit = True
            with dbapi_connection.cursor() as cursor:
                cursor.execute(f'SET ROLE "{role}"')  # a checked name, see Settings
            dbapi_connection.autocommit = autocommit
    return engine


@lru_cache
def get_engine() -> Engine:
    """Return the process-wide engine of the application: the database in use, as the
    application's role (``GRIDGIS_DATABASE_ROLE``)."""
    return make_engine(database_url(), role=get_settings().database_role)


def owner_engine() -> Engine:
    """Return a new engine as the login user, the tables' owner: for migrations, demo loads
    and tests' set-up, never for serving requests. The caller disposes of it."""
    return make_engine(database_url())


@lru_cache
def _session_factory() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


def get_session() -> Iterator[Session]:
    """Yield a session for one request; the caller commits once, or nothing is written."""
    with _session_factory()() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]

# How long a request waits for a connection of an async pool: milliseconds under load, so a
# wait this long means the database is not answering (then 503, as for the engine's pool).
ASYNC_POOL_TIMEOUT_S = 5.0


def make_async_pool(url: str, role: str | None = None, options: dict[str, str] | None = None,
                    timeout_s: float = ASYNC_POOL_TIMEOUT_S) -> AsyncConnectionPool:
    """Return an async psycopg pool on ``url``, not yet open, of at most ``db_pool_size``
    connections in autocommit, for statements each complete in themselves (no transaction
    spans two of them). With ``role``, every connection works as that role, as in
    ``make_engine``; ``options`` are server settings for the connections' whole life.

    A connection is lent unchecked (no ping: one round trip fewer per request); a statement
    on a connection the server dropped raises psycopg's OperationalError, and the pool
    replaces the connection when it comes back.
    """
    parsed = make_url(url)
    conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    server_options = " ".join(f"-c {name}={value}" for name, value in (options or {}).items())

    async def set_role(conn: AsyncConnection) -> None:
        if role:  # in autocommit: for the connection's whole life
            await conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))

    return AsyncConnectionPool(
        conninfo, open=False, min_size=1, max_size=get_settings().db_pool_size,
        timeout=timeout_s, configure=set_role, name="gridgis-async",
        kwargs={"autocommit": True, "connect_timeout": 5, "application_name": "gridgis",
                **({"options": server_options} if server_options else {})})


def postgis_version(engine: Engine) -> tuple[str, str]:
    """Return (PostgreSQL version, PostGIS version); raise if either is missing or down."""
    url = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            server = conn.execute(text("SHOW server_version")).scalar_one()
            available = conn.execute(
                text("SELECT default_version FROM pg_available_extensions WHERE name = 'postgis'")
            ).scalar()
            if available is None:
                raise DatabaseUnavailable(
                    f"the server at {url} has no PostGIS; install it there "
                    f"(Debian: postgresql-{str(server).split('.')[0]}-postgis-3)"
                )
            installed = conn.execute(
                text("SELECT extversion FROM pg_extension WHERE extname = 'postgis'")
            ).scalar()
    except OperationalError as exc:
        raise DatabaseUnavailable(f"the database at {url} does not answer: {_reason(exc)}") from exc
    return str(server), str(installed or f"{available} (not yet created)")


def _reason(exc: OperationalError) -> str:
    lines = [line for line in str(exc.orig).strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no reason given"


def ensure_database(url: str, *, recreate: bool = False) -> bool:
    """Create the database named in ``url`` on its server; return whether it was created.

    Connects to the server's ``postgres`` database with the same credentials. With
    ``recreate``, an existing database of that name is dropped first (tests use this).
    """
    target = make_url(url)
    name = target.database or ""
    admin = make_engine(target.set(database="postgres").render_as_string(hide_password=False))
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            quoted = conn.dialect.identifier_preparer.quote(name)
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).scalar()
            if exists and recreate:
                conn.execute(text(f"DROP DATABASE {quoted} WITH (FORCE)"))
                exists = None
            if exists:
                return False
            try:
                conn.execute(text(f"CREATE DATABASE {quoted}"))
            except ProgrammingError as exc:  # another process created it meanwhile
                if "already exists" not in str(exc.orig):
                    raise
                return False
            return True
    except OperationalError as exc:
        shown = target.render_as_string(hide_password=True)
        message = f"the database at {shown} does not answer: {_reason(exc)}"
        raise DatabaseUnavailable(message) from exc
    finally:
        admin.dispose()


def drop_database(url: str) -> None:
    """Drop the database named in ``url`` if it exists (closing its connections)."""
    target = make_url(url)
    admin = make_engine(target.set(database="postgres").render_as_string(hide_password=False))
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            quoted = conn.dialect.identifier_preparer.quote(target.database or "")
            conn.execute(text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
    finally:
        admin.dispose()


def alembic_config(url: str) -> "AlembicConfig":
    """Return the Alembic configuration of the project's migrations, aimed at ``url``."""
    from alembic.config import Config as AlembicConfig

    from gridgis.settings import PROJECT_DIR

    config = AlembicConfig(str(PROJECT_DIR / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_database(url: str, revision: str = "head") -> None:
    """Apply the migrations up to ``revision`` (PostGIS is created by the first one)."""
    from alembic import command

    engine = make_engine(url)
    try:
        postgis_version(engine)
    finally:
        engine.dispose()
    command.upgrade(alembic_config(url), revision)


def current_revision(engine: Engine) -> str | None:
    """Return the migration the database is at, or None before the first."""
    with engine.connect() as conn:
        exists = conn.execute(text("SELECT to_regclass('alembic_version')")).scalar()
        if not exists:
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig


def array_literal(values: Iterable[int | float | bool | str | None]) -> str:
    """Return ``values`` as a PostgreSQL array literal, to be cast in the SQL: tens of
    thousands of values go as one string, where a list is adapted value by value (0.8 s
    for the households of 2,000 grids)."""
    items = list(values)
    kinds = set(map(type, items)) - {type(None)}
    if kinds <= {int, float}:  # read back exactly
        return "{" + ",".join("NULL" if v is None else repr(v) for v in items) + "}"
    if kinds <= {bool}:
        return "{" + ",".join("NULL" if v is None else "t" if v else "f" for v in items) + "}"
    return "{" + ",".join(map(_element, items)) + "}"


def _element(value: int | float | bool | str | None) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)  # int, float: read back exactly


@contextmanager
def running(session: Session, statements: Sequence[str], params: dict[str, Any]
            ) -> Iterator[None]:
    """Send ``statements`` to the server in the session's transaction, and let the block run
    in Python while the server works on them: psycopg's pipeline mode (the server starts on
    each as it arrives); their errors are raised when the block ends."""
    connection = session.connection()
    driver = connection.connection.driver_connection
    if (not statements or not isinstance(driver, psycopg.Connection)
            or not psycopg.Pipeline.is_supported()):  # libpq before 14: one after another
        yield
        for statement in statements:
            session.execute(text(statement), params)
        return
    dialect = connection.dialect
    with driver.pipeline(), driver.cursor() as cursor:
        for statement in statements:
            compiled = text(statement).compile(dialect=dialect)
            cursor.execute(str(compiled), compiled.construct_params(params))
        yield
