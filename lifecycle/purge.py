"""The retention purge: when an order's personal fields are due, and clearing them.

The rule lives here once, as SQL fragments over the policy's tables:
  - delivered orders are due `after_sales_window_days` after delivered_at,
  - cancelled orders `cancelled_retention_days` after cancelled_at,
  - unpaid `placed` orders `abandoned_after_days` after placed_at,
  - an open after-sales case keeps the order; a closed one restarts the window from closed_at,
  - paid and shipped orders are in service and never due (reported as stale past a policy age),
  - rows whose timestamps cannot be trusted are anomalies and never due.
A customer's erasure request (lifecycle/requests.py) clears their orders through the same batch
statement under one more rule: at once, unless the order is being delivered (paid, shipped) or
has an open after-sales case; the windows above do not apply. Its ledger rows carry the request id.
The summary, the purge and the backlog check all use these fragments, so they cannot disagree.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lifecycle.db import describe_db_error
from lifecycle.policy import Policy, quote_ident

MAX_BIGINT = 9_223_372_036_854_775_807
SAMPLE_IDS = 20
STATUSES = ("placed", "paid", "shipped", "delivered", "cancelled")


class PurgeError(RuntimeError):
    """A purge batch failed; its transaction rolled back and nothing of it was kept."""


@dataclass(frozen=True)
class Cutoffs:
    """The instants that decide dueness, all derived from one `as_of` so a run is consistent."""

    as_of: datetime
    delivered: datetime
    cancelled: datetime
    abandoned: datetime
    stale: datetime

    @classmethod
    def at(cls, as_of: datetime, policy: Policy) -> "Cutoffs":
        if as_of.tzinfo is None:
            raise ValueError("as_of must be timezone-aware")
        r = policy.retention
        return cls(
            as_of=as_of,
            delivered=as_of - timedelta(days=r.after_sales_window_days),
            cancelled=as_of - timedelta(days=r.cancelled_retention_days),
            abandoned=as_of - timedelta(days=r.abandoned_after_days),
            stale=as_of - timedelta(days=r.stale_in_service_days),
        )

    def params(self) -> dict[str, datetime]:
        return {
            "as_of": self.as_of,
            "delivered_cutoff": self.delivered,
            "cancelled_cutoff": self.cancelled,
            "abandoned_cutoff": self.abandoned,
            "stale_cutoff": self.stale,
        }


class _Sql:
    """SQL fragments for one policy: quoted identifiers from the validated policy only."""

    def __init__(self, policy: Policy):
        o, c = policy.raw.orders, policy.raw.after_sales_cases
        self.orders, self.cases = o.sql, c.sql
        oc = {role: "o." + o.col(role) for role in o.columns}
        cc = {role: "c." + c.col(role) for role in c.columns}
        self.oc, self.cc = oc, cc
        self.personal = [quote_ident(col) for col in o.personal_columns]
        self.personal_names = [f"{o.table}.{col}" for col in o.personal_columns]
        self.case_personal = [quote_ident(col) for col in c.personal_columns]
        self.case_personal_names = [f"{c.table}.{col}" for col in c.personal_columns]
        statuses = ", ".join(f"'{s}'" for s in STATUSES)
        timestamps = ("placed_at", "paid_at", "shipped_at", "delivered_at", "cancelled_at")
        future = " OR ".join(f"{oc[t]} > :as_of" for t in timestamps)

        # Why an order cannot be judged (for the summary's labels); NULL when it can be.
        self.anomaly = f"""CASE
            WHEN {oc['status']} IS NULL OR {oc['status']} NOT IN ({statuses}) THEN 'unknown_status'
            WHEN {oc['placed_at']} IS NULL THEN 'missing_placed_at'
            WHEN {future} OR EXISTS (
                SELECT 1 FROM {self.cases} c WHERE {cc['order_id']} = {oc['order_id']}
                  AND ({cc['opened_at']} > :as_of OR {cc['closed_at']} > :as_of)) THEN 'future_timestamp'
            WHEN {oc['status']} = 'delivered' AND {oc['delivered_at']} IS NULL THEN 'delivered_without_delivered_at'
            WHEN {oc['delivered_at']} < {oc['placed_at']} THEN 'delivered_before_placed'
            WHEN {oc['status']} = 'cancelled' AND {oc['cancelled_at']} IS NULL THEN 'cancelled_without_cancelled_at'
        END"""
        # The same screen as a plain conjunction the planner can estimate (a CASE … IS NULL
        # filter is estimated at a handful of rows and turns the case lookups into nested loops).
        # Case timestamps in the future are screened by `case_blocks` below. `(anomaly IS NULL)`
        # equals `trusted AND NOT <case in the future>`: tests/db/test_purge_rules.py proves it.
        not_future = " AND ".join(f"({oc[t]} IS NULL OR {oc[t]} <= :as_of)" for t in timestamps)
        self.trusted = f"""({oc['status']} IN ({statuses}) AND {oc['placed_at']} <= :as_of AND {not_future}
            AND ({oc['status']} <> 'delivered' OR {oc['delivered_at']} IS NOT NULL)
            AND ({oc['delivered_at']} IS NULL OR {oc['delivered_at']} >= {oc['placed_at']})
            AND ({oc['status']} <> 'cancelled' OR {oc['cancelled_at']} IS NOT NULL))"""
        # The order's own window has closed, ignoring after-sales cases.
        self.base_passed = f"""(
               ({oc['status']} = 'delivered' AND {oc['delivered_at']} <= :delivered_cutoff)
            OR ({oc['status']} = 'cancelled' AND {oc['cancelled_at']} <= :cancelled_cutoff)
            OR ({oc['status']} = 'placed'    AND {oc['placed_at']}    <= :abandoned_cutoff))"""
        self.status_cutoff = f"""CASE {oc['status']} WHEN 'delivered' THEN :delivered_cutoff
            WHEN 'cancelled' THEN :cancelled_cutoff ELSE :abandoned_cutoff END"""
        self.open_case = f"""EXISTS (SELECT 1 FROM {self.cases} c
            WHERE {cc['order_id']} = {oc['order_id']} AND {cc['closed_at']} IS NULL)"""
        # A case closed after the cutoff restarts the window from its closed_at.
        self.recent_case = f"""EXISTS (SELECT 1 FROM {self.cases} c
            WHERE {cc['order_id']} = {oc['order_id']} AND {cc['closed_at']} > {self.status_cutoff})"""
        # Any case that keeps the order: open, closed within the window, or dated in the future.
        self.case_blocks = f"""EXISTS (SELECT 1 FROM {self.cases} c
            WHERE {cc['order_id']} = {oc['order_id']} AND ({cc['closed_at']} IS NULL
               OR {cc['closed_at']} > {self.status_cutoff} OR {cc['opened_at']} > :as_of))"""
        # Due: trustworthy, window closed, no case keeping it. One anti-join over the cases.
        self.due = f"({self.trusted} AND {self.base_passed} AND NOT {self.case_blocks})"
        # Requested erasure: trustworthy, not being delivered, no open (or future-dated) case.
        self.in_delivery = f"{oc['status']} IN ('paid', 'shipped')"
        self.case_open_or_future = f"""EXISTS (SELECT 1 FROM {self.cases} c
            WHERE {cc['order_id']} = {oc['order_id']} AND ({cc['closed_at']} IS NULL
               OR {cc['opened_at']} > :as_of OR {cc['closed_at']} > :as_of))"""
        self.erasable_on_request = f"({self.trusted} AND NOT {self.in_delivery} AND NOT {self.case_open_or_future})"
        self.not_purged = f"{oc['purged_at']} IS NULL"
        self.purged_at_col = o.col("purged_at")


# ---------------------------------------------------------------- what is due

@dataclass
class DueSummary:
    """How the shop's orders stand against the policy at `as_of`: counts and order ids only."""

    as_of: datetime
    counts: dict[str, int]
    anomalies: dict[str, int]
    anomaly_sample_ids: dict[str, list[int]]
    stale_sample_ids: list[int]
    oldest_overdue: timedelta | None

    @property
    def eligible(self) -> int:
        return self.counts.get("due", 0)

    @property
    def anomaly_total(self) -> int:
        return sum(self.anomalies.values())

    def metadata(self, policy: Policy) -> dict[str, object]:
        """What a data engineer reads in the UI: counts, order ids, ages; never a value."""
        days = self.oldest_overdue.total_seconds() / 86400 if self.oldest_overdue else 0.0
        return {
            "as_of": self.as_of.isoformat(),
            "eligible": self.eligible,
            "kept_by_open_case": self.counts.get("kept_open_case", 0),
            "kept_by_recent_case": self.counts.get("kept_case_window", 0),
            "waiting_for_window": self.counts.get("waiting", 0),
            "in_service": self.counts.get("in_service", 0),
            "stale": self.counts.get("stale", 0),
            "stale_sample_order_ids": self.stale_sample_ids,
            "anomalies": self.anomaly_total,
            "anomalies_by_kind": self.anomalies,
            "anomaly_sample_order_ids": self.anomaly_sample_ids,
            "already_purged": self.counts.get("purged", 0),
            "oldest_overdue_days": round(days, 2),
            "policy_version": policy.version,
            "policy_hash": policy.short_hash,
        }


