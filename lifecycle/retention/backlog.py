"""What physical erasure still owes: per table, the changes that left old row versions on disk
since the table's last rewrite, since when, and for how long that is allowed.

A change is known from the project's own records, read by time (indexed, so the cost follows the
night's changes): the purge ledger (orders, their case notes, the carrier hand-off rows of purged
orders), corrections in lifecycle.request_actions (orders and hand-off), waiting orders of an
erasure that the shop deleted (orders and cases, same table), hand-off refreshes that
removed or updated rows, and answered requests in shop.data_requests, whose payload is redacted
(found by row version, the table being small). A rewrite covers every change recorded before its
`covers_until`, and so does a night that found nothing owed in the table (lifecycle.erasure_checks);
docs/retention.md explains the bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lifecycle.checks import CheckResult, Finding
from lifecycle.policy import Policy
from lifecycle.policy.raw import DEFAULT_PERSONAL, DEFAULT_TABLES
from lifecycle.retention import statistics
from lifecycle.tables import HANDOFF_TABLE, REQUESTS_TABLE

# Each change names its order as l.order_id ({order} selects it when the change is placed in a
# partition by its order); every source read by time starts at :mark.
_LEDGER = (
    "SELECT l.recorded_at, l.xmin{order} FROM lifecycle.purge_ledger l WHERE l.recorded_at >= :mark"
)
_CORRECTED = """SELECT l.recorded_at, l.xmin{order} FROM lifecycle.request_actions l
    WHERE l.recorded_at >= :mark AND l.action = 'correct' AND l.outcome = 'corrected'"""
# A waiting order the shop deleted while an erasure waited on it counts as erased
# (lifecycle/requests/finishing.py): its old row versions, and its cases', are still in the
# tables' files, and only a rewrite takes them out. The request is done; the erasure is owed.
_DELETED_BY_THE_SHOP = """SELECT l.recorded_at, l.xmin{order} FROM lifecycle.request_actions l
    WHERE l.recorded_at >= :mark AND l.action = 'erase'
      AND l.outcome = 'order_deleted_by_the_shop'"""
_CASE_NOTES = _LEDGER + " AND l.cleared_columns && CAST(:case_columns AS text[])"
_HANDOFF_REFRESHED = """SELECT finished_at, xmin FROM lifecycle.handoff_refreshes
    WHERE finished_at >= :mark AND removed + updated > 0"""
# A row version written by the last rewrite's horizon transaction or later may predate nothing of
# it; an answered request's payload was redacted in such a version. Unanswered ones hold live data.
_REQUESTS_ANSWERED = f"""SELECT coalesce(completed_at, now()), xmin FROM {REQUESTS_TABLE}
    WHERE status NOT IN ('received', 'in_progress')
      AND (CAST(:horizon AS xid8) IS NULL OR age(xmin) <= age(xid(CAST(:horizon AS xid8))))"""
# A relation's mark, with the horizon that goes with it: the later of its last rewrite and of the
# last night that found nothing owed in it (lifecycle.erasure_checks, migration 0180). Without the
# second, a table nothing is cleared in is never rewritten and its mark never moves: on a
# partitioned shop the partitions of the orders in flight then read every change ever recorded,
# each night. Both are taken the same way (erasure.py, `_COVERAGE`) before what they cover is read.
_LATEST_MARK = """
    SELECT mark, horizon FROM (
        SELECT coalesce(covers_until, started_at) AS mark, horizon_xid AS horizon
        FROM lifecycle.erasure_runs WHERE {relation} = ANY(tables)
        UNION ALL
        SELECT covers_until, horizon_xid FROM lifecycle.erasure_checks WHERE relation = {relation}
    ) latest ORDER BY mark DESC LIMIT 1"""
# A partitioned table is rewritten one leaf partition at a time: the one holding the change's order.
# An order the shop has deleted since it was cleared is in no partition now, but its old row
# versions still are, in the one it was in; which one is not known any more, so the change counts
# for every partition (each is rewritten once, then covered). Without this a cleared-then-deleted
# order left its values on disk with no pending erasure and no deadline.
#
# All partitions are counted in one statement: the changes since the oldest partition's mark are
# read once and each is placed by one lookup of its order (the planner picks index probes or a
# hash join), then joined with every partition's own mark and horizon. Asking partition by
# partition read the changes and probed every partition for each once per partition: O(partitions
# x changes), over 12 minutes for a large backlog at 10M orders in 40 partitions.
_PLACED = """
    WITH r AS MATERIALIZED (
        SELECT r.relation, to_regclass(r.relation) AS oid, coalesce(m.mark, :epoch) AS mark,
               m.horizon
        FROM unnest(CAST(:relations AS text[])) AS r(relation)
        LEFT JOIN LATERAL ({latest}) m ON true
    ),
    c(at, x, order_id) AS MATERIALIZED ({union}),
    held AS MATERIALIZED (
        SELECT DISTINCT t.{order_id} AS order_id, t.tableoid AS oid FROM {table} t
        WHERE t.{order_id} IN (SELECT order_id FROM c)
    ),
    placed AS (SELECT c.at, c.x, h.oid FROM c LEFT JOIN held h ON h.order_id = c.order_id),
    e AS (
        SELECT r.relation, e.at, e.x FROM placed e JOIN r ON r.oid = e.oid
        WHERE e.at >= r.mark AND (r.horizon IS NULL OR age(e.x) <= age(xid(r.horizon)))
        UNION ALL
        SELECT r.relation, e.at, e.x FROM placed e CROSS JOIN r
        WHERE e.oid IS NULL AND e.at >= r.mark
          AND (r.horizon IS NULL OR age(e.x) <= age(xid(r.horizon)))
    ),
    by_xid AS (  -- one transaction clears many orders: sort transactions, not changes
        SELECT relation, x, min(at) AS at, count(*) AS n FROM e GROUP BY relation, x
    )
    SELECT r.relation, g.first, g.count, g.newest, w.first_wait, w.waiting_for
    FROM r
    LEFT JOIN (
        SELECT relation, min(at) AS first, sum(n) AS count,
               (array_agg(CAST(x AS text) ORDER BY age(x)))[1] AS newest
        FROM by_xid GROUP BY relation) g ON g.relation = r.relation
    CROSS JOIN LATERAL (
        SELECT min(recorded_at) AS first_wait,
               (SELECT waiting_for FROM lifecycle.erasure_waits
                WHERE r.relation = ANY(relations) AND recorded_at >= r.mark
                ORDER BY recorded_at DESC LIMIT 1) AS waiting_for
        FROM lifecycle.erasure_waits WHERE r.relation = ANY(relations) AND recorded_at >= r.mark
    ) w
    ORDER BY r.relation
