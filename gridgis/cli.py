"""The ``gridgis`` command. Errors a user can cause print one line and exit non-zero."""

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from alembic.util.exc import CommandError
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError
from sqlalchemy.orm import Session

from gridgis.alerts import dispatch
from gridgis.cluster import Cluster
from gridgis.errors import GridGisError
from gridgis.layers import files_cli
from gridgis.settings import get_settings

app = typer.Typer(help="gridgis: grids, warnings and evacuation on PostGIS.",
                  pretty_exceptions_enable=False, no_args_is_help=True)
db_app = typer.Typer(help="The database: the embedded local PostGIS or DATABASE_URL.",
                     no_args_is_help=True)
demo_app = typer.Typer(help="The demo territories.", no_args_is_help=True)
user_app = typer.Typer(help="Users and their roles.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(demo_app, name="demo")
app.add_typer(user_app, name="user")

F = TypeVar("F", bound=Callable[..., Any])


def friendly(func: F) -> F:
    """Turn the errors a user can cause into one line on stderr and exit code 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except GridGisError as exc:
            message = str(exc)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = "_".join(str(p) for p in first["loc"])
            if exc.title != "Settings":
                message = f"{where}: {first['msg']}"
            elif where:
                message = f"bad setting GRIDGIS_{where.upper()}: {first['msg']}"
            else:  # a rule across settings
                message = f"bad settings: {first['msg'].removeprefix('Value error, ')}"
        except CommandError as exc:
            message = f"migrations: {exc}"
        except OperationalError as exc:
            message = f"the database does not answer: {_reason(exc)}"
        except ProgrammingError as exc:
            missing = "does not exist" in str(exc.orig)
            message = ("the database has no gridgis tables yet: run `gridgis db upgrade`"
                       if missing else f"database error: {_reason(exc)}")
        except SQLAlchemyError as exc:
            message = f"database error: {_reason(exc)}"
        typer.echo(f"gridgis: {message}", err=True)
        raise typer.Exit(1)

    return wrapper  # type: ignore[return-value]


def _reason(exc: SQLAlchemyError) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _cluster() -> Cluster | None:
    """Return the embedded cluster, or None when DATABASE_URL names another server."""
    settings = get_settings()
    return None if settings.database_url else Cluster.from_settings(settings)


@db_app.command("up")
@friendly
def db_up() -> None:
    """Create (first time) and start the local PostGIS, and create the database."""
    from gridgis import db

    cluster = _cluster()
    if cluster is None:
        server, postgis = db.postgis_version(db.get_engine())
        typer.echo(f"DATABASE_URL is set: using that server (PostgreSQL {server}, PostGIS "
                   f"{postgis}); no local cluster started")
        return
    if cluster.init():
        typer.echo(f"created the local PostGIS cluster in {cluster.data_dir}")
    started = cluster.start()
    typer.echo(f"{'started' if started else 'already running:'} local PostGIS on "
               f"127.0.0.1:{cluster.port}")
    if db.ensure_database(cluster.url()):
        typer.echo(f"created database {cluster.database}")


@db_app.command("down")
@friendly
def db_down() -> None:
    """Stop the local PostGIS (nothing to do with DATABASE_URL)."""
    cluster = _cluster()
    if cluster is None:
        typer.echo("DATABASE_URL is set: there is no local cluster to stop")
        return
    stopped = cluster.stop()
    typer.echo("stopped the local PostGIS" if stopped else "the local PostGIS is not running")


@db_app.command("status")
@friendly
def db_status() -> None:
    """Say where the database is, whether it answers, and its migration."""
    from gridgis import db

    cluster = _cluster()
    if cluster is not None and not cluster.running():
        where = cluster.data_dir if cluster.initialized else "(not created yet)"
        typer.echo(f"local PostGIS: stopped, data folder {where}")
        raise typer.Exit(3)
    engine = db.get_engine()
    server, postgis = db.postgis_version(engine)
    where = "local PostGIS" if cluster else "DATABASE_URL"
    typer.echo(f"{where}: up at {engine.url.render_as_string(hide_password=True)}")
    typer.echo(f"PostgreSQL {server}, PostGIS {postgis}, migration {db.current_revision(engine)}")


@db_app.command("upgrade")
@friendly
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply the schema migrations."""
    from gridgis import db

    db.upgrade_database(db.database_url(), revision)
    typer.echo(f"database at migration {db.current_revision(db.get_engine())}")


@db_app.command("backup")
@friendly
def db_backup(file: Annotated[Path, typer.Argument(help="the backup file to write")]) -> None:
    """Dump the whole database (pg_dump custom format) into FILE."""
    from gridgis import backup, db

    size = backup.backup(db.database_url(), file)
    typer.echo(f"backed up to {file} ({size / 1e6:.1f} MB)")


@db_app.command("restore")
@friendly
def db_restore(
    file: Annotated[Path, typer.Argument(help="a file from `gridgis db backup`")],
    into: Annotated[str, typer.Option(help="the database to restore into: empty or new")],
) -> None:
    """Restore FILE into an empty (or new) database on the same server."""
    from gridgis import backup, db

    backup.restore(db.database_url(), file, into)
    typer.echo(f"restored {file} into database {into}")


@db_app.command("url")
@friendly
def db_url() -> None:
    """Print the SQLAlchemy URL of the database in use (for psql, QGIS, scripts)."""
    from gridgis import db

    typer.echo(db.database_url())


@demo_app.command("load")
@friendly
def demo_load(
    scale: Annotated[str, typer.Option(help="hengqin | nansha | city")] = "hengqin",
    seed: Annotated[int | None, typer.Option(help="generator seed (default: settings)")] = None,
    replace: Annotated[bool, typer.Option(help="wipe the layers and load again")] = False,
    admin_units: Annotated[Path | None, typer.Option(help="admin-unit boundary file instead of "
                                                         "the scale's own")] = None,
    grids: Annotated[Path | None, typer.Option(help="grid boundary file instead of the "
                                                   "scale's own")] = None,
) -> None:
    """Load a demo territory: boundaries, buildings, stations, shelters, residents."""
    from gridgis import db
    from gridgis.demo import load

    engine = db.owner_engine()  # a load empties the layers (TRUNCATE): the owner's work
    try:
        report = load.load_demo(engine, scale, seed=seed, replace=replace,
                                progress=sys.stderr.isatty(), admin_units_file=admin_units,
                                grids_file=grids)
    finally:
        engine.dispose()
    typer.echo(report)


@app.command("serve")
@friendly
def serve(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Serve the API and the pages."""
    import uvicorn

    settings = get_settings()
    uvicorn.run("gridgis.main:create_app", factory=True, host=host or settings.host,
                port=port or settings.port, proxy_headers=False,
                timeout_graceful_shutdown=5,  # live-feed clients never leave by themselves
                # Idle keep-alive connections are closed by the client first (httpx after 5 s,
                # browsers later and they retry): a server closing at uvicorn's default 5 s
                # races the client's next request on the same connection (the load test).
                timeout_keep_alive=75)


@user_app.command("add")
@friendly
def user_add(
    name: str,
    role: Annotated[str, typer.Option(
        help="command | grid_head | grid_worker | unit_head | planner | admin")],
    grid: Annotated[list[str] | None, typer.Option(
        help="a grid this grid head or worker answers for; repeatable")] = None,
    unit: Annotated[list[str] | None, typer.Option(
        help="a community or street this unit head answers for; repeatable")] = None,
    phone: Annotated[str | None, typer.Option(help="for alerts by SMS")] = None,
    email: Annotated[str | None, typer.Option(help="for alerts by e-mail")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
) -> None:
    """Create a user (or update its role, grids or units, contacts and password)."""
    from gridgis import auth, db

    if not password_stdin:
        raise GridGisError("give the password on standard input with --password-stdin")
    password = sys.stdin.readline().rstrip("\n")
    with Session(db.get_engine()) as session:
        user = auth.add_user(session, name, role, password, grid or [], unit or [],
                             phone=phone, email=email)
        saved = f"user {user.username} ({user.role}) saved"
        session.commit()
    typer.echo(saved)


@app.command("warn")
@friendly
def warn(
    file: Annotated[Path, typer.Argument(help="CAP 1.2 (.xml), a typhoon advisory or a drawn "
                                              "area (.json)")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="say which grids, write "
                                                            "nothing")] = False,
    min_share: Annotated[float, typer.Option(help="share of a grid an area must cover")] = 0.0,
) -> None:
    """Issue a warning from a file: alerts and outbox rows for every grid it reaches."""
    import json

    from gridgis import db
    from gridgis.alerts import flows, intake, schemas

    try:
        body = file.read_bytes()
    except OSError as exc:
        raise GridGisError(f"{file}: {exc.strerror}") from None
    with Session(db.get_engine()) as session:
        if file.suffix.lower() == ".xml":
            incoming = intake.read_cap(session, body)
        else:
            try:
                document = json.loads(body)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise GridGisError(f"{file}: not JSON: {exc}") from None
            incoming = (intake.read_advisory(session, document) if "storm" in document
                        else intake.read_drawn(schemas.DrawnWarningIn.model_validate(document),
                                               "cli"))
        result = flows.issue_committed(session, None, incoming, min_share=min_share,
                                       dry_run=dry_run)
    typer.echo(f"{result.identifier or '(dry run)'}: {result.message}")
    for target in result.targets[:20]:
        eta = f" gale {target.gale_eta:%m-%d %H:%M}Z" if target.gale_eta else ""
        typer.echo(f"  {target.code} {target.tier} {target.share:.0%}{eta} "
                   f"{target.residents} residents, {target.vulnerable} vulnerable")
    if len(result.targets) > 20:
        typer.echo(f"  ... and {len(result.targets) - 20} more grids")


@app.command("drill")
@friendly
def drill(
    storm: Annotated[str, typer.Argument(help="yagi")],
    speed: Annotated[float, typer.Option(help="storm seconds per real second (0: no "
                                              "waiting)")] = 3600.0,
    forecast_hours: Annotated[float, typer.Option(help="hours of best track given as the "
                                                       "forecast")] = 24.0,
) -> None:
    """Replay a past typhoon as exercise advisories, in time order."""
    from gridgis import db
    from gridgis.alerts import drill as drills

    typer.echo(drills.run_drill(db.get_engine(), storm, speed=speed,
                                forecast_hours=forecast_hours, report=typer.echo))


# Commands that live with their parts; errors become one line here as everywhere.
app.command("import")(friendly(files_cli.import_layer))
app.command("export")(friendly(files_cli.export_layer))
app.command("dispatch")(friendly(dispatch.dispatch_command))


if __name__ == "__main__":
    app()
