"""A small shop with carriers: the policy the logistics tests read, and orders awaiting delivery."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from lifecycle.policy import load_policy
from tests.conftest import AS_OF
from tests.shop import PERSONAL, add_order

CARRIERS_POLICY = """version: "carriers-1"
logistics:
  fields: [{fields}]
  carriers:
    sf_express: {{role: true, csv: true}}
    zto_express: {{role: true}}
    jd_logistics: {{csv: true}}
  batch_size: {batch_size}
"""
ALL_FIELDS = "receiver_name, receiver_address, receiver_postcode, receiver_phone, ship_region"
# What must never reach a carrier, whatever the policy says.
NEVER_SHARED = (PERSONAL["receiver_email"], PERSONAL["payment_ref"])


def carriers_policy(
    policy_file, fields: str = ALL_FIELDS, batch_size: int = 50_000, name: str = "policy.yaml"
):
    """The test policy: sf_express (role and file), zto_express (role), jd_logistics (file)."""
    return load_policy(
        policy_file(CARRIERS_POLICY.format(fields=fields, batch_size=batch_size), name)
    )


def add_pending(conn, order_id: int, carrier: str | None, status: str = "paid", **fields) -> None:
    """An order paid (or shipped) yesterday and matched with `carrier`."""
    times = {"paid_at": AS_OF - timedelta(days=1)}
    if status == "shipped":
        times["shipped_at"] = AS_OF - timedelta(hours=12)
    fields = {"customer_id": 100 + order_id, **times, **fields}
    add_order(conn, order_id, status, AS_OF - timedelta(days=1, hours=1), carrier=carrier, **fields)


def set_order(conn, order_id: int, **values) -> None:
    """Changes an order the way the shop would (status, carrier, address...)."""
    assignments = ", ".join(f"{column} = :{column}" for column in values)
    conn.execute(
        sa.text(f"UPDATE shop.orders SET {assignments} WHERE order_id = :order_id"),
        {**values, "order_id": order_id},
    )


def handoff(conn) -> dict[int, dict]:
    """The hand-off as the administrator sees it, by order id."""
    rows = (
        conn.execute(sa.text("SELECT * FROM logistics.handoff ORDER BY order_id")).mappings().all()
    )
    return {row["order_id"]: dict(row) for row in rows}
