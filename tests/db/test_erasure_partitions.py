"""A shop whose orders (and after-sales cases) are range-partitioned by order_id: the erasure
rewrites only the partitions holding rows cleared since their last rewrite, and their files no
longer hold the values."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
import sqlalchemy as sa

from lifecycle import db, schema
from lifecycle.retention import erasure, purge
from lifecycle.retention.partitions import create_partitioned_orders, create_partitioned_shop
from tests.conftest import AS_OF
from tests.db.test_erasure import relation_bytes, settle
from tests.shop import add_case, add_delivered

PARTITIONS = ["shop.orders_p0", "shop.orders_p1", "shop.orders_p2"]
CASE_PARTITIONS = [p.replace("orders", "after_sales_cases") for p in PARTITIONS]
MARKERS = {1001: "ZQPART1001XJ", 1002: "ZQPART1002XJ"}


def _fresh(database_url, suffix: str, create, expected: list[str]):
    name = f"lifecycle_retention_{suffix}_{os.getpid()}"
    db.drop_database(database_url, name)
    db.ensure_database(database_url, name)
    engine = db.create_engine(database_url.set(database=name))
    assert create(engine, [1000, 2000]) == expected
    schema.upgrade(engine)
    yield engine
    engine.dispose()
    db.drop_database(database_url, name)


@pytest.fixture
def partitioned(database_url):
    """An engine on a fresh database of the same server whose shop.orders is partitioned."""
    yield from _fresh(database_url, "parts", create_partitioned_orders, PARTITIONS)


@pytest.fixture
def partitioned_shop(database_url):
    """The same, with shop.after_sales_cases partitioned by order_id too."""
    yield from _fresh(
        database_url, "shopparts", create_partitioned_shop, PARTITIONS + CASE_PARTITIONS
    )


def filenodes(engine, partitions=PARTITIONS) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            p: conn.execute(
                sa.text("SELECT pg_relation_filenode(CAST(:p AS regclass))"), {"p": p}
            ).scalar()
            for p in partitions
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


def test_only_case_partitions_holding_cleared_notes_are_rewritten(partitioned_shop, policy):
    engine = partitioned_shop
    note = "ZQCASENOTE2002XJ"
    with engine.begin() as conn:
        add_delivered(conn, 1, AS_OF - timedelta(days=2))  # p0: still in its window
        add_case(conn, 1, 1, AS_OF - timedelta(days=1), note="kept: case of a recent order")
        add_delivered(conn, 2002, AS_OF - timedelta(days=100))  # p2: due tonight, with a note
        add_case(conn, 2, 2002, AS_OF - timedelta(days=99), AS_OF - timedelta(days=98), note=note)
    assert purge.run_purge(engine, policy, run_id="night-1", as_of=AS_OF).purged == 1
    pending = {p.relation for p in erasure.pending_erasures(engine, policy)}
    assert {"shop.orders_p2", "shop.after_sales_cases_p2"} <= pending
    assert not pending & {*PARTITIONS[:2], *CASE_PARTITIONS[:2]}
    assert note.encode() in relation_bytes(engine, "shop.after_sales_cases_p2")

    everything = PARTITIONS + CASE_PARTITIONS
    before = filenodes(engine, everything)
    settle(engine, policy)
    erased = erasure.erase_purged_storage(engine, policy, run_id="night-1")
    after = filenodes(engine, everything)

    rewritten = {p for p in everything if after[p] != before[p]}
    assert rewritten == {"shop.orders_p2", "shop.after_sales_cases_p2"}
    assert rewritten <= set(erased.tables)
    assert note.encode() not in relation_bytes(engine, "shop.after_sales_cases_p2")
    assert not erasure.erase_purged_storage(engine, policy, run_id="night-2").ran


def test_an_order_deleted_after_it_was_cleared_still_has_its_partition_rewritten(
    partitioned, policy
):
    """Its old row versions stay in the partition it was in; that partition is not known any more
    once the row is gone, so every partition is pending once and rewritten."""
    engine = partitioned
    marker = MARKERS[1001]
    with engine.begin() as conn:
        add_delivered(conn, 1001, AS_OF - timedelta(days=100), receiver_name=marker)
    assert purge.run_purge(engine, policy, run_id="night-1", as_of=AS_OF).purged == 1
    with engine.begin() as conn:  # the shop deletes the cleared order
        conn.execute(sa.text("DELETE FROM shop.order_items WHERE order_id = 1001"))
        conn.execute(sa.text("DELETE FROM shop.orders WHERE order_id = 1001"))
    assert marker.encode() in relation_bytes(engine, "shop.orders_p1")
    pending = {p.relation for p in erasure.pending_erasures(engine, policy)}
    assert set(PARTITIONS) <= pending

    settle(engine, policy)
    erased = erasure.erase_purged_storage(engine, policy, run_id="night-1")
    assert set(PARTITIONS) <= set(erased.tables)
    assert marker.encode() not in relation_bytes(engine, "shop.orders_p1")
    assert not erasure.erase_purged_storage(engine, policy, run_id="night-2").ran


def test_every_partition_is_counted_in_one_statement_with_its_own_mark(partitioned_shop, policy):
    """After one partition's rewrite only its later changes count for it; an order deleted since
    its clearing counts for every partition; and the changes are read once for all partitions,
    not once per partition (that was O(partitions x changes) on a large backlog)."""
    engine = partitioned_shop
    with engine.begin() as conn:
        for order_id in (1, 2, 1001):
            add_delivered(conn, order_id, AS_OF - timedelta(days=100))
    assert purge.run_purge(engine, policy, run_id="night-1", as_of=AS_OF).purged == 3
    settle(engine, policy)
    assert erasure.erase_purged_storage(engine, policy, run_id="night-1").ran
    assert not erasure.pending_erasures(engine, policy)

    with engine.begin() as conn:  # the next night: two in p1, one in p2 later deleted
        for order_id in (1002, 1003, 2001):
            add_delivered(conn, order_id, AS_OF - timedelta(days=99))
    assert (
        purge.run_purge(engine, policy, run_id="night-2", as_of=AS_OF + timedelta(days=1)).purged
        == 3
    )
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM shop.order_items WHERE order_id = 2001"))
        conn.execute(sa.text("DELETE FROM shop.orders WHERE order_id = 2001"))

    reads = []

    def count(conn, cursor, statement, *args):
        if "lifecycle.purge_ledger" in statement:
            reads.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        pending = {p.relation: p.changes for p in erasure.pending_erasures(engine, policy)}
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)

    # orders: 1002, 1003 in p1, the deleted 2001 everywhere; cases hold no notes of them
    assert {r: n for r, n in pending.items() if r.startswith("shop.orders")} == {
        "shop.orders_p0": 1,
        "shop.orders_p1": 3,
        "shop.orders_p2": 1,
    }
    # one read each for orders, cases (all their partitions at once) and the hand-off table
    assert len(reads) == 3


def _analyzed(engine) -> dict[str, set[str]]:
    """The row versions of each orders partition's own statistics: an ANALYZE replaces them."""
    with engine.connect() as conn:
        return {
            name: set(xmins)
            for name, xmins in conn.execute(
                sa.text(
                    "SELECT c.relname, array_agg(CAST(s.xmin AS text)) FROM pg_statistic s "
                    "JOIN pg_class c ON c.oid = s.starelid AND NOT s.stainherit "
                    "WHERE c.relname LIKE 'orders_p%' GROUP BY 1"
                )
            ).all()
        }


