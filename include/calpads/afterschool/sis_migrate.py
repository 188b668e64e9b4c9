"""calpads-sis-migrate: add the afterschool participation table to the SIS (run by the district, by hand).

    python -m calpads.afterschool.sis_migrate --url postgresql://dba@sis-db/powerschool          # show the SQL
    python -m calpads.afterschool.sis_migrate --url postgresql://dba@sis-db/powerschool --apply  # run it

Never called by a DAG: the pipeline's own SIS login should not be able to create tables.
Migrations already applied (their table exists) are skipped, so running it twice is harmless.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources

import sqlalchemy as sa

# migration id -> the table it creates (present = applied)
MIGRATIONS = {"0001_u_afterschool_participation": "U_AFTERSCHOOL_PARTICIPATION"}


def migration_sql(name: str, dialect: str) -> str:
    folder = resources.files("calpads.afterschool").joinpath("sql")
    variant = folder.joinpath(f"{name}.{dialect}.sql")
    return (variant if variant.is_file() else folder.joinpath(f"{name}.sql")).read_text()


def statements(sql: str) -> list[str]:
    lines = [line.split("--", 1)[0] for line in sql.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def pending(engine: sa.Engine) -> list[str]:
    present = {t.lower() for t in sa.inspect(engine).get_table_names()}
    return [m for m, table in MIGRATIONS.items() if table.lower() not in present]


def migrate(engine: sa.Engine, apply: bool = False) -> list[str]:
    """The pending migrations' SQL; executed (one transaction each) when apply."""
    shown = []
    for name in pending(engine):
        sql = migration_sql(name, engine.dialect.name)
        shown.append(f"-- {name} ({engine.dialect.name})\n{sql}")
        if apply:
            with engine.begin() as conn:
                for stmt in statements(sql):
                    conn.exec_driver_sql(stmt)
    return shown


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="calpads-sis-migrate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="SQLAlchemy URL of the SIS database, with a login that may CREATE")
    ap.add_argument("--apply", action="store_true", help="run the SQL (default: only print it)")
    args = ap.parse_args(argv)
    url = sa.make_url(args.url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg2")
    engine = sa.create_engine(url)
    try:
        shown = migrate(engine, apply=args.apply)
    finally:
        engine.dispose()
    if not shown:
        print("calpads-sis-migrate: nothing to do (every migration is applied)")
        return 0
    print("\n".join(shown))
    print(f"calpads-sis-migrate: {'applied' if args.apply else 'would apply (add --apply)'} "
          f"{len(shown)} migration(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
