"""Raw values in analytics: no analytics value, nor a name, phone or email inside one, equals a
personal value still held in the raw zone (keyed fingerprints, lifecycle.guard.fingerprints)."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from lifecycle.checks import CheckResult
from lifecycle.guard import fingerprints
from lifecycle.guard.key import GuardKey
from lifecycle.guard.scan import scan
from lifecycle.guard.zone import discover, quote_name, relation_sql
from lifecycle.policy import Policy


@scan
def raw_values_in_zone(engine: Engine, policy: Policy, key: GuardKey) -> CheckResult:
    """No analytics value, nor a name, phone or email inside one, equals a personal raw value.

    Two phases in one transaction: every distinct token of the zone is hashed and joined against
    the raw zone's digests in one pass; only the columns that hit are read again to count rows.
    """
    with engine.begin() as conn:
        relations = discover(conn)
        fingerprints.create_candidates(conn)
        columns = {
            (r.table, c.name): (relation_sql(conn, r.name), quote_name(conn, c.name))
            for r in relations
            for c in r.text_columns
        }
        tokens = sum(
            fingerprints.add_column_candidates(conn, key, *sql, *where)
            for where, sql in columns.items()
        )
        hits = fingerprints.find_hits(conn, key, policy)
        rows = {}
        for where in sorted({(h.relation, h.column) for h in hits}):
            hit_rows = fingerprints.column_hit_rows(conn, key, *columns[where], *where)
            rows.update({(*where, kind): count for kind, count in hit_rows.items()})
        found = fingerprints.matches(hits, rows)
    return CheckResult(
        findings=[match.finding() for match in found],
        scanned={
            "relations": len(relations),
            "text_columns": len(columns),
            "distinct_tokens": tokens,
            "raw_columns": len(fingerprints.raw_sources(policy)),
        },
    )
