"""The schema of the SIS database the pipeline reads (powerschool_sis.sql in this folder): PowerSchool's
tables and columns, as far as the CALPADS extracts use them (docs/sis-sources.md).

tests/unit/test_sis_schema.py checks it (the enrollment's CALPADS codes on STUDENTS and REENROLLMENTS).
"""

from __future__ import annotations

from importlib import resources

import sqlalchemy as sa

SIS_TABLES = (
    "PREFS", "SCHOOLS", "TERMS", "CALENDAR_DAY", "STUDENTS", "REENROLLMENTS", "S_CA_STU_X",
    "S_CA_STU_CALPADSPROGRAMS_C", "S_CA_CALPADS_STUDENTSERVICES_C", "ATTENDANCE_CODE", "ATTENDANCE",
)


def schema_ddl() -> str:
    return resources.files(__package__).joinpath("powerschool_sis.sql").read_text()


def ddl_statements() -> list[str]:
    """The DDL split into statements, SQL comments removed."""
    lines = []
    for line in schema_ddl().splitlines():
        code = line.split("--", 1)[0]
        if code.strip():
            lines.append(code)
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def create_sis_schema(engine: sa.Engine) -> None:
    """Create the contract tables (for the demo district and tests)."""
    with engine.begin() as conn:
        for stmt in ddl_statements():
            conn.exec_driver_sql(stmt)


def sis_metadata(engine: sa.Engine) -> sa.MetaData:
    """Reflect the SIS tables (names are upper case in the DDL; SQLite keeps them,
    PostgreSQL folds unquoted names to lower case)."""
    md = sa.MetaData()
    md.reflect(engine)
    return md
