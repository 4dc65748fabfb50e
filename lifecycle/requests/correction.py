"""Answering a correction request: new receiving contact and address values on orders that may
still be corrected (lifecycle.orders.CORRECTABLE); every other field and order is refused with a reason.

Which fields: the policy's `requests.correctable_columns`. Which orders: those not yet shipped
and not purged, checked under a row lock and again in the UPDATE itself.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lifecycle.orders import CORRECTABLE, sql_list
from lifecycle.policy import Policy, quote_ident
from lifecycle.requests.audit import Audit
from lifecycle.requests.outcome import Outcome
from lifecycle.requests.payload import Correction, correctable_columns

REFUSALS = {
    "not_correctable": "not a receiving contact or address field (policy requests.correctable_columns)",
    "unknown_order": "not an order of this customer",
    "purged": "its personal fields were already cleared",
    "already_shipped": "already shipped: the carrier holds the address",
    "already_delivered": "already delivered",
    "cancelled": "cancelled",
    "not_in_service": "not in service (status cannot be judged)",
}


def _order_states_sql(policy: Policy) -> str:
    o = policy.raw.orders
    oid = o.col("order_id")
    return f"""
    SELECT o.{oid}, o.{o.col("status")}, o.{o.col("purged_at")} IS NOT NULL
    FROM {o.sql} o
    WHERE o.{o.col("customer_id")} = :customer_id
      AND (CAST(:order_ids AS bigint[]) IS NULL OR o.{oid} = ANY(CAST(:order_ids AS bigint[])))
    ORDER BY o.{oid}
    FOR UPDATE
    """


def _correct_sql(policy: Policy, names: list[str]) -> str:
    # The correction rule is repeated in the UPDATE itself, next to the values it guards.
    o = policy.raw.orders
    sets = ", ".join(f"{quote_ident(name)} = :v{n}" for n, name in enumerate(names))
    return f"""
    UPDATE {o.sql} o SET {sets}
    WHERE o.{o.col("customer_id")} = :customer_id AND o.{o.col("order_id")} = ANY(:order_ids)
      AND o.{o.col("status")} IN ({sql_list(CORRECTABLE)}) AND o.{o.col("purged_at")} IS NULL
    RETURNING o.{o.col("order_id")}
    """


def _refusal(status: str, purged: bool) -> str | None:
    if purged:
        return "purged"
    if status in CORRECTABLE:
        return None
    return {
        "shipped": "already_shipped",
        "delivered": "already_delivered",
        "cancelled": "cancelled",
    }.get(status, "not_in_service")


def answer_correction(
    conn: Connection, policy: Policy, row: dict, correction: Correction, audit: Audit, run_id: str
) -> Outcome:
    """Applies the correctable part of `correction`; the result lists what was corrected and each refusal."""
    allowed = correctable_columns(policy)
    apply = {name: value for name, value in correction.fields.items() if name in allowed}
    refused_fields = sorted(name for name in correction.fields if name not in allowed)
    states = conn.execute(
        sa.text(_order_states_sql(policy)),
        {
            "customer_id": row["customer_id"],
            "order_ids": list(correction.order_ids) if correction.order_ids else None,
        },
    ).all()
    refused_orders = {
        order_id: why for order_id, status, purged in states if (why := _refusal(status, purged))
    }
    held = {order_id for order_id, _, _ in states}
    refused_orders.update(
        {
            order_id: "unknown_order"
            for order_id in correction.order_ids or ()
            if order_id not in held
        }
    )
    in_service = sorted(held - set(refused_orders))
    corrected: list[int] = []
    if apply and in_service:
        names = sorted(apply)
        corrected = sorted(
            conn.execute(
                sa.text(_correct_sql(policy, names)),
                {
                    "customer_id": row["customer_id"],
                    "order_ids": in_service,
                    **{f"v{n}": apply[name] for n, name in enumerate(names)},
                },
            ).scalars()
        )
    audit.many(
        "correct", "corrected", [{"order_id": i, "columns": sorted(apply)} for i in corrected]
    )
    audit.many(
        "correct",
        "refused",
        [{"order_id": i, "reason": why} for i, why in sorted(refused_orders.items())],
    )
    audit.many(
        "correct",
        "refused",
        [{"columns": [name], "reason": "not_correctable"} for name in refused_fields],
    )
    refusals = [
        {"order_id": i, "reason_code": why, "reason": REFUSALS[why]}
        for i, why in sorted(refused_orders.items())
    ]
    refusals += [
        {"field": name, "reason_code": "not_correctable", "reason": REFUSALS["not_correctable"]}
        for name in refused_fields
    ]
    result: dict[str, Any] = {
        "kind": "correct",
        "run_id": run_id,
        "corrected_order_ids": corrected,
        "corrected_fields": sorted(apply) if corrected else [],
        "refused": refusals,
    }
    if corrected and not refusals:
        return Outcome("done", result)
    if corrected:
        result["reason"] = f"{len(refusals)} part(s) of the request refused; see `refused`"
        return Outcome("partly_done", result)
    if not states and not correction.order_ids:
        why = "no order of this customer is held"
    elif not apply:
        why = "none of the fields may be corrected"
    else:
        why = f"no order of this customer named by the request is still in service ({' or '.join(CORRECTABLE)})"
    result.update(reason_code="nothing_correctable", reason=f"nothing corrected: {why}")
    return Outcome("rejected", result)
