"""Generate the benchmark city (``gen_city.sql``) into its own database, step by step.

    .venv/bin/python bench/gen_city.py [--db gridgis_bench] [--scale 1.0] [--seed 0.42]

The database is a sibling of the one in use (same server and credentials, another name),
created and migrated when missing; whatever it held is wiped. Scale 1 is the city of
DESIGN.md: 20,000 grids, 1,000,000 buildings, 5,000,000 residents; ``--scale`` multiplies
buildings and residents (the grids stay 20,000).
"""

import argparse
import os
import re
import time
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from gridgis import db
from gridgis.settings import get_settings

SQL_FILE = Path(__file__).with_name("gen_city.sql")
STEP = re.compile(r"^-- step: (.+)$", re.MULTILINE)
BUILDINGS = 1_000_000
RESIDENTS = 5_000_000
COUNTS_SQL = """
SELECT (SELECT count(*) FROM admin_unit WHERE level = 'street') AS streets,
       (SELECT count(*) FROM admin_unit WHERE level = 'community') AS communities,
       (SELECT count(*) FROM grid) AS grids,
       (SELECT count(*) FROM building) AS buildings,
       (SELECT count(*) FROM building WHERE risk_flags <> '{}') AS risky_buildings,
       (SELECT count(*) FROM resident) AS residents,
       (SELECT count(*) FROM resident WHERE vulnerabilities <> '{}') AS vulnerable,
       (SELECT count(*) FROM station) AS stations,
       (SELECT count(*) FROM shelter) AS shelters,
       (SELECT sum(capacity) FROM shelter) AS shelter_places,
       (SELECT count(*) FROM app_user) AS users,
       (SELECT count(*) FROM grid WHERE NOT ST_IsValid(boundary)) AS invalid_grids,
       (SELECT count(*) FROM admin_unit WHERE NOT ST_IsValid(boundary)) AS invalid_units,
       pg_size_pretty(pg_database_size(current_database())) AS size
"""


def bench_url(name: str) -> str:
    """Return the URL of database ``name`` on the server in use (embedded or DATABASE_URL)."""
    get_settings.cache_clear()
    return make_url(db.database_url()).set(database=name).render_as_string(hide_password=False)


def steps(sql: str) -> list[tuple[str, str]]:
    """Return the (name, statements) blocks of ``gen_city.sql`` in order."""
    parts = STEP.split(sql)
    return [(parts[i].strip(), parts[i + 1]) for i in range(1, len(parts), 2)]


def libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="gridgis_bench", help="database name on the server")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="buildings and residents, 1 = 1,000,000 and 5,000,000")
    parser.add_argument("--seed", type=float, default=0.42, help="setseed() value, -1..1")
    args = parser.parse_args()
    if not -1 <= args.seed <= 1:
        parser.error("--seed must lie in -1..1")
    url = bench_url(args.db)
    os.environ["GRIDGIS_DATABASE_URL"] = url
    if db.ensure_database(url):
        print(f"created database {args.db}")
    db.upgrade_database(url)
    buildings = round(BUILDINGS * args.scale)
    residents = round(RESIDENTS * args.scale)
    started = time.perf_counter()
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        for name, value in (("bench.buildings", buildings), ("bench.residents", residents),
                            ("bench.seed", args.seed)):
            conn.execute("SELECT set_config(%s, %s, false)", (name, str(value)))
        for name, block in steps(SQL_FILE.read_text(encoding="utf-8")):
            t0 = time.perf_counter()
            conn.execute(block)
            print(f"{name:<45} {time.perf_counter() - t0:7.1f} s", flush=True)
        cursor = conn.execute(COUNTS_SQL)
        row = cursor.fetchone()
        assert row is not None
        columns = [c.name for c in cursor.description or []]
    print(f"{'total':<45} {time.perf_counter() - started:7.1f} s")
    print(f"database {args.db} (scale {args.scale:g}, seed {args.seed:g}):")
    for column, value in zip(columns, row, strict=True):
        print(f"  {column:<16} {value:>12,}" if isinstance(value, int)
              else f"  {column:<16} {value:>12}")


if __name__ == "__main__":
    main()
