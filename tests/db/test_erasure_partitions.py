"""A shop whose orders are range-partitioned by order_id: the erasure rewrites only the partitions
holding rows cleared since their last rewrite, and their files no longer hold the values."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
import sqlalchemy as sa

from lifecycle import db, schema
from lifecycle.retention import erasure, purge
from tests.conftest import AS_OF
from tests.db.test_erasure import relation_bytes, settle
from tests.shop import add_delivered

# The reference orders table as a DBA would partition it (docs/retention.md), created before the
# migrations, which then leave it as it is and add the rest of the schema around it.
PARTITIONED_ORDERS = """
    CREATE SCHEMA shop;
    CREATE TABLE shop.orders (
        order_id bigint, customer_id bigint NOT NULL, status text NOT NULL,
        placed_at timestamptz NOT NULL, paid_at timestamptz, shipped_at timestamptz,
        delivered_at timestamptz, cancelled_at timestamptz, ship_region text,
        receiver_name text, receiver_phone text, receiver_email text, receiver_address text,
        receiver_postcode text, payment_ref text, purged_at timestamptz,
        PRIMARY KEY (order_id)
    ) PARTITION BY RANGE (order_id);
    CREATE TABLE shop.orders_p0 PARTITION OF shop.orders FOR VALUES FROM (MINVALUE) TO (1000);
    CREATE TABLE shop.orders_p1 PARTITION OF shop.orders FOR VALUES FROM (1000) TO (2000);
    CREATE TABLE shop.orders_p2 PARTITION OF shop.orders FOR VALUES FROM (2000) TO (MAXVALUE);
"""
PARTITIONS = ["shop.orders_p0", "shop.orders_p1", "shop.orders_p2"]
MARKERS = {1001: "ZQPART1001XJ", 1002: "ZQPART1002XJ"}


@pytest.fixture
def partitioned(database_url):
    """An engine on a fresh database of the same server whose shop.orders is partitioned."""
    name = f"lifecycle_retention_parts_{os.getpid()}"
    db.drop_database(database_url, name)
    db.ensure_database(database_url, name)
    engine = db.create_engine(database_url.set(database=name))
    with engine.begin() as conn:
        conn.execute(sa.text(PARTITIONED_ORDERS))
    schema.upgrade(engine)
    yield engine
    engine.dispose()
    db.drop_database(database_url, name)


def filenodes(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            p: conn.execute(
                sa.text("SELECT pg_relation_filenode(CAST(:p AS regclass))"), {"p": p}
            ).scalar()
            for p in PARTITIONS
        }


def test_only_partitions_holding_cleared_rows_are_rewritten(partitioned, policy):
    engine = partitioned
    with engine.begin() as conn:
        add_delivered(conn, 1, AS_OF - timedelta(days=2))  # p0: still in its window
        for order_id, marker in MARKERS.items():  # p1: due tonight
            add_delivered(conn, order_id, AS_OF - timedelta(days=100), receiver_name=marker)
        add_delivered(conn, 2001, AS_OF - timedelta(days=2))  # p2: still in its window
    report = purge.run_purge(engine, policy, run_id="night-1", as_of=AS_OF)
    assert report.purged == 2
    pending = {p.relation for p in erasure.pending_erasures(engine, policy)}
    assert "shop.orders_p1" in pending and not pending & {"shop.orders_p0", "shop.orders_p2"}
    assert all(m.encode() in relation_bytes(engine, "shop.orders_p1") for m in MARKERS.values())

    before = filenodes(engine)
    settle(engine, policy)
    erased = erasure.erase_purged_storage(engine, policy, run_id="night-1")
    after = filenodes(engine)

    assert "shop.orders_p1" in erased.tables
    assert not set(erased.tables) & {"shop.orders", "shop.orders_p0", "shop.orders_p2"}
    assert after["shop.orders_p1"] != before["shop.orders_p1"]  # new files
    assert [after[p] == before[p] for p in ("shop.orders_p0", "shop.orders_p2")] == [True, True]
    assert not any(m.encode() in relation_bytes(engine, "shop.orders_p1") for m in MARKERS.values())
    assert not erasure.erase_purged_storage(engine, policy, run_id="night-2").ran
