"""The nightly pass over erasure requests that were waiting: clear what became erasable, and
mark a request `done` once nothing of it waits any more.

One transaction per request, its row locked (FOR UPDATE SKIP LOCKED), so a run that answers
requests at the same time never finishes the same request twice. A request whose pass fails,
whatever the error, is rolled back, stays `partly_done` for the next night and is named (by
error class, never a value); the others are finished.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lifecycle.orders import SAMPLE_IDS
from lifecycle.policy import Policy
from lifecycle.requests.audit import Audit
from lifecycle.requests.erasure import CHANGED, LISTED_IDS, MOVED, pending_result, record_pending
from lifecycle.requests.failures import describe_failure
from lifecycle.requests.handling import LOCK_TIMEOUT_MS
from lifecycle.requests.table import REQUESTS_TABLE
from lifecycle.retention import purge


@dataclass
class FinishReport:
    """What the nightly pass did with erasures that were waiting: counts and request ids."""

    run_id: str
    requests_checked: int = 0
    requests_done: list[int] = field(default_factory=list)
    orders_cleared: int = 0
    orders_still_pending: int = 0
    # Waiting orders something else cleared before this pass (the retention purge, usually).
    orders_cleared_meanwhile: int = 0
    failed: dict[int, str] = field(default_factory=dict)

    def metadata(self) -> dict[str, object]:
        """Counts and request ids for the run's materialization."""
        return {
            "requests_checked": self.requests_checked,
            "requests_done": len(self.requests_done),
            "done_request_ids": self.requests_done[:SAMPLE_IDS],
            "orders_cleared": self.orders_cleared,
            "orders_still_pending": self.orders_still_pending,
            "orders_cleared_meanwhile": self.orders_cleared_meanwhile,
            "failed": len(self.failed),
            "failed_request_ids": sorted(self.failed)[:SAMPLE_IDS],
        }


_WAITING_REQUESTS = sa.text(f"""
    SELECT DISTINCT p.request_id FROM lifecycle.pending_erasures p
    JOIN {REQUESTS_TABLE} r ON r.request_id = p.request_id
    WHERE p.erased_at IS NULL AND r.status = 'partly_done' AND r.kind = 'erase'
    ORDER BY 1
""")
_LOCK_WAITING = sa.text(f"""
    SELECT request_id, customer_id, result FROM {REQUESTS_TABLE}
    WHERE request_id = :request_id AND status = 'partly_done' AND kind = 'erase'
    FOR UPDATE SKIP LOCKED
""")
_STILL_PENDING = sa.text("""
    SELECT order_id FROM lifecycle.pending_erasures
    WHERE request_id = :request_id AND erased_at IS NULL ORDER BY order_id
""")
_FINISH = sa.text(f"""
    UPDATE {REQUESTS_TABLE}
    SET status = :status, result = CAST(:result AS jsonb),
        completed_at = CASE WHEN :status = 'done' THEN now() END
    WHERE request_id = :request_id
""")


def _gone_sql(policy: Policy) -> str:
    """Marks erased the waiting orders the shop deleted meanwhile (nothing of them is left to
    clear in the table), returning their ids; they waited forever, `changed_during_request`."""
    o = policy.raw.orders
    return f"""
    UPDATE lifecycle.pending_erasures p SET erased_at = now()
    WHERE p.request_id = :request_id AND p.erased_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM {o.sql} o WHERE o.{o.col("order_id")} = p.order_id)
    RETURNING p.order_id
    """


def _moved_sql(policy: Policy) -> str:
    """The waiting orders that now name another customer than the request's."""
    o = policy.raw.orders
    return f"""
    SELECT p.order_id FROM lifecycle.pending_erasures p
    JOIN {o.sql} o ON o.{o.col("order_id")} = p.order_id
    WHERE p.request_id = :request_id AND p.erased_at IS NULL
      AND o.{o.col("customer_id")} IS DISTINCT FROM :customer_id
    """


def _mark_erased_sql(policy: Policy) -> str:
    # An order cleared by this pass or by the retention purge meanwhile counts as erased; the
    # instant it became erasable is its last delivery, cancellation or case closing.
    o, c = policy.raw.orders, policy.raw.after_sales_cases
    return f"""
    UPDATE lifecycle.pending_erasures p
    SET erased_at = o.{o.col("purged_at")},
        erasable_from = greatest(o.{o.col("delivered_at")}, o.{o.col("cancelled_at")},
            (SELECT max(c.{c.col("closed_at")}) FROM {c.sql} c WHERE c.{c.col("order_id")} = p.order_id))
    FROM {o.sql} o
    WHERE p.request_id = :request_id AND p.erased_at IS NULL
      AND o.{o.col("order_id")} = p.order_id AND o.{o.col("purged_at")} IS NOT NULL
    RETURNING p.order_id
    """


# Who cleared an order: its newest ledger row that cleared it (a re-clear keeps the first one).
_CLEARED_BY = sa.text("""
    SELECT DISTINCT ON (order_id) order_id, action, run_id, request_id
    FROM lifecycle.purge_ledger
    WHERE order_id = ANY(:order_ids) AND action IN ('retention_purge', 'erasure_request')
    ORDER BY order_id, ledger_id DESC
""")


