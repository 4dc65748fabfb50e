"""Least privilege: acting as the analyst role, every personal raw column is refused and nothing
outside analytics opens. The privilege check is real (the role is taken), and reads no value."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lifecycle.checks import CheckResult, Finding
from lifecycle.db import describe_db_error
from lifecycle.guard.scan import scan
from lifecycle.guard.zone import ANALYTICS
from lifecycle.policy import Policy, quote_ident

ANALYST_ROLE = "lifecycle_analyst"
CLOSED_SCHEMAS = ("shop", "lifecycle", "logistics")  # the analyst may not even look inside
INSUFFICIENT_PRIVILEGE = "42501"

_ROLE_EXISTS = sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r")
_CLOSED_READABLE = sa.text("""
    SELECT n.nspname, c.relname, has_schema_privilege(n.oid, 'USAGE') AS usage,
           has_any_column_privilege(c.oid, 'SELECT') AS readable
    FROM pg_namespace n
    LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
    WHERE n.nspname = ANY(:schemas)
    ORDER BY 1, 2
""")
_ANALYTICS_READABLE = sa.text("""
    SELECT count(*) FILTER (WHERE has_schema_privilege(c.relnamespace, 'USAGE')
                              AND has_table_privilege(c.oid, 'SELECT')), count(*)
    FROM pg_class c
    WHERE c.relnamespace = to_regnamespace(:schema)::oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
""")


def _refused(conn: Connection, sql: str) -> bool:
    """Runs `sql` in a savepoint: True when the privilege check refuses it."""
    try:
        with conn.begin_nested():
            conn.execute(sa.text(sql))
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == INSUFFICIENT_PRIVILEGE:
            return True
        raise
    return False


def _checked_as(conn: Connection, policy: Policy, role: str) -> CheckResult:
    """The checks themselves, on a connection already acting as `role`."""
    result = CheckResult()
    refused = 0
    for spec in policy.raw.tables().values():
        for column in spec.personal_columns:
            if _refused(conn, f"SELECT {quote_ident(column)} FROM {spec.sql} LIMIT 0"):
                refused += 1
                continue
            result.findings.append(
                Finding(
                    spec.table,
                    column,
                    "personal_column_readable",
                    0,
                    detail=f"{role} can select it; revoke the grant that opens it",
                )
            )
    schemas = sorted({spec.schema for spec in policy.raw.tables().values()} | set(CLOSED_SCHEMAS))
    rows = conn.execute(_CLOSED_READABLE, {"schemas": schemas}).all()
    for schema in sorted({r.nspname for r in rows if r.usage}):
        result.findings.append(
            Finding(
                schema,
                "",
                "schema_usage",
                0,
                detail=f"{role} has USAGE on schema {schema}; revoke it",
            )
        )
    for r in rows:
        if r.relname is not None and r.usage and r.readable:
            result.findings.append(
                Finding(
                    f"{r.nspname}.{r.relname}",
                    "",
                    "relation_readable",
                    0,
                    detail=f"{role} can read it; revoke the grant",
                )
            )
    readable, total = conn.execute(_ANALYTICS_READABLE, {"schema": ANALYTICS}).one()
    result.scanned = {
        "personal_columns_refused": refused,
        "analytics_relations_readable": readable,
        "analytics_relations": total,
    }
    return result


@scan
def analyst_access(engine: Engine, policy: Policy, role: str = ANALYST_ROLE) -> CheckResult:
    """Acting as the analyst role, every personal raw column is refused and nothing outside
    analytics opens.

    Runs `SET LOCAL ROLE` in a transaction that is rolled back, and selects each personal column
    with LIMIT 0: the privilege check is real, and no value is read even if it wrongly succeeds.
    """
    with engine.connect() as conn:
        tx = conn.begin()
        try:
            if not conn.execute(_ROLE_EXISTS, {"r": role}).scalar():
                return CheckResult(
                    [
                        Finding(
                            role,
                            "",
                            "missing_role",
                            0,
                            detail="run `lifecycle db upgrade` (migration 0004 creates it)",
                        )
                    ]
                )
            try:
                with conn.begin_nested():
                    conn.execute(sa.text(f"SET LOCAL ROLE {quote_ident(role)}"))
            except sa.exc.DBAPIError as exc:
                return CheckResult(
                    [
                        Finding(
                            role,
                            "",
                            "cannot_act_as_analyst",
                            0,
                            detail=(
                                f"{describe_db_error(exc)}; the guard's database user must be a member: "
                                f"GRANT {role} TO <user>"
                            ),
                        )
                    ]
                )
            return _checked_as(conn, policy, role)
        finally:
            tx.rollback()
