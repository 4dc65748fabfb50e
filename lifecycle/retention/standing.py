"""How the orders stand against the policy: what is due, kept and why, overdue, and due soon.

Read-only questions over the retention rule (lifecycle/retention/rules.py): the nightly summary
(`due_orders`), the backlog check after the purge, the alerts' grace test and the report's
forecast all read the same fragments as the purge, so they cannot disagree with it; and the
standing check that an order marked cleared holds no personal value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lifecycle.checks import CheckResult, Finding
from lifecycle.orders import IN_DELIVERY, SAMPLE_IDS, sql_list
from lifecycle.policy import Policy
from lifecycle.retention.rules import Cutoffs, RetentionSql

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
    cleared_counted: bool = True  # whether counts["purged"] was asked for (summarize)

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
            **({"already_purged": self.counts.get("purged", 0)} if self.cleared_counted else {}),
            "oldest_overdue_days": round(days, 2),
            "policy_version": policy.version,
            "policy_hash": policy.short_hash,
        }


# The columns the classification reads, by role.
_JUDGED = (
    "order_id",
    "status",
    "placed_at",
    "paid_at",
    "shipped_at",
    "delivered_at",
    "cancelled_at",
)


def _summary_sql(q: RetentionSql, count_cleared: bool) -> str:
    # Only the orders not cleared yet are classified (read through shop.orders_not_purged_idx);
    # the cleared ones are only counted, when asked (`count_cleared`), so the summary does not
    # judge every order ever placed.
    # They are classified above the scan (`OFFSET 0` keeps the subquery apart): written into the
    # scan, each case lookup is a hashed subplan that PostgreSQL builds again for every partition
    # of a partitioned shop.orders, each build reading every case (partitions x cases; at 20
    # partitions, 20 builds of each of two for one night's summary).
    oc, cc = q.oc, q.cc
    judged = ", ".join(oc[role] for role in _JUDGED)
    return f"""
    WITH classified AS (
        SELECT {oc["order_id"]} AS order_id, a.anomaly,
               CASE
                   WHEN a.anomaly IS NOT NULL THEN 'anomaly'
                   WHEN {oc["status"]} IN ({sql_list(IN_DELIVERY)}) THEN
                        CASE WHEN {oc["placed_at"]} <= :stale_cutoff THEN 'stale' ELSE 'in_service' END
                   WHEN NOT {q.base_passed} THEN 'waiting'
                   WHEN {q.open_case} THEN 'kept_open_case'
                   WHEN {q.recent_case} THEN 'kept_case_window'
                   ELSE 'due'
               END AS class,
               ({q.window_start}) + (:as_of - {q.status_cutoff}) AS window_end,
               :as_of - {q.status_cutoff} AS window_length
        FROM (SELECT {judged} FROM {q.orders} o WHERE {q.not_purged} OFFSET 0) o
        CROSS JOIN LATERAL (SELECT {q.anomaly} AS anomaly) a
    )
    SELECT class, anomaly, count(*) AS n,
           (array_agg(order_id ORDER BY order_id) FILTER (WHERE class IN ('anomaly', 'stale')))[1:{SAMPLE_IDS}],
           min(CASE WHEN class = 'due' THEN greatest(window_end,
                    (SELECT max({cc["closed_at"]}) FROM {q.cases} c WHERE {cc["order_id"]} = classified.order_id)
                    + window_length) END)
    FROM classified
    GROUP BY class, anomaly
    """ + (
        f"""UNION ALL
    SELECT 'purged', NULL, count(*), NULL, NULL FROM {q.orders} o WHERE NOT ({q.not_purged})
    HAVING count(*) > 0
    """
        if count_cleared
        else ""
    )


def summarize(
    engine: Engine, policy: Policy, as_of: datetime, count_cleared: bool = True
) -> DueSummary:
    """Classifies every order not cleared yet (due, kept and why, stale, anomalies); with
    `count_cleared`, counts the cleared ones too (`already_purged`).

    The count reads every cleared order, nearly the whole table on a shop of some years (1.4 s of
    a 10M-order night), so the nightly leaves it to `lifecycle due`: a night's cost follows the
    orders in flight, not the history."""
    cutoffs = Cutoffs.at(as_of, policy)
    counts: dict[str, int] = {}
    anomalies: dict[str, int] = {}
    samples: dict[str, list[int]] = {}
    stale_ids: list[int] = []
    oldest_end: datetime | None = None
    with engine.connect() as conn:
        sql = _summary_sql(RetentionSql(policy), count_cleared)
        rows = conn.execute(sa.text(sql), cutoffs.params()).all()
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
        cleared_counted=count_cleared,
    )


def _overdue_sql(q: RetentionSql) -> str:
    # `window_may_have_closed` is implied by `due`: it lets the window index find the candidates.
    return (
        f"SELECT count(*) FROM {q.orders} o "
        f"WHERE {q.not_purged} AND {q.window_may_have_closed} AND {q.due}"
    )


def count_overdue(engine: Engine, policy: Policy, as_of: datetime) -> int:
    """Orders past their window that still hold personal fields: zero after a good run."""
    sql = _overdue_sql(RetentionSql(policy))
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), Cutoffs.at(as_of, policy).params()).scalar_one()


def _forecast_sql(q: RetentionSql) -> str:
    oc, cc = q.oc, q.cc
    # When each trustworthy, unpurged order's window ends: its own timestamp or its latest closed
    # case, plus the status's window; later than as_of means not due yet. A case that is open
    # (or dated in the future) holds the order with no date. The cases are aggregated once and
    # hash-joined: per-order lookups misestimate here and turn into a nested loop over all cases.
    # tests/db/test_report_forecast.py proves it agrees with `due` (count_overdue) day by day.
    return f"""
    SELECT (due_at AT TIME ZONE 'UTC')::date AS day, count(*) FROM (
        SELECT greatest({q.window_start}, k.last_closed) + (:as_of - {q.status_cutoff}) AS due_at
        FROM {q.orders} o
        LEFT JOIN (
            SELECT {cc["order_id"]} AS order_id, max({cc["closed_at"]}) AS last_closed,
                   bool_or({q.case_holds}) AS held
            FROM {q.cases} c GROUP BY 1
        ) k ON k.order_id = {oc["order_id"]}
        WHERE {q.not_purged} AND {q.trusted} AND {oc["status"]} NOT IN ({sql_list(IN_DELIVERY)})
          AND k.held IS NOT TRUE
    ) upcoming
    WHERE due_at > :as_of AND due_at <= :horizon
    GROUP BY 1
    """


def forecast_due(
    engine: Engine, policy: Policy, as_of: datetime, days: int = 30
) -> dict[date, int]:
    """How many orders become due on each UTC day of the next `days`, if nothing else changes."""
    horizon = as_of + timedelta(days=days)
    with engine.connect() as conn:
        found = dict(
            conn.execute(
                sa.text(_forecast_sql(RetentionSql(policy))),
                {**Cutoffs.at(as_of, policy).params(), "horizon": horizon},
            ).all()
        )
    first = as_of.astimezone(UTC).date()
    return {
        first + timedelta(days=d): found.get(first + timedelta(days=d), 0)
        for d in range((horizon.astimezone(UTC).date() - first).days + 1)
    }


# ---------------------------------------------------------------- cleared means cleared


def values_left_after_clear(engine: Engine, policy: Policy) -> CheckResult:
    """Orders marked cleared (`purged_at` set) that still hold a personal value in the order or
    one of its cases: none after a good purge, which clears any it finds again."""
    q = RetentionSql(policy)
    # Through the partial indexes of migration 0140: what is left to clear, not every cleared order.
    sql = f"""SELECT count(*), (array_agg(order_id ORDER BY order_id))[1:{SAMPLE_IDS}]
              FROM ({q.values_left_ids()}) AS left_to_clear (order_id)"""
    with engine.connect() as conn:
        count, ids = conn.execute(sa.text(sql)).one()
    result = CheckResult(scanned={"orders": policy.raw.orders.table})
    result.figures = {"cleared_orders_with_values": count}
    if count:
        result.findings.append(
            Finding(
                policy.raw.orders.table,
                "",
                "personal_value_after_clear",
                count,
                detail=(
                    f"order ids {list(ids)}: marked cleared but a personal column holds a value; "
                    "the next purge clears them again (ledgered as retention_reclear)"
                ),
            )
        )
    return result