"""
_OLDEST_MARK = sa.text(f"""
    SELECT min(coalesce(m.mark, :epoch)) FROM unnest(CAST(:relations AS text[])) AS r(relation)
    LEFT JOIN LATERAL ({_LATEST_MARK.format(relation="r.relation")}) m ON true
""")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LEAVES = sa.text("""
    SELECT format('%I.%I', n.nspname, c.relname)
    FROM pg_partition_tree(to_regclass(:table)) t
    JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE t.isleaf ORDER BY t.relid
""")

# A change recorded after the mark may still be covered: the mark (covers_until) is the start of
# the oldest transaction open in the database when the rewrite began, and any open transaction
# pulls it back, one that never writes too (an autovacuum worker, a report idle in its transaction,
# a pg_dump). The rewrite's horizon (the snapshot xmin then) is exact: a change whose transaction
# id is older had committed (or aborted) before the rewrite began, so it is covered. Only changes
# at or after it are owed. (A frozen xmin reads as the oldest: covered.)
_AFTER_HORIZON = "(CAST(:horizon AS xid8) IS NULL OR age(u.x) <= age(xid(CAST(:horizon AS xid8))))"

_MARK = sa.text(
    f"SELECT m.mark, CAST(m.horizon AS text) FROM ({_LATEST_MARK.format(relation=':relation')}) m"
)
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


@dataclass(frozen=True)
class Source:
    """A table physical erasure rewrites, the SQL of the changes that leave copies in it, and the
    column by which those changes name an order (to place them in a partition)."""

    table: str
    sql: str
    changes: tuple[str, ...]
    order_id: str | None = None


def sources(policy: Policy | None) -> list[Source]:
    """Each table physical erasure rewrites, with what changes it."""
    orders = policy.raw.orders if policy else None
    cases = policy.raw.after_sales_cases if policy else None
    return [
        Source(
            orders.table if orders else DEFAULT_TABLES["orders"],
            orders.sql if orders else "shop.orders",
            (_LEDGER, _CORRECTED, _DELETED_BY_THE_SHOP),
            orders.col("order_id") if orders else "order_id",
        ),
        Source(
            cases.table if cases else DEFAULT_TABLES["after_sales_cases"],
            cases.sql if cases else "shop.after_sales_cases",
            (_CASE_NOTES, _DELETED_BY_THE_SHOP),
            cases.col("order_id") if cases else "order_id",
        ),
        Source(HANDOFF_TABLE, HANDOFF_TABLE, (_LEDGER, _CORRECTED, _HANDOFF_REFRESHED)),
        Source(REQUESTS_TABLE, REQUESTS_TABLE, (_REQUESTS_ANSWERED,)),
    ]


def relations(conn: Connection, source: Source) -> list[str]:
    """The relations a rewrite of `source` works on: its leaf partitions, or the table itself."""
    return list(conn.execute(_LEAVES, {"table": source.table}).scalars()) or [source.table]


def _case_columns(policy: Policy | None) -> list[str]:
    """The case columns as the ledger names them (table.column)."""
    if policy is None:
        table, columns = DEFAULT_TABLES["after_sales_cases"], DEFAULT_PERSONAL["after_sales_cases"]
    else:
        table = policy.raw.after_sales_cases.table
        columns = policy.raw.after_sales_cases.personal_columns
    return [f"{table}.{column}" for column in columns]


def pending_for(
    conn: Connection, relation: str, source: Source, case_columns: list[str]
) -> PendingErasure | None:
    """The changes to `relation` (an unpartitioned table) since its last rewrite, or None when
    its files hold none."""
    mark, horizon = conn.execute(_MARK, {"relation": relation}).one_or_none() or (None, None)
    params = {
        "mark": mark or _EPOCH,
        "horizon": horizon,
        "case_columns": case_columns,
        "relation": relation,
    }
    union = " UNION ALL ".join(f"({sql.format(order='')})" for sql in source.changes)
    first, count, newest, waited, waiting_for = conn.execute(
        sa.text(f"""
        WITH e(at, x) AS (SELECT u.at, u.x FROM ({union}) AS u(at, x) WHERE {_AFTER_HORIZON})
        SELECT (SELECT min(at) FROM e), (SELECT count(*) FROM e),
               (SELECT CAST(x AS text) FROM e ORDER BY age(x) LIMIT 1), w.*
        FROM ({_WAITS}) w
    """),
        params,
    ).one()
    return _pending(relation, first, count, newest, waited, waiting_for)


def pending_in_partitions(
    conn: Connection, partitions: list[str], source: Source, case_columns: list[str]
) -> list[PendingErasure]:
    """The changes to each leaf partition of `source` since that partition's last rewrite, all
    partitions in one statement (each change placed by its order, once)."""
    union = " UNION ALL ".join(f"({sql.format(order=', l.order_id')})" for sql in source.changes)
    oldest = conn.execute(_OLDEST_MARK, {"relations": partitions, "epoch": _EPOCH}).scalar_one()
    rows = conn.execute(
        sa.text(
            _PLACED.format(
                latest=_LATEST_MARK.format(relation="r.relation"),
                union=union,
                table=source.sql,
                order_id=source.order_id,
            )
        ),
        {"relations": partitions, "epoch": _EPOCH, "mark": oldest, "case_columns": case_columns},
    ).all()
    return [p for row in rows if (p := _pending(*row))]


def _pending(relation, first, count, newest, waited, waiting_for) -> PendingErasure | None:
    if not count:
        return None
    since = min(t for t in (first, waited) if t is not None)
    return PendingErasure(relation, since, int(count), newest, tuple(waiting_for or ()))


def pending_erasures(engine: Engine, policy: Policy | None = None) -> list[PendingErasure]:
    """Every table (or partition) whose cleared values still sit in its data files, oldest first,
    for the report and the deadline check. Without a policy, the reference schema's names. A
    table the shop does not have (e.g. no shop.data_requests) holds nothing to erase."""
    found = []
    case_columns = _case_columns(policy)
    with engine.connect() as conn:
        for source in sources(policy):
            if (
                conn.execute(sa.text("SELECT to_regclass(:r)"), {"r": source.table}).scalar()
                is None
            ):
                continue
            leaves = relations(conn, source)
            if leaves != [source.table] and source.order_id:
                found.extend(pending_in_partitions(conn, leaves, source, case_columns))
                continue
            for relation in leaves:  # unpartitioned, or changes not placed by order: all leaves
                if pending := pending_for(conn, relation, source, case_columns):
                    found.append(pending)
        if owed := statistics.owed(conn):  # old statistics rows sampled before the purge
            found.append(PendingErasure(statistics.RELATION, owed.since, 0, "", (owed.outcome,)))
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
