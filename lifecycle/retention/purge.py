"""Clearing due orders: one committed batch of order ids at a time, each with its ledger rows.

The batch statement is shared by the nightly purge (the retention rule) and customers' erasure
requests (the requested-erasure rule): the same UPDATE, case-note clearing and ledger insert, so
physical erasure and the report treat both alike. The rules themselves are in
lifecycle/retention/rules.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lifecycle.batches import keyset_bound_sql, run_in_batches
from lifecycle.db import describe_db_error
from lifecycle.orders import SAMPLE_IDS
from lifecycle.policy import Policy
from lifecycle.retention import liveness
from lifecycle.retention.coverage import require_personal_coverage
from lifecycle.retention.rules import Cutoffs, RetentionSql

# How long one batch of the nightly purge waits for a row another session holds, how often it
# tries, and the pause between tries. Unbounded, one due order the shop's own session kept locked
# (idle in its transaction) held the night for as long as the lock lasted, and the rows the
# batch had already updated stayed locked meanwhile, so the shop's own queries on them queued too.
# Past the tries the batch's range is left for the next night and named; its due orders are still
# due, so the blocking check `no_overdue_personal_data` says so (personal data past its window
# stayed: a real reason to stop publishing, whoever held the lock).
BATCH_LOCK_TIMEOUT_MS = 30_000
BATCH_LOCK_ATTEMPTS = 3
BATCH_LOCK_PAUSE_SECONDS = 5.0
LOCK_NOT_AVAILABLE = "55P03"


class PurgeError(RuntimeError):
    """A purge batch failed; its transaction rolled back and nothing of it was kept.

    `sqlstate` is the database's code, so a caller can tell a batch that fails the same way on
    every try (a shop trigger's RAISE, a type the value does not fit) from a passing one.
    """

    def __init__(self, message: str, sqlstate: str | None = None):
        super().__init__(message)
        self.sqlstate = sqlstate


# ---------------------------------------------------------------- the purge


@dataclass
class PurgeReport:
    """What one purge run did: counts, never values."""

    run_id: str
    as_of: datetime
    policy_version: str
    policy_hash: str
    purged: int = 0
    notes_cleared: int = 0
    recleared: int = 0
    batches: int = 0
    seconds: float = 0.0
    purged_ids_sample: list[int] = field(default_factory=list)
    # Order-id ranges (after, upto] left for the next night: another session held a row of each
    # past every try (BATCH_LOCK_TIMEOUT_MS).
    skipped_behind_locks: list[tuple[int, int]] = field(default_factory=list)

    def lock_warning(self) -> str | None:
        """One line naming the ranges left behind another session's locks; None when none was."""
        if not self.skipped_behind_locks:
            return None
        ranges = ", ".join(f"({a}, {b}]" for a, b in self.skipped_behind_locks[:SAMPLE_IDS])
        return (
            f"{len(self.skipped_behind_locks)} purge batch(es) left for the next night: another "
            f"session held one of their rows past {BATCH_LOCK_ATTEMPTS} waits of "
            f"{BATCH_LOCK_TIMEOUT_MS // 1000} s (order ids {ranges}); their due orders still hold "
            "personal data (no_overdue_personal_data counts them): find the session in "
            "pg_stat_activity (idle in transaction) and end it"
        )

    @property
    def rows_per_second(self) -> float:
        return self.purged / self.seconds if self.seconds else 0.0

    def metadata(self) -> dict[str, object]:
        """Counts and order ids for the run's materialization; never a value."""
        return {
            "purged": self.purged,
            "case_notes_cleared": self.notes_cleared,
            "recleared": self.recleared,
            "batches": self.batches,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second),
            "purged_sample_order_ids": self.purged_ids_sample,
            "batches_left_behind_locks": len(self.skipped_behind_locks),
            "as_of": self.as_of.isoformat(),
            "policy_version": self.policy_version,
            "policy_hash": self.policy_hash[:12],
        }