def _summary_sql(q: _Sql) -> str:
    oc, cc = q.oc, q.cc
    return f"""
    WITH classified AS (
        SELECT {oc['order_id']} AS order_id, a.anomaly,
               CASE
                   WHEN NOT ({q.not_purged}) THEN 'purged'
                   WHEN a.anomaly IS NOT NULL THEN 'anomaly'
                   WHEN {oc['status']} IN ('paid', 'shipped') THEN
                        CASE WHEN {oc['placed_at']} <= :stale_cutoff THEN 'stale' ELSE 'in_service' END
                   WHEN NOT {q.base_passed} THEN 'waiting'
                   WHEN {q.open_case} THEN 'kept_open_case'
                   WHEN {q.recent_case} THEN 'kept_case_window'
                   ELSE 'due'
               END AS class,
               CASE {oc['status']}
                   WHEN 'delivered' THEN {oc['delivered_at']} + (:as_of - :delivered_cutoff)
                   WHEN 'cancelled' THEN {oc['cancelled_at']} + (:as_of - :cancelled_cutoff)
                   ELSE {oc['placed_at']} + (:as_of - :abandoned_cutoff)
               END AS window_end,
               :as_of - {q.status_cutoff} AS window_length
        FROM {q.orders} o
        CROSS JOIN LATERAL (SELECT {q.anomaly} AS anomaly) a
    )
    SELECT class, anomaly, count(*) AS n,
           (array_agg(order_id ORDER BY order_id) FILTER (WHERE class IN ('anomaly', 'stale')))[1:{SAMPLE_IDS}],
           min(CASE WHEN class = 'due' THEN greatest(window_end,
                    (SELECT max({cc['closed_at']}) FROM {q.cases} c WHERE {cc['order_id']} = classified.order_id)
                    + window_length) END)
    FROM classified
    GROUP BY class, anomaly
    """


