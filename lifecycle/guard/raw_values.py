"""Raw values in analytics: no analytics value, nor a name, phone or email inside one, equals a
personal value still held in the raw zone (keyed fingerprints, lifecycle.guard.fingerprints).

Analytics is read only by the guard's reader (lifecycle.guard.reader), which hashes the zone's
tokens; the job's connection hashes the raw zone and joins the two sets of digests in temp tables,
so it never runs code an analytics author wrote. A column the reader cannot read is a finding for
that column; the others are still compared.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lifecycle.checks import CheckResult, Finding
from lifecycle.guard import changes, fingerprints
from lifecycle.guard.key import GuardKey
from lifecycle.guard.privilege import INSUFFICIENT_PRIVILEGE
from lifecycle.guard.reader import reader_engine
from lifecycle.guard.scan import reason, scan
from lifecycle.guard.tokens import SQL_PARAMS as TOKENIZER
from lifecycle.guard.zone import ANALYTICS, discover, quote_name, relation_sql
from lifecycle.policy import Policy

SCAN = "raw_values"  # its positions (lifecycle.guard.changes)


def unreadable(table: str, column: str, exc: sa.exc.StatementError) -> Finding:
    """A relation or column the reader could not read: unchecked, so a finding (no value in it)."""
    refused = getattr(exc.orig, "sqlstate", None) == INSUFFICIENT_PRIVILEGE
    fix = (
        "its owner must let lifecycle_analyst read it, as the guard reads what analysts can"
        if refused
        else "fix or drop the relation"
    )
    return Finding(
        table,
        column,
        "check_error",
        0,
        detail=f"the guard's reader could not read it ({reason(exc)}); unchecked until {fix}",
    )


@scan
def raw_values_in_zone(
    engine: Engine, policy: Policy, key: GuardKey, reader: Engine | None = None
) -> CheckResult:
    """No analytics value, nor a name, phone or email inside one, equals a personal raw value.

    Three phases: the reader hashes every distinct token of the zone into the job's temp table;
    the job joins them against the raw zone's digests in one pass; the reader counts the rows of
    the columns that hit.
    """
    reader = reader or reader_engine(engine)
    findings: list[Finding] = []
    tonight = changes.plan(engine, SCAN, _compared_with(engine, policy))
    with reader.connect() as rconn, engine.begin() as conn:
        relations = tonight.wanted(discover(rconn))
        fingerprints.create_candidates(conn)
        columns = {
            (r.table, c.name): (relation_sql(rconn, r.name), quote_name(rconn, c.name))
            for r in relations
            for c in r.text_columns
        }
        tokens = 0
        for where, sql in columns.items():
            try:
                with rconn.begin_nested(), conn.begin_nested():
                    tokens += fingerprints.add_column_candidates(rconn, conn, key, *sql, *where)
            except sa.exc.DBAPIError as exc:
                findings.append(unreadable(*where, exc))
        hits = fingerprints.find_hits(conn, key, policy)
    rows = {}
    with reader.connect() as rconn:
        for where in sorted({(h.relation, h.column) for h in hits}):
            digests = [h.h for h in hits if (h.relation, h.column) == where]
            try:
                with rconn.begin_nested():
                    counted = fingerprints.column_hit_rows(rconn, key, *columns[where], digests)
            except sa.exc.DBAPIError as exc:
                findings.append(unreadable(*where, exc))
                continue
            rows.update({(*where, kind): count for kind, count in counted.items()})
    found = fingerprints.matches(hits, rows)
    findings += [match.finding() for match in found]
    dirty = {f.table.removeprefix(f"{ANALYTICS}.") for f in findings}
    tonight.save(engine, [r.name for r in relations], dirty)
    return CheckResult(
        findings=findings,
        scanned={
            "relations": len(relations),
            "text_columns": len(columns),
            "distinct_tokens": tokens,
            "raw_columns": len(fingerprints.raw_sources(policy)),
            **tonight.metadata(len(relations)),
        },
    )


def _compared_with(engine: Engine, policy: Policy) -> str:
    """What the zone's tokens are compared with: the raw zone as it stands (any write to a raw
    table reads every relation again) and the tokenizer."""
    tables = sorted({spec.table for spec in policy.raw.tables().values()})
    with engine.connect() as conn:
        raw = changes.tables_signature(conn, tables)
    return repr((raw, sorted(fingerprints.raw_sources(policy).values()), TOKENIZER))