@dataclass(frozen=True)
class _Rule:
    """Which orders one batch clears (scope and dueness) and how its ledger rows read."""

    orders_scope: str
    cases_scope: str
    due: str
    action: str
    reason: str
    request_id: str = "CAST(NULL AS bigint)"
    reclear: bool = False
    narrowed: str = "TRUE"  # implied by `due`: a condition an index can read


def _retention_rule(q: RetentionSql, reclear: bool = True) -> _Rule:
    oc, cc = q.oc, q.cc
    return _Rule(
        orders_scope=f"{oc['order_id']} > :after AND {oc['order_id']} <= :upto",
        cases_scope=f"{cc['order_id']} > :after AND {cc['order_id']} <= :upto",
        due=q.due,
        action="retention_purge",
        reason="""CASE p.status WHEN 'delivered' THEN 'after_sales_window_closed'
                                WHEN 'cancelled' THEN 'cancelled_retention_elapsed'
                                ELSE 'abandoned_unpaid' END""",
        reclear=reclear,
        narrowed=q.window_may_have_closed,
    )


def _request_rule(q: RetentionSql) -> _Rule:
    """The customer's orders of :order_ids, cleared if erasable now; and those already marked
    cleared that hold a personal value again (a note added to a closed case, a value a faulty
    writer put back) cleared again, ledgered with the request. An erasure answered `done` left
    such values in place until the nightly's re-clear, which no request named."""
    oc, cc = q.oc, q.cc
    return _Rule(
        orders_scope=f"{oc['customer_id']} = :customer_id AND {oc['order_id']} = ANY(:order_ids)",
        cases_scope=f"{cc['order_id']} = ANY(:order_ids)",
        due=q.erasable_on_request,
        action="erasure_request",
        reason="'erasure_requested'",
        request_id=":request_id",
        reclear=True,
    )


def _purge_batch_sql(q: RetentionSql, rule: _Rule | None = None) -> str:
    """One batch as one statement: clear due orders, their case notes, and write the ledger.

    The UPDATE carries the whole due predicate, so a row changed by a concurrent transaction is
    re-checked against it before being cleared. The ledger names the columns the purge set to
    NULL (the policy's personal columns, plus the case columns where a case held a value).
    Under the retention rule a second UPDATE of the same range clears again an order marked
    cleared that still holds a personal value (`values_left`), keeping its first `purged_at`,
    ledgered as `retention_reclear`. It is a statement of its own (a CTE) rather than an `OR` in
    the first one's WHERE: under an `OR` PostgreSQL cannot turn the due rule's `NOT EXISTS` over
    the cases into a hashed anti-join and probes the cases' index once per order (2.3× the
    hand-written UPDATE at 250k orders, bench/RESULTS.md). The two select disjoint rows
    (`purged_at` NULL or not), so no row is changed twice. The re-clear finds its rows through
    the partial indexes of migration 0140 (`values_left_ids`), so it costs what is left to clear,
    not a scan of the range's cleared orders; `values_left` is checked again on the row itself.
    """
    oc, cc = q.oc, q.cc
    rule = rule or _retention_rule(q)
    clear = ", ".join(f"{col} = NULL" for col in q.personal)
    returning = f"RETURNING {oc['order_id']} AS order_id, {oc['status']} AS status"
    purged = f"""cleared AS (
        UPDATE {q.orders} o SET {clear}, {q.purged_at_col} = now()
        WHERE {rule.orders_scope} AND {q.not_purged} AND {rule.narrowed} AND {rule.due}
        {returning}, false AS reclear
    )"""
    if rule.reclear:
        purged += f""", recleared AS (
        UPDATE {q.orders} o SET {clear}
        WHERE {rule.orders_scope} AND {oc["order_id"]} IN (
            {q.values_left_ids(rule.orders_scope, rule.cases_scope)})
          AND {q.values_left}
        {returning}, true AS reclear
    ), purged AS (SELECT * FROM cleared UNION ALL SELECT * FROM recleared)"""
    else:
        purged += ", purged AS (SELECT * FROM cleared)"
    order_columns = "ARRAY[" + ", ".join(f"'{n}'" for n in q.personal_names) + "]::text[]"
    notes_cte, notes_join, case_columns = "", "", "'{}'::text[]"
    if q.case_personal:
        case_held = " OR ".join(f"c.{col} IS NOT NULL" for col in q.case_personal)
        set_cases = ", ".join(f"{col} = NULL" for col in q.case_personal)
        names = ", ".join(f"'{n}'" for n in q.case_personal_names)
        notes_cte = f""", notes AS (
            UPDATE {q.cases} c SET {set_cases}
            FROM purged p WHERE {cc["order_id"]} = p.order_id AND ({case_held}) AND {rule.cases_scope}
            RETURNING {cc["order_id"]} AS order_id
        )"""
        notes_join = "LEFT JOIN (SELECT DISTINCT order_id FROM notes) n ON n.order_id = p.order_id"
        case_columns = (
            f"CASE WHEN n.order_id IS NOT NULL THEN ARRAY[{names}]::text[] ELSE '{{}}'::text[] END"
        )
    return f"""
    WITH {purged}{notes_cte}, ledger AS (
        INSERT INTO lifecycle.purge_ledger
            (run_id, order_id, purged_at, action, reason, request_id, policy_version, policy_hash,
             cleared_columns)
        SELECT :run_id, p.order_id, now(),
               CASE WHEN p.reclear THEN 'retention_reclear' ELSE '{rule.action}' END,
               CASE WHEN p.reclear THEN 'personal_values_left' ELSE {rule.reason} END,
               {rule.request_id}, :policy_version, :policy_hash, {order_columns} || {case_columns}
        FROM purged p {notes_join}
        RETURNING order_id, cardinality(cleared_columns) > {len(q.personal)} AS with_case,
                  action = 'retention_reclear' AS reclear
    )
    SELECT count(*) FILTER (WHERE NOT reclear), count(*) FILTER (WHERE with_case),
           (array_agg(order_id ORDER BY order_id) FILTER (WHERE NOT reclear))[1:{SAMPLE_IDS}],
           count(*) FILTER (WHERE reclear)
    FROM ledger
    """


