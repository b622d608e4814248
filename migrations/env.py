"""Alembic environment, wired with the geoalchemy2 helpers (spatial indexes, types)."""

from alembic import context
from geoalchemy2 import alembic_helpers
from sqlalchemy import create_engine, pool, text

import gridgis.alerts.checklist_models
import gridgis.alerts.models
import gridgis.layers.models
import gridgis.planning.models  # noqa: F401  (planning tables)
from gridgis.db import database_url
from gridgis.models import Base

config = context.config
target_metadata = Base.metadata


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    """Leave PostGIS's own tables (spatial_ref_sys, ...) out of autogenerate."""
    if type_ == "table" and name in {"spatial_ref_sys"}:
        return False
    return alembic_helpers.include_object(obj, name, type_, reflected, compare_to)


def url() -> str:
    return config.get_main_option("sqlalchemy.url") or database_url()


def run_migrations_offline() -> None:
    context.configure(
        url=url(),
        target_metadata=target_metadata,
        literal_binds=True,
        include_object=include_object,
        process_revision_directives=alembic_helpers.writer,
        render_item=alembic_helpers.render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        connectable = create_engine(url(), poolclass=pool.NullPool).connect()
    with connectable as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            include_object=include_object,
            process_revision_directives=alembic_helpers.writer,
            render_item=alembic_helpers.render_item,
        )
        with context.begin_transaction():
            # Two `gridgis db upgrade` at once: the second waits, then finds nothing to do.
            connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('gridgis migrate'))"))
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