def test_the_partitioned_tables_statistics_are_refreshed_for_personal_columns_only(
    partitioned, policy
):
    """Statistics of the partitioned table itself (a database-wide ANALYZE writes them) sample
    every partition and may hold a purged value: the erasure analyzes them again, for the personal
    columns only, and from PostgreSQL 18 without analyzing every partition once more."""
    engine = partitioned
    marker = "ZQROOTSTATS1001XJ"
    with engine.begin() as conn:
        add_delivered(conn, 1, AS_OF - timedelta(days=2))
        for order_id in range(1001, 1011):  # one value in ten rows: kept as most common
            add_delivered(conn, order_id, AS_OF - timedelta(days=100), receiver_name=marker)
        add_delivered(conn, 2001, AS_OF - timedelta(days=2))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE shop.orders"))
        version = conn.connection.driver_connection.info.server_version

    def root_stats() -> dict[str, str]:
        with engine.connect() as conn:
            return dict(
                conn.execute(
                    sa.text(
                        "SELECT attname, concat(most_common_vals, histogram_bounds) FROM pg_stats "
                        "WHERE schemaname = 'shop' AND tablename = 'orders' AND inherited"
                    )
                ).all()
            )

    assert marker in root_stats()["receiver_name"]
    assert purge.run_purge(engine, policy, run_id="night-1", as_of=AS_OF).purged == 10
    before = _analyzed(engine)
    settle(engine, policy)
    erased = erasure.erase_purged_storage(engine, policy, run_id="night-1")
    assert "shop.orders_p1" in erased.tables and erased.statistics == "rewritten"
    assert not any(marker in values for values in root_stats().values())
    assert marker.encode() not in relation_bytes(engine, "pg_catalog.pg_statistic")
    after = _analyzed(engine)
    assert after["orders_p1"] != before["orders_p1"]  # rewritten, and analyzed
    if version >= 180000:  # ANALYZE ONLY: the partitions left alone are not analyzed again
        assert [after[p] == before[p] for p in ("orders_p0", "orders_p2")] == [True, True]