def summarize(engine: Engine, policy: Policy, as_of: datetime) -> DueSummary:
    """Classifies every order in one scan: due, kept and why, stale, anomalies."""
    cutoffs = Cutoffs.at(as_of, policy)
    counts: dict[str, int] = {}
    anomalies: dict[str, int] = {}
    samples: dict[str, list[int]] = {}
    stale_ids: list[int] = []
    oldest_end: datetime | None = None
    with engine.connect() as conn:
        rows = conn.execute(sa.text(_summary_sql(_Sql(policy))), cutoffs.params()).all()
    for cls, anomaly, n, ids, earliest_end in rows:
        counts[cls] = counts.get(cls, 0) + n
        if cls == "anomaly":
            anomalies[anomaly] = n
            samples[anomaly] = list(ids or [])
        if cls == "stale":
            stale_ids = list(ids or [])
        if earliest_end is not None:
            oldest_end = earliest_end if oldest_end is None else min(oldest_end, earliest_end)
    return DueSummary(
        as_of=as_of,
        counts=counts,
        anomalies=anomalies,
        anomaly_sample_ids=samples,
        stale_sample_ids=stale_ids,
        oldest_overdue=(as_of - oldest_end) if oldest_end is not None else None,
    )


def count_overdue(engine: Engine, policy: Policy, as_of: datetime) -> int:
    """Orders past their window that still hold personal fields: zero after a good run."""
    q = _Sql(policy)
    sql = f"SELECT count(*) FROM {q.orders} o WHERE {q.not_purged} AND {q.due}"
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), Cutoffs.at(as_of, policy).params()).scalar_one()


