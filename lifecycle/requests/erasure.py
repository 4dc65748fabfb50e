"""Answering an erasure request: the customer's orders cleared by the purge's own batch statement
under the requested-erasure rule (lifecycle.retention.purge.erase_for_request).

Orders in delivery or with an open case cannot be cleared yet: they wait in
lifecycle.pending_erasures, the request is `partly_done` with the reasons, and the nightly job
finishes them (lifecycle/requests/finishing.py). The customer's earlier access exports are deleted,
except those answered in the same run (kept until their own expiry).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lifecycle.policy import Policy
from lifecycle.requests.audit import Audit
from lifecycle.requests.exports import delete_customer_exports
from lifecycle.requests.outcome import Outcome
from lifecycle.retention import purge

LISTED_IDS = 1000  # order ids listed in a result; the counts are always complete
CHANGED = "changed_during_request"  # what an order waits for when the batch could not judge it
MOVED = "moved_to_another_customer"  # a waiting order the shop gave to another customer since
# What ends a wait by itself; an order waiting for anything else waits on a person, so its
# request counts as overdue past the response deadline (lifecycle/requests/deadlines.py).
ENDS_BY_ITSELF = ("in_delivery", "open_after_sales_case")
WAITING_MESSAGES = {
    "in_delivery": "being delivered: erased once delivered or cancelled",
    "open_after_sales_case": "an after-sales case is open: erased once it closes",
    CHANGED: "changed while the request ran: checked again by the nightly job",
    MOVED: (
        "moved to another customer while the erasure waited: a person must decide whose data "
        "it holds, and clear it or give it back"
    ),
}


def _orders_sql(policy: Policy) -> str:
    """The customer's order ids, and how many of them were already marked cleared."""
    o = policy.raw.orders
    return f"""
    SELECT coalesce(array_agg(o.{o.col("order_id")} ORDER BY o.{o.col("order_id")}), '{{}}'),
           count(*) FILTER (WHERE o.{o.col("purged_at")} IS NOT NULL)
    FROM {o.sql} o WHERE o.{o.col("customer_id")} = :customer_id
    """


def answer_erasure(
    conn: Connection,
    policy: Policy,
    exports: Path,
    row: dict,
    audit: Audit,
    run_id: str,
    as_of: datetime,
) -> Outcome:
    """Clears every order that may be cleared now and records what the rest waits for."""
    request_id, customer_id = row["request_id"], row["customer_id"]
    orders, already = conn.execute(sa.text(_orders_sql(policy)), {"customer_id": customer_id}).one()
    erased = purge.erase_for_request(
        conn,
        policy,
        run_id=run_id,
        request_id=request_id,
        customer_id=customer_id,
        order_ids=list(orders),  # those marked cleared too: a value left in one is cleared again
        as_of=as_of,
    )
    waiting = {order_id: why or CHANGED for order_id, why in erased.waiting.items()}
    record_pending(conn, request_id, waiting)
    audit.many("erase", "pending", [{"order_id": i, "reason": why} for i, why in waiting.items()])
    deleted, kept = delete_customer_exports(conn, exports, customer_id, audit, run_id)
    result = {
        "kind": "erase",
        "run_id": run_id,
        "cleared_order_ids": erased.cleared[:LISTED_IDS],
        "cleared_orders": len(erased.cleared),
        "case_notes_cleared": erased.notes_cleared,
        "already_cleared_orders": already,
        "already_cleared_orders_cleared_again": erased.recleared,
        "exports_deleted": deleted,
        # Written by this same run for an access request of the same batch: kept until expiry.
        "exports_kept_until_expiry": kept,
        **pending_result(waiting),
    }
    return Outcome(
        "partly_done" if waiting else "done",
        result,
        cleared=len(erased.cleared),
        pending=len(waiting),
    )


def pending_result(waiting: dict[int, str]) -> dict[str, Any]:
    """The request result's `pending` list and the reason that says, per kind, what the orders wait for."""
    pending = [
        {"order_id": i, "waiting_for": why, "erasable_from": None}
        for i, why in sorted(waiting.items())
    ]
    if not pending:
        return {"pending": []}
    counts: dict[str, int] = {}
    for why in waiting.values():
        counts[why] = counts.get(why, 0) + 1
    parts = [
        f"{n} order(s) {WAITING_MESSAGES.get(why, why + ': kept until the row can be judged')}"
        for why, n in sorted(counts.items())
    ]
    return {
        "pending": pending[:LISTED_IDS],
        "reason": "; ".join(parts) + ". The nightly job finishes them and marks this request done.",
    }


_RECORD_PENDING = sa.text("""
    INSERT INTO lifecycle.pending_erasures (request_id, order_id, waiting_for)
    SELECT :request_id, w.order_id, w.why
    FROM unnest(CAST(:order_ids AS bigint[]), CAST(:whys AS text[])) AS w(order_id, why)
    ON CONFLICT (request_id, order_id) DO UPDATE SET waiting_for = EXCLUDED.waiting_for
""")


def record_pending(conn: Connection, request_id: int, waiting: dict[int, str]) -> None:
    """Records (or updates) what each waiting order waits for, so the nightly job can finish it."""
    if waiting:
        ids = sorted(waiting)
        conn.execute(
            _RECORD_PENDING,
            {"request_id": request_id, "order_ids": ids, "whys": [waiting[i] for i in ids]},
        )
