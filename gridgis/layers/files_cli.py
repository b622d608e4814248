"""``gridgis import`` and ``gridgis export``: layer files on the command line.

The commands are registered by ``gridgis.cli``; heavy imports wait until a command runs.
``python -m gridgis.layers.files_cli`` runs them alone.
"""

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gridgis.errors import InvalidInput

if TYPE_CHECKING:
    from gridgis.layers.files import ImportPlan

CODES_SHOWN = 20


def import_layer(
    layer: Annotated[str, typer.Argument(help="buildings | stations | shelters | residents")],
    file: Annotated[Path, typer.Argument(help=".geojson, .gpkg, .zip (Shapefile) or .csv "
                                              "(lon, lat in WGS 84)")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would change, write "
                                                           "nothing")] = False,
    gcj02: Annotated[bool, typer.Option("--gcj02", help="coordinates are GCJ-02 (from a "
                                                       "Chinese web map): convert them")] = False,
    retire_missing: Annotated[bool, typer.Option("--retire-missing", help="retire live rows "
                                                 "of the layer the file lacks")] = False,
    changeset: Annotated[bool, typer.Option("--changeset", help="grids: as a planning "
                                            "changeset (validated, then --publish)")] = False,
    planner: Annotated[str | None, typer.Option(help="--changeset: the planner's "
                                                     "username")] = None,
    reason: Annotated[str | None, typer.Option(help="--changeset: why")] = None,
    publish: Annotated[bool, typer.Option("--publish", help="--changeset: publish it when "
                                                           "it validates")] = False,
) -> None:
    """Import a layer file: add new codes, change changed ones; all rows or none. Grids go
    through planning: ``import grids FILE --changeset --planner NAME --reason WHY``."""
    from sqlalchemy.orm import Session

    from gridgis import db
    from gridgis.layers import files

    if layer == "grids" or changeset:
        if not (layer == "grids" and changeset and planner and reason):
            raise InvalidInput("grids change through planning: import grids FILE --changeset "
                               "--planner NAME --reason WHY [--publish]")
        if dry_run or gcj02 or retire_missing:
            raise InvalidInput("--changeset takes no --dry-run (a changeset is validated "
                               "without --publish), --gcj02 or --retire-missing (retire "
                               "grids with retire operations)")
        import_changeset(file, planner, reason, publish)
        return

    with Session(db.get_engine()) as session:
        run = files.plan_import if dry_run else files.apply_import
        plan = run(session, layer, file, gcj02=gcj02, retire_missing=retire_missing,
                   progress=sys.stderr.isatty())
        if plan.applied:
            session.commit()
    typer.echo(describe(plan))


def import_changeset(file: Path, planner: str, reason: str, publish: bool) -> None:
    """A grids file as a changeset: say its findings; exit 1 when it does not validate."""
    from sqlalchemy.orm import Session

    from gridgis import db
    from gridgis.planning import files as planning_files

    with Session(db.get_engine()) as session:
        found, findings = planning_files.changeset_from_file(session, planner, file, reason,
                                                             publish)
        errors = [f for f in findings if f["severity"] == "error"]
        if not errors:  # a file that does not validate leaves nothing behind
            session.commit()
    done = "not kept" if errors else "published" if publish else "open"
    typer.echo(f"changeset {found.id} ({done}): {len(findings)} findings, "
               f"{len(errors)} errors")
    for f in findings[:CODES_SHOWN]:
        typer.echo(f"  {f['severity']} {f['check']} {f['grid']}: {f['message']}")
    if errors:
        raise InvalidInput("the file does not validate: fix it and import it again")


def describe(plan: "ImportPlan") -> str:
    """Return an import plan as a few lines: the counts, then some codes of each kind."""
    done = "imported" if plan.applied else "dry run, nothing written:"
    lines = [f"{plan.layer} from {plan.source} ({plan.rows} rows) {done} "
             f"{len(plan.added)} added, {len(plan.changed)} changed, "
             f"{len(plan.retired)} retired"]
    for what, codes in (("added", plan.added), ("changed", plan.changed),
                        ("retired", plan.retired)):
        if codes:
            more = f" ... and {len(codes) - CODES_SHOWN} more" * (len(codes) > CODES_SHOWN)
            lines.append(f"  {what}: {' '.join(codes[:CODES_SHOWN])}{more}")
    return "\n".join(lines)


def export_layer(
    layer: Annotated[str, typer.Argument(help="buildings | stations | shelters | residents | "
                                              "grids | admin-units")],
    file: Annotated[Path, typer.Argument(help="where to write; the extension gives the "
                                              "format")],
    within: Annotated[str | None, typer.Option(help="code of an admin unit or grid to look "
                                                    "inside")] = None,
    file_format: Annotated[str | None, typer.Option("--format", help="geojson | gpkg | shp "
                                                    "(zipped) | csv")] = None,
) -> None:
    """Export the live rows of a layer to a file (EPSG:4326); residents are audited."""
    from sqlalchemy.orm import Session

    from gridgis import db
    from gridgis.layers import export

    with Session(db.get_engine()) as session:
        count = export.export_layer(session, layer, file, file_format=file_format, within=within)
        session.commit()  # the audit entry of a residents export
    typer.echo(f"wrote {count} {layer} to {file}")

