"""The reference `shop.orders` created range-partitioned by order_id, for demos, tests and
benchmarks of the partition-by-partition erasure (docs/retention.md shows a DBA how to partition
an existing table). Run before the migrations, which then leave the table as it is and build the
rest of the schema (items, cases and their foreign keys, the carrier column) around it."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

_ORDERS = """
    CREATE SCHEMA IF NOT EXISTS shop;
    CREATE TABLE shop.orders (
        order_id bigint, customer_id bigint NOT NULL, status text NOT NULL,
        placed_at timestamptz NOT NULL, paid_at timestamptz, shipped_at timestamptz,
        delivered_at timestamptz, cancelled_at timestamptz, ship_region text,
        receiver_name text, receiver_phone text, receiver_email text, receiver_address text,
        receiver_postcode text, payment_ref text, purged_at timestamptz,
        PRIMARY KEY (order_id)
    ) PARTITION BY RANGE (order_id);
"""


def create_partitioned_orders(engine: Engine, bounds: list[int]) -> list[str]:
    """Creates shop.orders with one partition per range between `bounds` (below the first and
    from the last one included); returns the partitions' names."""
    edges = ["MINVALUE", *map(str, bounds), "MAXVALUE"]
    names = [f"shop.orders_p{i}" for i in range(len(edges) - 1)]
    with engine.begin() as conn:
        conn.execute(sa.text(_ORDERS))
        for name, low, high in zip(names, edges, edges[1:], strict=False):
            conn.execute(
                sa.text(
                    f"CREATE TABLE {name} PARTITION OF shop.orders FOR VALUES FROM ({low}) TO ({high})"
                )
            )
    return names