def _cleared_meanwhile(conn: Connection, order_ids: list[int]) -> list[dict]:
    """Waiting orders found cleared by something other than this request's pass, each with the
    ledger's word on who cleared it: the retention purge (usually that same night, before this
    step), another erasure request, or nothing the ledger holds (`cleared_by` None)."""
    if not order_ids:
        return []
    ledger = {
        row.order_id: row for row in conn.execute(_CLEARED_BY, {"order_ids": sorted(order_ids)})
    }
    entries = []
    for order_id in sorted(order_ids):
        row = ledger.get(order_id)
        entry = {
            "order_id": order_id,
            "cleared_by": row.action if row else None,
            "run_id": row.run_id if row else None,
        }
        if row is not None and row.request_id is not None:
            entry["request_id"] = row.request_id
        entries.append(entry)
    return entries


def finish_pending_erasures(
    engine: Engine, policy: Policy, run_id: str, as_of: datetime | None = None
) -> FinishReport:
    """Clears what erasure requests were waiting for, once erasable; a request with nothing left is done."""
    as_of = as_of or datetime.now(UTC)
    report = FinishReport(run_id=run_id)
    with engine.connect() as conn:  # one connection, one transaction per request
        with conn.begin():
            request_ids = list(conn.execute(_WAITING_REQUESTS).scalars())
        for request_id in request_ids:
            try:
                with conn.begin():
                    conn.execute(sa.text(f"SET LOCAL lock_timeout = {int(LOCK_TIMEOUT_MS)}"))
                    done = _finish_one(conn, policy, request_id, run_id, as_of)
            except Exception as exc:  # one request's failure never stops the others
                report.failed[request_id] = describe_failure(exc)
                continue
            if done is None:  # answered by another run meanwhile
                continue
            cleared, meanwhile, waiting = done
            report.requests_checked += 1
            report.orders_cleared += len(cleared)
            report.orders_cleared_meanwhile += meanwhile
            report.orders_still_pending += len(waiting)
            if not waiting:
                report.requests_done.append(request_id)
    return report


def _finish_one(
    conn: Connection, policy: Policy, request_id: int, run_id: str, as_of: datetime
) -> tuple[list[int], int, dict[int, str]] | None:
    row = conn.execute(_LOCK_WAITING, {"request_id": request_id}).mappings().one_or_none()
    if row is None:
        return None
    key = {"request_id": request_id}
    gone = sorted(conn.execute(sa.text(_gone_sql(policy)), key).scalars())
    moved = set(
        conn.execute(
            sa.text(_moved_sql(policy)), {**key, "customer_id": row["customer_id"]}
        ).scalars()
    )
    pending = list(conn.execute(_STILL_PENDING, key).scalars())
    erased = purge.erase_for_request(
        conn,
        policy,
        run_id=run_id,
        request_id=request_id,
        customer_id=row["customer_id"],
        order_ids=pending,
        as_of=as_of,
    )
    marked = conn.execute(sa.text(_mark_erased_sql(policy)), key).scalars().all()
    # Erased too, but not by this pass: without naming them the request read `done` over no
    # order at all (its only order cleared by that night's purge just before this step).
    meanwhile = _cleared_meanwhile(conn, sorted(set(marked) - set(erased.cleared)))
    still = conn.execute(_STILL_PENDING, {"request_id": request_id}).scalars().all()
    waiting = {i: MOVED if i in moved else erased.waiting.get(i) or CHANGED for i in still}
    record_pending(conn, request_id, waiting)
    audit = Audit(conn, request_id, run_id)
    audit.many("erase", "erased_later", [{"order_id": i} for i in erased.cleared])
    audit.many("erase", "order_deleted_by_the_shop", [{"order_id": i} for i in gone])
    audit.many(
        "erase",
        "cleared_meanwhile",
        [
            {
                "order_id": m["order_id"],
                "reason": m["cleared_by"] or "not_in_ledger",
                "detail": {k: v for k, v in m.items() if k in ("run_id", "request_id")},
            }
            for m in meanwhile
        ],
    )
    result = dict(row["result"] or {})
    result["cleared_later_order_ids"] = (
        result.get("cleared_later_order_ids", []) + erased.cleared
    )[:LISTED_IDS]
    if meanwhile:
        result["cleared_meanwhile"] = (result.get("cleared_meanwhile", []) + meanwhile)[:LISTED_IDS]
    if gone:
        result["deleted_by_the_shop_order_ids"] = (
            result.get("deleted_by_the_shop_order_ids", []) + gone
        )[:LISTED_IDS]
    result["finished_by_run"] = None if waiting else run_id
    result.pop("reason", None)
    result.update(pending_result(waiting))
    conn.execute(
        _FINISH,
        {
            "request_id": request_id,
            "status": "partly_done" if waiting else "done",
            "result": json.dumps(result),
        },
    )
    return erased.cleared, len(meanwhile), waiting