_START_RUN = sa.text("""
    INSERT INTO lifecycle.purge_runs (run_id, as_of, policy_version, policy_hash)
    VALUES (:run_id, :as_of, :policy_version, :policy_hash)
    ON CONFLICT (run_id) DO UPDATE SET status = 'running', as_of = EXCLUDED.as_of, started_at = now()
""")
_FINISH_RUN = sa.text("""
    UPDATE lifecycle.purge_runs
    SET finished_at = now(), status = :status, purged = :purged, summary = CAST(:summary AS jsonb)
    WHERE run_id = :run_id
""")


def _record(engine: Engine, statement: sa.TextClause, **params) -> None:
    with engine.begin() as conn:
        conn.execute(statement, params)


def run_purge(
    engine: Engine,
    policy: Policy,
    run_id: str,
    as_of: datetime | None = None,
    on_batch: Callable[[PurgeReport], None] | None = None,
) -> PurgeReport:
    """Clears the personal fields of every due order, one committed batch of order ids at a time.

    Each batch is one statement in one transaction (select due rows, clear them, clear their
    case notes, write the ledger), so a run killed at any point keeps what it committed and the
    next run picks up the rest; a repeated run finds nothing due and changes nothing.
    """
    as_of = as_of or datetime.now(UTC)
    require_personal_coverage(engine, policy)  # before anything is written, run row included
    q = RetentionSql(policy)
    params = {
        **Cutoffs.at(as_of, policy).params(),
        "run_id": run_id,
        "policy_version": policy.version,
        "policy_hash": policy.sha256,
    }
    report = PurgeReport(
        run_id=run_id, as_of=as_of, policy_version=policy.version, policy_hash=policy.sha256
    )
    alive, _ = liveness.claim_run(engine, run_id)  # and marks runs whose process died `killed`
    _record(
        engine,
        _START_RUN,
        run_id=run_id,
        as_of=as_of,
        policy_version=policy.version,
        policy_hash=policy.sha256,
    )
    batch_sql = sa.text(_purge_batch_sql(q, _retention_rule(q, reclear=_values_left(engine, q))))
    bound_sql = _batch_bounds_sql(q)
    started = time.perf_counter()
    status = "failed"
    try:
        for outcome in run_in_batches(
            engine,
            bound_sql,
            policy.retention.batch_size,
            lambda conn, after, upto: _run_batch_within_lock_timeout(
                conn, batch_sql, {**params, "after": after, "upto": upto}
            ),
            bound_params={"latest_cutoff": params["latest_cutoff"]},
        ):
            if isinstance(outcome, _LeftBehindLocks):
                report.skipped_behind_locks.append((outcome.after, outcome.upto))
                continue
            purged, with_notes, sample, recleared = outcome
            report.batches += 1
            report.purged += purged
            report.notes_cleared += with_notes
            report.recleared += recleared
            room = SAMPLE_IDS - len(report.purged_ids_sample)
            report.purged_ids_sample += (sample or [])[: max(room, 0)]
            report.seconds = time.perf_counter() - started
            if on_batch:
                on_batch(report)
        status = "succeeded"
    finally:
        report.seconds = time.perf_counter() - started
        summary = {
            "batches": report.batches,
            "recleared": report.recleared,
            "notes_cleared": report.notes_cleared,
            "seconds": round(report.seconds, 3),
            "batches_left_behind_locks": report.skipped_behind_locks,
        }
        _record(
            engine,
            _FINISH_RUN,
            run_id=run_id,
            status=status,
            purged=report.purged,
            summary=json.dumps(summary),
        )
        alive.release()
    return report