def _forecast_sql(q: _Sql) -> str:
    oc, cc = q.oc, q.cc
    # When each trustworthy, unpurged order's window ends: its own timestamp or its latest closed
    # case, plus the status's window; later than as_of means not due yet. A case that is open
    # (or dated in the future) holds the order with no date. The cases are aggregated once and
    # hash-joined: per-order lookups misestimate here and turn into a nested loop over all cases.
    # tests/db/test_report_forecast.py proves it agrees with `due` (count_overdue) day by day.
    return f"""
    SELECT (due_at AT TIME ZONE 'UTC')::date AS day, count(*) FROM (
        SELECT greatest(CASE {oc['status']} WHEN 'delivered' THEN {oc['delivered_at']}
                             WHEN 'cancelled' THEN {oc['cancelled_at']} ELSE {oc['placed_at']} END,
                        k.last_closed) + (:as_of - {q.status_cutoff}) AS due_at
        FROM {q.orders} o
        LEFT JOIN (
            SELECT {cc['order_id']} AS order_id, max({cc['closed_at']}) AS last_closed,
                   bool_or({cc['closed_at']} IS NULL OR {cc['opened_at']} > :as_of
                           OR {cc['closed_at']} > :as_of) AS held
            FROM {q.cases} c GROUP BY 1
        ) k ON k.order_id = {oc['order_id']}
        WHERE {q.not_purged} AND {q.trusted} AND {oc['status']} IN ('delivered', 'cancelled', 'placed')
          AND k.held IS NOT TRUE
    ) upcoming
    WHERE due_at > :as_of AND due_at <= :horizon
    GROUP BY 1
    """


def forecast_due(engine: Engine, policy: Policy, as_of: datetime, days: int = 30) -> dict[date, int]:
    """How many orders become due on each UTC day of the next `days`, if nothing else changes."""
    horizon = as_of + timedelta(days=days)
    with engine.connect() as conn:
        found = dict(conn.execute(sa.text(_forecast_sql(_Sql(policy))),
                                  {**Cutoffs.at(as_of, policy).params(), "horizon": horizon}).all())
    first = as_of.astimezone(timezone.utc).date()
    return {first + timedelta(days=d): found.get(first + timedelta(days=d), 0)
            for d in range((horizon.astimezone(timezone.utc).date() - first).days + 1)}


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
    batches: int = 0
    seconds: float = 0.0
    purged_ids_sample: list[int] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.purged / self.seconds if self.seconds else 0.0

    def metadata(self) -> dict[str, object]:
        """Counts and order ids for the run's materialization; never a value."""
        return {
            "purged": self.purged,
            "case_notes_cleared": self.notes_cleared,
            "batches": self.batches,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second),
            "purged_sample_order_ids": self.purged_ids_sample,
            "as_of": self.as_of.isoformat(),
            "policy_version": self.policy_version,
            "policy_hash": self.policy_hash[:12],
        }


def _batch_bound_sql(q: _Sql) -> str:
    # Keyset walk of the primary key: bounded batches without rescanning, robust to sparse ids.
    oid = q.oc["order_id"]
    return f"SELECT {oid} FROM {q.orders} o WHERE {oid} > :after ORDER BY {oid} OFFSET :skip LIMIT 1"


