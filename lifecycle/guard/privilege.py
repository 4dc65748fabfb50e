"""Least privilege: acting as the analyst role, every personal raw column is refused and nothing
outside analytics opens. The privilege check is real (the role is taken), and reads no value.

A view is a door: PostgreSQL checks the relations it reads with its owner's rights, not its
reader's, unless it is `security_invoker` (PostgreSQL 15+). So a view in analytics over
shop.orders hands the analyst every order line while a direct read of shop.orders is refused;
the check therefore also asks the catalog (pg_rewrite, pg_depend, through views of views) which
views the analyst can read reach a raw table with someone else's rights.
"""

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
VIEW_READS_RAW_ZONE = "view_reads_raw_zone"
VIEW_CALLS_DEFINER_FUNCTION = "view_calls_definer_function"

# Every view the acting role can read (outside the system and closed schemas: those have findings
# of their own) and, recursively through the views it reads, every relation and function behind
# it. `owner_rights` says that some view on the path runs without security_invoker, so the
# relations below it are checked with that view's owner's rights, not the reader's. A
# materialized view is not followed: it is read as the table it was refreshed into, and the value
# checks read that table. Only the catalog is read, never a row.
_VIEWS_BEHIND = """
    WITH RECURSIVE door AS (
        SELECT c.oid
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'v'
          AND n.nspname <> ALL(:closed) AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND has_schema_privilege(n.oid, 'USAGE') AND has_any_column_privilege(c.oid, 'SELECT')
    ), behind(door, via, ref, refclass, owner_rights) AS (
        SELECT oid, oid, oid, 'pg_class'::regclass::oid, false FROM door
        UNION
        SELECT b.door, v.oid, d.refobjid, d.refclassid,
               b.owner_rights OR NOT EXISTS (
                   SELECT 1 FROM pg_options_to_table(v.reloptions) o
                   WHERE o.option_name = 'security_invoker' AND o.option_value::boolean)
        FROM behind b
        JOIN pg_class v ON v.oid = b.ref AND b.refclass = 'pg_class'::regclass AND v.relkind = 'v'
        JOIN pg_rewrite r ON r.ev_class = v.oid
        JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                        AND d.refclassid IN ('pg_class'::regclass, 'pg_proc'::regclass)
                        AND d.refobjid <> v.oid
    ), raw AS (
        SELECT c.oid, n.nspname || '.' || c.relname AS name
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname || '.' || c.relname = ANY(:raw)
    )
"""
# A raw table (or a partition of one) behind a door with the owner's rights, and which of its
# columns the views that read it name (none: a count or whole rows).
_VIEWS_READING_RAW = sa.text(
    _VIEWS_BEHIND
    + """
    SELECT format('%s.%s', dn.nspname, dc.relname) AS door, raw.name AS raw_table,
           coalesce(array_agg(DISTINCT a.attname::text ORDER BY a.attname::text)
                    FILTER (WHERE a.attname IS NOT NULL), '{}') AS columns
    FROM behind b
    JOIN raw ON raw.oid = coalesce(pg_partition_root(b.ref), b.ref)
    JOIN pg_class dc ON dc.oid = b.door JOIN pg_namespace dn ON dn.oid = dc.relnamespace
    JOIN pg_rewrite r ON r.ev_class = b.via
    LEFT JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                         AND d.refclassid = 'pg_class'::regclass AND d.refobjid = b.ref
                         AND d.refobjsubid > 0
    LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
    WHERE b.refclass = 'pg_class'::regclass AND b.owner_rights
    GROUP BY 1, 2
    ORDER BY 1, 2
"""
)
# A SECURITY DEFINER function behind a door runs with its owner's rights whatever the view is;
# its body is not in the catalog's dependencies (PL/pgSQL, a quoted SQL body), so it counts when
# its owner can read a raw table.
_VIEWS_CALLING_DEFINERS = sa.text(
    _VIEWS_BEHIND
    + """
    SELECT DISTINCT format('%s.%s', dn.nspname, dc.relname) AS door,
           format('%s.%s()', pn.nspname, p.proname) AS function
    FROM behind b
    JOIN pg_proc p ON p.oid = b.ref AND b.refclass = 'pg_proc'::regclass AND p.prosecdef
    JOIN pg_namespace pn ON pn.oid = p.pronamespace
    JOIN pg_class dc ON dc.oid = b.door JOIN pg_namespace dn ON dn.oid = dc.relnamespace
    WHERE has_function_privilege(p.oid, 'EXECUTE')
      AND EXISTS (SELECT 1 FROM raw WHERE has_any_column_privilege(p.proowner, raw.oid, 'SELECT'))
    ORDER BY 1, 2
"""
)
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
    doors = _views_behind(conn, policy, schemas)
    result.findings += doors
    readable, total = conn.execute(_ANALYTICS_READABLE, {"schema": ANALYTICS}).one()
    result.scanned = {
        "personal_columns_refused": refused,
        "views_reading_raw_zone": len({f.table for f in doors}),
        "analytics_relations_readable": readable,
        "analytics_relations": total,
    }
    return result


def _views_behind(conn: Connection, policy: Policy, closed: list[str]) -> list[Finding]:
    """Views the acting role can read that read a raw table with someone else's rights, or call a
    SECURITY DEFINER function whose owner can: one finding per view, naming the raw tables and
    columns it reaches (names only), and the fix.

    Any raw column counts, not only personal ones: customer and order ids and timestamps tie the
    lines to people, and what the view's SQL makes of them cannot be judged from the catalog."""
    params = {"closed": closed, "raw": [spec.table for spec in policy.raw.tables().values()]}
    reads: dict[str, list[str]] = {}
    for r in conn.execute(_VIEWS_READING_RAW, params):
        named = ", ".join(r.columns) if r.columns else "no column named: a count or whole rows"
        reads.setdefault(r.door, []).append(f"{r.raw_table} ({named})")
    findings = [
        Finding(
            door,
            "",
            VIEW_READS_RAW_ZONE,
            0,
            detail=(
                f"reads {'; '.join(tables)} with its owner's rights, so its readers get raw rows "
                "the raw zone refuses them; publish an aggregate table (or materialized view) of "
                f"at least k customers per row instead, or ALTER VIEW {door} SET "
                "(security_invoker = true) so the reader's own rights apply"
            ),
        )
        for door, tables in reads.items()
    ]
    calls: dict[str, list[str]] = {}
    for r in conn.execute(_VIEWS_CALLING_DEFINERS, params):
        calls.setdefault(r.door, []).append(r.function)
    findings += [
        Finding(
            door,
            "",
            VIEW_CALLS_DEFINER_FUNCTION,
            0,
            detail=(
                f"calls SECURITY DEFINER {', '.join(functions)}, which runs with its owner's "
                "rights, and its owner can read the raw zone; publish an aggregate table instead, "
                "or make the function SECURITY INVOKER"
            ),
        )
        for door, functions in calls.items()
    ]
    return findings


@scan
def analyst_access(engine: Engine, policy: Policy, role: str = ANALYST_ROLE) -> CheckResult:
    """Acting as the analyst role, every personal raw column is refused, nothing outside
    analytics opens, and no view the role can read reads a raw table with another role's rights.

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