def _values_left(engine: Engine, q: RetentionSql) -> bool:
    """Whether any cleared order still holds a personal value, read through migration 0140's
    partial indexes (empty on a healthy shop): the batches re-clear only when one does.

    In the batch statement the re-clear is planned from the columns' statistics, which take the
    cleared orders' NULLs and the others' values as independent: on the 1M partitioned bench
    shop PostgreSQL expected 684k orders holding a value after their clearing (there were none)
    and read every cleared order in each batch, 0.37 s of a 0.48 s batch; asked alone, the same
    question reads the indexes in 0.05-0.07 s. An order that gets a value after this is cleared
    again the next night, and the blocking check `cleared_orders_hold_no_personal_data`, which
    runs after the purge, fails this one meanwhile."""
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT EXISTS ({q.values_left_ids()})")).scalar_one()


def _batch_bounds_sql(q: RetentionSql) -> str:
    """Batches are sized by the orders not cleared yet whose own window may have closed (read
    through shop.orders_window_opened_idx, migration 0190, or shop.orders_not_purged_idx, 0110,
    whichever PostgreSQL finds cheaper), so a night costs what became due, not the orders in
    flight; the ranges still cover every id, so the re-clear of values left (read through
    migration 0140's indexes) sees every cleared order."""
    return keyset_bound_sql(
        q.orders, q.oc["order_id"], where=f"{q.not_purged} AND {q.window_may_have_closed}"
    )


@dataclass(frozen=True)
class _LeftBehindLocks:
    """A batch whose range another session kept locked past every try."""

    after: int
    upto: int


def _run_batch_within_lock_timeout(
    conn: Connection, statement: sa.TextClause, params: dict
) -> tuple[int, int, list[int] | None, int] | _LeftBehindLocks:
    """`_run_batch` waiting at most BATCH_LOCK_TIMEOUT_MS for a lock, BATCH_LOCK_ATTEMPTS times;
    each timed-out try is rolled back to a savepoint, so it releases the rows it had updated."""
    conn.execute(sa.text(f"SET LOCAL lock_timeout = {int(BATCH_LOCK_TIMEOUT_MS)}"))
    for attempt in range(BATCH_LOCK_ATTEMPTS):
        savepoint = conn.begin_nested()
        try:
            outcome = _run_batch(conn, statement, params)
        except PurgeError as exc:
            savepoint.rollback()
            if exc.sqlstate != LOCK_NOT_AVAILABLE:
                raise
            if attempt + 1 < BATCH_LOCK_ATTEMPTS:
                time.sleep(BATCH_LOCK_PAUSE_SECONDS)
            continue
        savepoint.commit()
        return outcome
    return _LeftBehindLocks(params["after"], params["upto"])