@dataclass(frozen=True)
class _Rule:
    """Which orders one batch clears (scope and dueness) and how its ledger rows read."""

    orders_scope: str
    cases_scope: str
    due: str
    action: str
    reason: str
    request_id: str = "CAST(NULL AS bigint)"


def _retention_rule(q: _Sql) -> _Rule:
    oc, cc = q.oc, q.cc
    return _Rule(
        orders_scope=f"{oc['order_id']} > :after AND {oc['order_id']} <= :upto",
        cases_scope=f"{cc['order_id']} > :after AND {cc['order_id']} <= :upto",
        due=q.due,
        action="retention_purge",
        reason="""CASE p.status WHEN 'delivered' THEN 'after_sales_window_closed'
                                WHEN 'cancelled' THEN 'cancelled_retention_elapsed'
                                ELSE 'abandoned_unpaid' END""",
    )


def _request_rule(q: _Sql) -> _Rule:
    oc, cc = q.oc, q.cc
    return _Rule(
        orders_scope=f"{oc['customer_id']} = :customer_id AND {oc['order_id']} = ANY(:order_ids)",
        cases_scope=f"{cc['order_id']} = ANY(:order_ids)",
        due=q.erasable_on_request,
        action="erasure_request",
        reason="'erasure_requested'",
        request_id=":request_id",
    )


