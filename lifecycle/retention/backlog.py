"""What physical erasure still owes: per table, the changes that left old row versions on disk
since the table's last rewrite, since when, and for how long that is allowed.

A change is known from the project's own records, read by time (indexed, so the cost follows the
night's changes): the purge ledger (orders, their case notes, the carrier hand-off rows of purged
orders), corrections in lifecycle.request_actions (orders and hand-off), hand-off refreshes that
removed or updated rows, and answered requests in shop.data_requests, whose payload is redacted
(found by row version, the table being small). A rewrite covers every change recorded before its
`covers_until`; docs/retention.md explains the bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lifecycle.checks import CheckResult, Finding
from lifecycle.policy import Policy
from lifecycle.policy.raw import DEFAULT_PERSONAL, DEFAULT_TABLES
from lifecycle.tables import HANDOFF_TABLE, REQUESTS_TABLE

_LEDGER = "SELECT recorded_at, xmin FROM lifecycle.purge_ledger WHERE recorded_at >= :mark"
_CORRECTED = """SELECT recorded_at, xmin FROM lifecycle.request_actions
    WHERE recorded_at >= :mark AND action = 'correct' AND outcome = 'corrected'"""
_CASE_NOTES = _LEDGER + " AND cleared_columns && CAST(:case_columns AS text[])"
_HANDOFF_REFRESHED = """SELECT finished_at, xmin FROM lifecycle.handoff_refreshes
    WHERE finished_at >= :mark AND removed + updated > 0"""
# A row version written by the last rewrite's horizon transaction or later may predate nothing of
# it; an answered request's payload was redacted in such a version. Unanswered ones hold live data.
_REQUESTS_ANSWERED = f"""SELECT coalesce(completed_at, now()), xmin FROM {REQUESTS_TABLE}
    WHERE status NOT IN ('received', 'in_progress')
      AND (CAST(:horizon AS xid8) IS NULL OR age(xmin) <= age(xid(CAST(:horizon AS xid8))))"""

_MARK = sa.text("""
    SELECT coalesce(covers_until, started_at), CAST(horizon_xid AS text)
    FROM lifecycle.erasure_runs WHERE :relation = ANY(tables)
    ORDER BY coalesce(covers_until, started_at) DESC LIMIT 1
""")
_WAITS = """
    SELECT min(recorded_at) AS first_wait,
           (SELECT waiting_for FROM lifecycle.erasure_waits
            WHERE :relation = ANY(relations) AND recorded_at >= :mark
            ORDER BY recorded_at DESC LIMIT 1) AS waiting_for
    FROM lifecycle.erasure_waits WHERE :relation = ANY(relations) AND recorded_at >= :mark
"""


@dataclass(frozen=True)
class PendingErasure:
    """One table whose cleared values are still in its files: since when, how many changes, and
    what held the last attempt back. `newest_xid` is the newest change's transaction id."""

    relation: str
    cleared_since: datetime
    changes: int
    newest_xid: str
    waiting_for: tuple[str, ...] = ()

    def age(self, now: datetime | None = None) -> timedelta:
        return (now or datetime.now(UTC)) - self.cleared_since


def sources(policy: Policy | None) -> dict[str, list[str]]:
    """Each table physical erasure rewrites, with the SQL of the changes that leave copies in it."""
    orders = policy.raw.orders.table if policy else DEFAULT_TABLES["orders"]
    cases = policy.raw.after_sales_cases.table if policy else DEFAULT_TABLES["after_sales_cases"]
    return {
        orders: [_LEDGER, _CORRECTED],
        cases: [_CASE_NOTES],
        HANDOFF_TABLE: [_LEDGER, _CORRECTED, _HANDOFF_REFRESHED],
        REQUESTS_TABLE: [_REQUESTS_ANSWERED],
    }


def _case_columns(policy: Policy | None) -> list[str]:
    """The case columns as the ledger names them (table.column)."""
    if policy is None:
        table, columns = DEFAULT_TABLES["after_sales_cases"], DEFAULT_PERSONAL["after_sales_cases"]
    else:
        table = policy.raw.after_sales_cases.table
        columns = policy.raw.after_sales_cases.personal_columns
    return [f"{table}.{column}" for column in columns]


def pending_for(
    conn: Connection, relation: str, changes_sql: list[str], case_columns: list[str]
) -> PendingErasure | None:
    """The changes to `relation` since its last rewrite, or None when its files hold none."""
    mark, horizon = conn.execute(_MARK, {"relation": relation}).one_or_none() or (None, None)
    params = {
        "mark": mark or datetime(1970, 1, 1, tzinfo=UTC),
        "horizon": horizon,
        "case_columns": case_columns,
        "relation": relation,
    }
    union = " UNION ALL ".join(f"({sql})" for sql in changes_sql)
    first, count, newest, waited, waiting_for = conn.execute(
        sa.text(f"""
        WITH e(at, x) AS ({union})
        SELECT (SELECT min(at) FROM e), (SELECT count(*) FROM e),
               (SELECT CAST(x AS text) FROM e ORDER BY age(x) LIMIT 1), w.*
        FROM ({_WAITS}) w
    """),
        params,
    ).one()
    if not count:
        return None
    since = min(t for t in (first, waited) if t is not None)
    return PendingErasure(relation, since, count, newest, tuple(waiting_for or ()))


def pending_erasures(engine: Engine, policy: Policy | None = None) -> list[PendingErasure]:
    """Every table whose cleared values still sit in its data files, oldest first (for the report
    and the deadline check). Without a policy, the reference schema's table names are used."""
    found = []
    with engine.connect() as conn:
        for relation, changes_sql in sources(policy).items():
            pending = pending_for(conn, relation, changes_sql, _case_columns(policy))
            if pending:
                found.append(pending)
    return sorted(found, key=lambda p: p.cleared_since)


def erasure_deadline(engine: Engine, policy: Policy, now: datetime | None = None) -> CheckResult:
    """Fails for each table whose cleared values have stayed on disk longer than
    `retention.erasure_deadline_hours`; a wait shorter than that is normal and passes."""
    now = now or datetime.now(UTC)
    deadline = timedelta(hours=policy.retention.erasure_deadline_hours)
    pending = pending_erasures(engine, policy)
    result = CheckResult()
    for p in pending:
        if p.age(now) > deadline:
            held = f"; held by {'; '.join(p.waiting_for[:3])}" if p.waiting_for else ""
            result.findings.append(
                Finding(
                    p.relation,
                    "",
                    "erasure_overdue",
                    p.changes,
                    detail=(
                        f"cleared values on disk for {p.age(now).total_seconds() / 3600:.1f} h, over "
                        f"retention.erasure_deadline_hours ({policy.retention.erasure_deadline_hours})"
                        f"{held}: end the long transaction or drop the stale replication slot, then "
                        "run `lifecycle nightly`"
                    ),
                )
            )
    oldest = max((p.age(now) for p in pending), default=timedelta(0))
    result.scanned = {"tables": len(sources(policy))}
    result.figures = {
        "pending_tables": len(pending),
        "oldest_pending_hours": round(oldest.total_seconds() / 3600, 2),
        "deadline_hours": policy.retention.erasure_deadline_hours,
    }
    return result
