"""When an order's personal fields are due: the retention rule, written once as SQL fragments.

The rule lives here once, as SQL fragments over the policy's tables:
  - delivered orders are due `after_sales_window_days` after delivered_at,
  - cancelled orders `cancelled_retention_days` after cancelled_at,
  - unpaid `placed` orders `abandoned_after_days` after placed_at,
  - an open after-sales case keeps the order; a closed one restarts the window from closed_at,
  - paid and shipped orders are in service and never due (reported as stale past a policy age),
  - rows whose timestamps cannot be trusted are anomalies and never due.
A customer's erasure request (lifecycle/requests/) clears their orders through the same batch
statement under one more rule: at once, unless the order is being delivered (paid, shipped) or
has an open after-sales case; the windows above do not apply. Its ledger rows carry the request id.
The summary, the purge, the backlog check, the forecast and the requested erasure all use these
fragments, so they cannot disagree; docs/retention.md shows the due condition they make for the
reference policy (tests/unit/test_retention_doc.py keeps it current).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from lifecycle.orders import IN_DELIVERY, STATUSES, sql_list
from lifecycle.policy import Policy, quote_ident


@dataclass(frozen=True)
class Cutoffs:
    """The instants that decide dueness, all derived from one `as_of` so a run is consistent."""

    as_of: datetime
    delivered: datetime
    cancelled: datetime
    abandoned: datetime
    stale: datetime

    @classmethod
    def at(cls, as_of: datetime, policy: Policy) -> Cutoffs:
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
            "latest_cutoff": max(self.delivered, self.cancelled, self.abandoned),
        }


class RetentionSql:
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
        statuses = sql_list(STATUSES)
        timestamps = ("placed_at", "paid_at", "shipped_at", "delivered_at", "cancelled_at")
        future = " OR ".join(f"{oc[t]} > :as_of" for t in timestamps)

        # Why an order cannot be judged (for the summary's labels); NULL when it can be.
        self.anomaly = f"""CASE
            WHEN {oc["status"]} IS NULL OR {oc["status"]} NOT IN ({statuses}) THEN 'unknown_status'
            WHEN {oc["placed_at"]} IS NULL THEN 'missing_placed_at'
            WHEN {future} OR EXISTS (
                SELECT 1 FROM {self.cases} c WHERE {cc["order_id"]} = {oc["order_id"]}
                  AND ({cc["opened_at"]} > :as_of OR {cc["closed_at"]} > :as_of)) THEN 'future_timestamp'
            WHEN {oc["status"]} = 'delivered' AND {oc["delivered_at"]} IS NULL THEN 'delivered_without_delivered_at'
            WHEN {oc["delivered_at"]} < {oc["placed_at"]} THEN 'delivered_before_placed'
            WHEN {oc["status"]} = 'cancelled' AND {oc["cancelled_at"]} IS NULL THEN 'cancelled_without_cancelled_at'
        END"""
        # The same screen as a plain conjunction the planner can estimate (a CASE … IS NULL
        # filter is estimated at a handful of rows and turns the case lookups into nested loops).
        # Case timestamps in the future are screened by `case_blocks` below. `(anomaly IS NULL)`
        # equals `trusted AND NOT <case in the future>`: tests/db/test_purge_rules.py proves it.
        not_future = " AND ".join(f"({oc[t]} IS NULL OR {oc[t]} <= :as_of)" for t in timestamps)
        self.trusted = f"""({oc["status"]} IN ({statuses}) AND {oc["placed_at"]} <= :as_of AND {not_future}
            AND ({oc["status"]} <> 'delivered' OR {oc["delivered_at"]} IS NOT NULL)
            AND ({oc["delivered_at"]} IS NULL OR {oc["delivered_at"]} >= {oc["placed_at"]})
            AND ({oc["status"]} <> 'cancelled' OR {oc["cancelled_at"]} IS NOT NULL))"""
        # The order's own window has closed, ignoring after-sales cases.
        self.base_passed = f"""(
               ({oc["status"]} = 'delivered' AND {oc["delivered_at"]} <= :delivered_cutoff)
            OR ({oc["status"]} = 'cancelled' AND {oc["cancelled_at"]} <= :cancelled_cutoff)
            OR ({oc["status"]} = 'placed'    AND {oc["placed_at"]}    <= :abandoned_cutoff))"""
        # The instant the order's own window opened, NULL while it is in service: the expression
        # of the partial index shop.orders_window_opened_idx (migration 0190), written alike so
        # PostgreSQL matches it. `base_passed` implies `window_may_have_closed`; read through that
        # index it finds the orders past the latest cutoff among those not cleared (due, kept by
        # a case, unpaid for less than abandoned_after_days), not every order in flight.
        self.window_opened = f"""(CASE {oc["status"]} WHEN 'delivered' THEN {oc["delivered_at"]}
            WHEN 'cancelled' THEN {oc["cancelled_at"]} WHEN 'placed' THEN {oc["placed_at"]} END)"""
        self.window_may_have_closed = f"{self.window_opened} <= :latest_cutoff"
        self.status_cutoff = f"""CASE {oc["status"]} WHEN 'delivered' THEN :delivered_cutoff
            WHEN 'cancelled' THEN :cancelled_cutoff ELSE :abandoned_cutoff END"""
        # The instant the order's own window starts: delivery, cancellation, or placing (unpaid).
        self.window_start = f"""CASE {oc["status"]} WHEN 'delivered' THEN {oc["delivered_at"]}
            WHEN 'cancelled' THEN {oc["cancelled_at"]} ELSE {oc["placed_at"]} END"""
        # A case row that holds its order whatever the window: open, or dated in the future.
        self.case_holds = f"({cc['closed_at']} IS NULL OR {cc['opened_at']} > :as_of OR {cc['closed_at']} > :as_of)"
        self.open_case = f"""EXISTS (SELECT 1 FROM {self.cases} c
            WHERE {cc["order_id"]} = {oc["order_id"]} AND {cc["closed_at"]} IS NULL)"""
        # A case closed after the cutoff restarts the window from its closed_at.
        self.recent_case = f"""EXISTS (SELECT 1 FROM {self.cases} c
            WHERE {cc["order_id"]} = {oc["order_id"]} AND {cc["closed_at"]} > {self.status_cutoff})"""
        # Any case that keeps the order: open, closed within the window, or dated in the future.
        self.case_blocks = f"""EXISTS (SELECT 1 FROM {self.cases} c
            WHERE {cc["order_id"]} = {oc["order_id"]} AND ({cc["closed_at"]} IS NULL
               OR {cc["closed_at"]} > {self.status_cutoff} OR {cc["opened_at"]} > :as_of))"""
        # Due: trustworthy, window closed, no case keeping it. One anti-join over the cases.
        self.due_clauses = [
            ("its dates can be trusted", self.trusted),
            ("its own window has closed", self.base_passed),
            ("no after-sales case keeps it", f"NOT {self.case_blocks}"),
        ]
        self.due = "(" + " AND ".join(fragment for _, fragment in self.due_clauses) + ")"
        # Requested erasure: trustworthy, not being delivered, no open (or future-dated) case.
        self.in_delivery = f"{oc['status']} IN ({sql_list(IN_DELIVERY)})"
        self.case_open_or_future = f"""EXISTS (SELECT 1 FROM {self.cases} c
            WHERE {cc["order_id"]} = {oc["order_id"]} AND {self.case_holds})"""
        self.erasable_on_request = (
            f"({self.trusted} AND NOT {self.in_delivery} AND NOT {self.case_open_or_future})"
        )
        self.not_purged = f"{oc['purged_at']} IS NULL"
        self.purged_at_col = o.col("purged_at")
        # Marked cleared but still holding a personal value (e.g. a column the policy named only
        # later): the purge clears it again and the standing check counts it. Cleared means every
        # personal column of the order and of its cases is NULL.
        own = " OR ".join(f"o.{col} IS NOT NULL" for col in self.personal)
        # The order's own side in the shape of the partial index shop.orders_values_left_idx
        # (migration 0140), so PostgreSQL reads that index (empty on a healthy shop), not the table.
        self.own_values_left = f"({oc['purged_at']} IS NOT NULL AND ({own}))" if own else "FALSE"
        # A case still holding a value, in the shape of shop.after_sales_cases_values_held_idx.
        self.case_values_held = (
            "(" + " OR ".join(f"c.{col} IS NOT NULL" for col in self.case_personal) + ")"
            if self.case_personal
            else ""
        )
        left = [f"o.{col} IS NOT NULL" for col in self.personal]
        if self.case_personal:
            left.append(
                f"EXISTS (SELECT 1 FROM {self.cases} c WHERE {cc['order_id']} = {oc['order_id']} "
                f"AND {self.case_values_held})"
            )
        self.values_left = (
            f"({oc['purged_at']} IS NOT NULL AND ({' OR '.join(left)}))" if left else "FALSE"
        )

    def values_left_ids(self, orders_scope: str = "TRUE", cases_scope: str = "TRUE") -> str:
        """The ids of the orders (within the scopes) that `values_left` holds for, read from the
        two partial indexes of migration 0140: cleared orders holding a value of their own, and
        cleared orders with a case holding one. Both together cost what is left to clear (and the
        cases holding a note, those of orders in flight), where `values_left` as a filter reads
        every cleared order."""
        oc, cc = self.oc, self.cc
        ids = f"SELECT {oc['order_id']} FROM {self.orders} o WHERE {orders_scope} AND {self.own_values_left}"
        if self.case_values_held:
            # Driven by the cases holding a value, each order looked up by its key: a scalar
            # subquery, since as a join PostgreSQL would rather scan every cleared order.
            ids += f"""
            UNION SELECT {cc["order_id"]} FROM {self.cases} c
            WHERE {cases_scope} AND {self.case_values_held}
              AND (SELECT {oc["purged_at"]} FROM {self.orders} o
                   WHERE {oc["order_id"]} = {cc["order_id"]}) IS NOT NULL"""
        return ids


def due_condition(policy: Policy) -> str:
    """The whole condition under which the purge clears an order, as its UPDATE carries it, one
    labelled clause at a time for a reviewer (docs/retention.md shows it for the reference policy)."""
    q = RetentionSql(policy)
    clauses = [("not cleared yet", q.not_purged), *q.due_clauses]
    out = []
    for n, (label, fragment) in enumerate(clauses):
        body = [line.strip() for line in fragment.splitlines() if line.strip()]
        out.append(("" if n == 0 else "AND ") + f"-- {label}")
        out += ["    " + line for line in body]
    return "\n".join(out)