def _run_batch(
    conn: Connection, statement: sa.TextClause, params: dict
) -> tuple[int, int, list[int] | None, int]:
    """Runs one batch; returns (orders purged, of which with case notes cleared, sample ids,
    orders cleared again)."""
    try:
        return tuple(conn.execute(statement, params).one())
    except sa.exc.DBAPIError as exc:
        # The driver's text can carry row contents (e.g. "Failing row contains ..."): keep only
        # the error class and the batch's id range (or request id).
        where = (
            f"order_id in ({params['after']}, {params['upto']}]"
            if "after" in params
            else f"erasure request {params['request_id']}"
        )
        raise PurgeError(
            f"purge batch for {where} rolled back: {describe_db_error(exc)}",
            sqlstate=getattr(getattr(exc.orig, "diag", None), "sqlstate", None),
        ) from None


# ---------------------------------------------------------------- requested erasure


def _blockers_sql(q: RetentionSql) -> str:
    # Same order as `erasable_on_request` reads, so an order with no blocker is exactly one it clears.
    return f"""
    SELECT {q.oc["order_id"]},
           CASE WHEN a.anomaly IS NOT NULL THEN 'anomaly:' || a.anomaly
                WHEN {q.in_delivery} THEN 'in_delivery'
                WHEN {q.open_case} THEN 'open_after_sales_case' END
    FROM {q.orders} o CROSS JOIN LATERAL (SELECT {q.anomaly} AS anomaly) a
    WHERE {_request_rule(q).orders_scope} AND {q.not_purged}
    ORDER BY 1
    """


_REQUEST_CLEARED = sa.text("""
    SELECT order_id FROM lifecycle.purge_ledger
    WHERE request_id = :request_id AND run_id = :run_id AND action = 'erasure_request'
    ORDER BY order_id
""")


@dataclass
class RequestedErasure:
    """What an erasure request's batch did: orders cleared now, and why the others still wait."""

    cleared: list[int]
    notes_cleared: int
    waiting: dict[int, str]
    recleared: int = 0  # orders already marked cleared that held a value again


def erase_for_request(
    conn: Connection,
    policy: Policy,
    *,
    run_id: str,
    request_id: int,
    customer_id: int,
    order_ids: list[int],
    as_of: datetime,
) -> RequestedErasure:
    """Clears, in the caller's transaction, the request's orders that may be erased now.

    The nightly's batch statement under the requested-erasure rule, ledgered with the request id,
    so physical erasure (lifecycle/erasure.py) picks these rows up like any purge.
    """
    # Like the nightly: a policy that leaves a personal column out would mark these orders cleared
    # while keeping its values, so the request's erasure is refused before it writes anything.
    require_personal_coverage(conn.engine, policy, refused="request erasure")
    q = RetentionSql(policy)
    params = {
        "as_of": as_of,
        "run_id": run_id,
        "request_id": request_id,
        "customer_id": customer_id,
        "order_ids": list(order_ids),
        "policy_version": policy.version,
        "policy_hash": policy.sha256,
    }
    _, notes_cleared, _, recleared = _run_batch(
        conn, sa.text(_purge_batch_sql(q, _request_rule(q))), params
    )
    cleared = list(conn.execute(_REQUEST_CLEARED, params).scalars())
    waiting = {order_id: why for order_id, why in conn.execute(sa.text(_blockers_sql(q)), params)}
    return RequestedErasure(
        cleared=cleared, notes_cleared=notes_cleared, waiting=waiting, recleared=recleared
    )
