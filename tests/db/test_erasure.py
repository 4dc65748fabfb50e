"""Physical erasure: purged values are gone from the table and index files, not only the rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from lifecycle.retention import erasure, purge
from tests.conftest import AS_OF
from tests.shop import add_case, add_delivered

MARKERS = [f"ZQMARKER{i:04d}XJ" for i in range(40)]


def relation_bytes(engine, table: str) -> bytes:
    """Every data file PostgreSQL keeps for `table`: heap, TOAST and indexes, read from disk."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("CHECKPOINT"))
        paths = (
            conn.execute(
                sa.text("""
            SELECT pg_relation_filepath(c.oid) FROM pg_class c
            WHERE c.oid = CAST(:t AS regclass)
               OR c.oid = (SELECT reltoastrelid FROM pg_class WHERE oid = CAST(:t AS regclass))
               OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = CAST(:t AS regclass))
        """),
                {"t": table},
            )
            .scalars()
            .all()
        )
        return b"".join(
            conn.execute(sa.text("SELECT pg_read_binary_file(:p)"), {"p": p}).scalar()
            for p in paths
            if p
        )


def found(engine, table: str) -> int:
    data = relation_bytes(engine, table)
    return sum(marker.encode() in data for marker in MARKERS)


def test_purged_values_leave_the_data_files_after_erasure(engine, policy):
    with engine.begin() as conn:
        for i, marker in enumerate(MARKERS):
            add_delivered(conn, i + 1, AS_OF - timedelta(days=100), receiver_name=marker)
            add_case(
                conn,
                i + 1,
                i + 1,
                AS_OF - timedelta(days=99),
                AS_OF - timedelta(days=98),
                note=f"call from {marker}",
            )
    assert found(engine, "shop.orders") == len(MARKERS)  # the probe really reads the files

    purge.run_purge(engine, policy, run_id="erase-1", as_of=AS_OF)
    # The UPDATE cleared the rows, but the old row versions still sit in the pages.
    assert found(engine, "shop.orders") > 0
    assert erasure.erasure_pending(engine)

    report = erasure.erase_purged_storage(engine, policy, run_id="erase-1")

    assert report.ran and {"shop.orders", "shop.after_sales_cases"} <= set(report.tables)
    assert found(engine, "shop.orders") == 0
    assert found(engine, "shop.after_sales_cases") == 0
    assert not erasure.erasure_pending(engine)


def test_erasure_is_skipped_when_nothing_was_purged_since_the_last_rewrite(engine, policy):
    with engine.begin() as conn:
        add_delivered(conn, 1, AS_OF - timedelta(days=100))
    purge.run_purge(engine, policy, run_id="r1", as_of=AS_OF)
    assert erasure.erase_purged_storage(engine, policy, run_id="r1").ran
    again = erasure.erase_purged_storage(engine, policy, run_id="r2")
    assert not again.ran and "nothing purged" in again.reason
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM lifecycle.erasure_runs")).scalar() == 1


def test_erasure_gives_up_on_a_locked_table_and_stays_pending(engine, policy):
    with engine.begin() as conn:
        add_delivered(conn, 1, AS_OF - timedelta(days=100))
    purge.run_purge(engine, policy, run_id="r1", as_of=AS_OF)
    impatient = policy.model_copy(
        update={
            "retention": policy.retention.model_copy(update={"erasure_lock_timeout_seconds": 1})
        }
    )
    holder = engine.connect()
    try:
        holder.execute(
            sa.text("SELECT 1 FROM shop.orders LIMIT 1")
        )  # holds ACCESS SHARE until rollback
        with pytest.raises(erasure.ErasureError) as failure:
            erasure.erase_purged_storage(engine, impatient, run_id="r1")
        assert "shop.orders" in str(failure.value) and "next run retries" in str(failure.value)
    finally:
        holder.rollback()
        holder.close()
    assert erasure.erasure_pending(engine)
    # Every connection the pool holds (the erasure's among them) is back at the server's default.
    pooled = [engine.connect() for _ in range(3)]
    try:
        assert {c.execute(sa.text("SHOW lock_timeout")).scalar() for c in pooled} == {"0"}
    finally:
        for c in pooled:
            c.close()


def test_erasure_refuses_while_an_older_snapshot_can_still_see_the_purged_rows(engine, policy):
    with engine.begin() as conn:
        for i, marker in enumerate(MARKERS[:5]):
            add_delivered(conn, i + 1, AS_OF - timedelta(days=100), receiver_name=marker)
    reader = engine.connect()
    try:
        reader.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        reader.execute(
            sa.text("SELECT count(*) FROM shop.orders")
        )  # a report's snapshot, taken before the purge
        purge.run_purge(engine, policy, run_id="r1", as_of=AS_OF)
        impatient = policy.model_copy(
            update={
                "retention": policy.retention.model_copy(update={"erasure_lock_timeout_seconds": 1})
            }
        )
        with pytest.raises(erasure.ErasureError) as failure:
            erasure.erase_purged_storage(engine, impatient, run_id="r1")
        assert "older snapshot(s) can still see the purged rows" in str(failure.value)
        assert found(engine, "shop.orders") > 0 and erasure.erasure_pending(engine)
    finally:
        reader.rollback()
        reader.close()
    assert erasure.erase_purged_storage(engine, policy, run_id="r2").ran
    assert found(engine, "shop.orders") == 0