def _purge_batch_sql(q: _Sql, rule: _Rule | None = None) -> str:
    """One batch as one statement: clear due orders, their case notes, and write the ledger.

    The UPDATE carries the whole due predicate, so a row changed by a concurrent transaction is
    re-checked against it before being cleared. The ledger names the columns the purge set to
    NULL (the policy's personal columns, plus the case columns where a case held a value).
    """
    oc, cc = q.oc, q.cc
    rule = rule or _retention_rule(q)
    set_orders = ", ".join([f"{col} = NULL" for col in q.personal] + [f"{q.purged_at_col} = now()"])
    order_columns = "ARRAY[" + ", ".join(f"'{n}'" for n in q.personal_names) + "]::text[]"
    notes_cte, notes_join, case_columns = "", "", "'{}'::text[]"
    if q.case_personal:
        case_held = " OR ".join(f"c.{col} IS NOT NULL" for col in q.case_personal)
        set_cases = ", ".join(f"{col} = NULL" for col in q.case_personal)
        names = ", ".join(f"'{n}'" for n in q.case_personal_names)
        notes_cte = f""", notes AS (
            UPDATE {q.cases} c SET {set_cases}
            FROM purged p WHERE {cc['order_id']} = p.order_id AND ({case_held}) AND {rule.cases_scope}
            RETURNING {cc['order_id']} AS order_id
        )"""
        notes_join = "LEFT JOIN (SELECT DISTINCT order_id FROM notes) n ON n.order_id = p.order_id"
        case_columns = f"CASE WHEN n.order_id IS NOT NULL THEN ARRAY[{names}]::text[] ELSE '{{}}'::text[] END"
    return f"""
    WITH purged AS (
        UPDATE {q.orders} o SET {set_orders}
        WHERE {rule.orders_scope} AND {q.not_purged} AND {rule.due}
        RETURNING {oc['order_id']} AS order_id, {oc['status']} AS status
    ){notes_cte}, ledger AS (
        INSERT INTO lifecycle.purge_ledger
            (run_id, order_id, purged_at, action, reason, request_id, policy_version, policy_hash,
             cleared_columns)
        SELECT :run_id, p.order_id, now(), '{rule.action}', {rule.reason}, {rule.request_id},
               :policy_version, :policy_hash, {order_columns} || {case_columns}
        FROM purged p {notes_join}
        RETURNING order_id, cardinality(cleared_columns) > {len(q.personal)} AS with_case
    )
    SELECT count(*), count(*) FILTER (WHERE with_case), (array_agg(order_id ORDER BY order_id))[1:{SAMPLE_IDS}]
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
    import json

    as_of = as_of or datetime.now(timezone.utc)
    q = _Sql(policy)
    params = {
        **Cutoffs.at(as_of, policy).params(),
        "run_id": run_id,
        "policy_version": policy.version,
        "policy_hash": policy.sha256,
    }
    report = PurgeReport(run_id=run_id, as_of=as_of, policy_version=policy.version, policy_hash=policy.sha256)
    _record(engine, _START_RUN, run_id=run_id, as_of=as_of,
            policy_version=policy.version, policy_hash=policy.sha256)
    bound_sql, batch_sql = sa.text(_batch_bound_sql(q)), sa.text(_purge_batch_sql(q))
    skip = policy.retention.batch_size - 1
    started = time.perf_counter()
    after = -MAX_BIGINT - 1
    status = "failed"
    try:
        while after < MAX_BIGINT:
            with engine.begin() as conn:
                upto = conn.execute(bound_sql, {"after": after, "skip": skip}).scalar()
                upto = MAX_BIGINT if upto is None else upto
                rows = _run_batch(conn, batch_sql, {**params, "after": after, "upto": upto})
            purged, with_notes, sample = rows
            report.batches += 1
            report.purged += purged
            report.notes_cleared += with_notes
            room = SAMPLE_IDS - len(report.purged_ids_sample)
            report.purged_ids_sample += (sample or [])[:max(room, 0)]
            report.seconds = time.perf_counter() - started
            after = upto
            if on_batch:
                on_batch(report)
        status = "succeeded"
    finally:
        report.seconds = time.perf_counter() - started
        summary = {"batches": report.batches, "notes_cleared": report.notes_cleared,
                   "seconds": round(report.seconds, 3)}
        _record(engine, _FINISH_RUN, run_id=run_id, status=status, purged=report.purged,
                summary=json.dumps(summary))
    return report


def _run_batch(conn: Connection, statement: sa.TextClause, params: dict) -> tuple[int, int, list[int] | None]:
    """Runs one batch; returns (orders purged, of which with case notes cleared, sample ids)."""
    try:
        return tuple(conn.execute(statement, params).one())
    except sa.exc.DBAPIError as exc:
        # The driver's text can carry row contents (e.g. "Failing row contains ..."): keep only
        # the error class and the batch's id range (or request id).
        where = (f"order_id in ({params['after']}, {params['upto']}]" if "after" in params
                 else f"erasure request {params['request_id']}")
        raise PurgeError(f"purge batch for {where} rolled back: {describe_db_error(exc)}") from None


# ---------------------------------------------------------------- requested erasure

def _blockers_sql(q: _Sql) -> str:
    # Same order as `erasable_on_request` reads, so an order with no blocker is exactly one it clears.
    return f"""
    SELECT {q.oc['order_id']},
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


def erase_for_request(
    conn: Connection, policy: Policy, *, run_id: str, request_id: int, customer_id: int,
    order_ids: list[int], as_of: datetime,
) -> RequestedErasure:
    """Clears, in the caller's transaction, the request's orders that may be erased now.

    The nightly's batch statement under the requested-erasure rule, ledgered with the request id,
    so physical erasure (lifecycle/erasure.py) picks these rows up like any purge.
    """
    q = _Sql(policy)
    params = {"as_of": as_of, "run_id": run_id, "request_id": request_id, "customer_id": customer_id,
              "order_ids": list(order_ids), "policy_version": policy.version, "policy_hash": policy.sha256}
    _, notes_cleared, _ = _run_batch(conn, sa.text(_purge_batch_sql(q, _request_rule(q))), params)
    cleared = list(conn.execute(_REQUEST_CLEARED, params).scalars())
    waiting = {order_id: why for order_id, why in conn.execute(sa.text(_blockers_sql(q)), params)}
    return RequestedErasure(cleared=cleared, notes_cleared=notes_cleared, waiting=waiting)
