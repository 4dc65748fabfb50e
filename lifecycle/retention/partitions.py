"""The reference `shop.orders` and `shop.after_sales_cases` created range-partitioned by order_id,
for demos, tests and benchmarks of the partition-by-partition erasure (docs/retention.md shows a
DBA how to partition an existing table). Run before the migrations, which then leave the tables
as they are and build the rest of the schema (items, the foreign keys of items, the carrier
column) around them.

A partitioned table's primary key must hold the partition key, so the partitioned cases table is
keyed by (case_id, order_id) with order_id NOT NULL: a case always belongs to an order."""

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
_CASES = """
    CREATE TABLE shop.after_sales_cases (
        case_id bigint, order_id bigint NOT NULL REFERENCES shop.orders, kind text NOT NULL,
        opened_at timestamptz NOT NULL, closed_at timestamptz, note text,
        PRIMARY KEY (case_id, order_id)
    ) PARTITION BY RANGE (order_id);
"""


def _partitions(conn, table: str, prefix: str, bounds: list[int]) -> list[str]:
    edges = ["MINVALUE", *map(str, bounds), "MAXVALUE"]
    names = [f"shop.{prefix}_p{i}" for i in range(len(edges) - 1)]
    for name, low, high in zip(names, edges, edges[1:], strict=False):
        conn.execute(
            sa.text(f"CREATE TABLE {name} PARTITION OF {table} FOR VALUES FROM ({low}) TO ({high})")
        )
    return names


def create_partitioned_orders(engine: Engine, bounds: list[int]) -> list[str]:
    """Creates shop.orders with one partition per range between `bounds` (below the first and
    from the last one included); returns the partitions' names."""
    with engine.begin() as conn:
        conn.execute(sa.text(_ORDERS))
        return _partitions(conn, "shop.orders", "orders", bounds)


def create_partitioned_shop(engine: Engine, bounds: list[int]) -> list[str]:
    """Creates shop.orders and shop.after_sales_cases, each with one partition per range between
    `bounds`; returns the partitions' names, orders' first."""
    names = create_partitioned_orders(engine, bounds)
    with engine.begin() as conn:
        conn.execute(sa.text(_CASES))
        return names + _partitions(conn, "shop.after_sales_cases", "after_sales_cases", bounds)
