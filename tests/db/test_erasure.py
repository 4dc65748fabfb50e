"""Physical erasure: purged values are gone from the table and index files, not only the rows."""

from __future__ import annotations

import json
import os
import shutil
import time
from contextlib import contextmanager
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from lifecycle import db
from lifecycle.orders import MAX_BIGINT
from lifecycle.requests.handling import handle_requests
from lifecycle.retention import backlog, erasure, horizon, purge, statistics
from lifecycle.retention.rules import Cutoffs, RetentionSql
from tests.conftest import AS_OF
from tests.shop import add_case, add_delivered, add_order

MARKERS = [f"ZQMARKER{i:04d}XJ" for i in range(40)]


def relation_bytes(engine, table: str) -> bytes:
    """Every data file PostgreSQL keeps for `table` (or each of its partitions): heap, TOAST and
    indexes, read from disk."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("CHECKPOINT"))
        paths = (
            conn.execute(
                sa.text("""
            WITH leaves AS (SELECT CAST(:t AS regclass) AS relid  -- a plain table has no tree
                            UNION SELECT relid FROM pg_partition_tree(CAST(:t AS regclass)))
            SELECT pg_relation_filepath(c.oid) FROM pg_class c
            WHERE c.oid IN (SELECT relid FROM leaves)
               OR c.oid IN (SELECT reltoastrelid FROM pg_class WHERE oid IN (SELECT relid FROM leaves))
               OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid IN (SELECT relid FROM leaves))
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


def roots(engine, relations) -> set[str]:
    """The tables `relations` belong to: a partition stands for its partitioned table, so the
    same assertions hold on the plain and the partitioned schema (LIFECYCLE_TEST_PARTITIONED)."""
    with engine.connect() as conn:
        return set(
            conn.execute(
                sa.text("""SELECT CAST(coalesce(pg_partition_root(CAST(r AS regclass)),
                                                CAST(r AS regclass)) AS text)
                           FROM unnest(CAST(:r AS text[])) r"""),
                {"r": list(relations)},
            ).scalars()
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

    settle(engine, policy)
    report = erasure.erase_purged_storage(engine, policy, run_id="erase-1")

    assert report.ran and {"shop.orders", "shop.after_sales_cases"} <= roots(engine, report.tables)
    assert found(engine, "shop.orders") == 0
    assert found(engine, "shop.after_sales_cases") == 0
    assert not erasure.erasure_pending(engine)


def test_erasure_is_skipped_when_nothing_was_cleared_since_the_last_rewrite(engine, policy):
    with engine.begin() as conn:
        add_delivered(conn, 1, AS_OF - timedelta(days=100))
    purge.run_purge(engine, policy, run_id="r1", as_of=AS_OF)
    settle(engine, policy)
    assert erasure.erase_purged_storage(engine, policy, run_id="r1").ran
    again = erasure.erase_purged_storage(engine, policy, run_id="r2")
    assert not again.ran and "nothing cleared" in again.reason
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM lifecycle.erasure_runs")).scalar() == 1


def test_a_transaction_open_since_before_the_purge_does_not_make_the_next_night_rewrite(
    engine, policy
):
    """A session that opened a transaction before the purge and wrote nothing (an autovacuum
    worker on the table the purge just updated, a report idle in its transaction) holds no
    snapshot the rewrite waits for, and the rewrite covers every change committed before it
    began: the next night, with nothing cleared since, rewrites nothing. (Before, the rewrite's
    mark was that transaction's start, so the night's purge counted as uncovered and the next,
    unchanged night rewrote the tables again.)"""
    with engine.begin() as conn:
        for i in range(3):
            add_delivered(conn, i + 1, AS_OF - timedelta(days=100))
    idle = engine.connect()  # READ COMMITTED: a transaction, no snapshot once its statement ends
    try:
        idle.execute(sa.text("SELECT 1"))
        purge.run_purge(engine, policy, run_id="r1", as_of=AS_OF)
        settle(engine, policy)
        first = erasure.erase_purged_storage(engine, policy, run_id="r1")
        assert first.ran and "shop.orders" in roots(engine, first.tables)
    finally:
        idle.rollback()
        idle.close()
    assert not erasure.erasure_pending(engine, policy)
    again = erasure.erase_purged_storage(engine, policy, run_id="r2")
    assert not again.ran and "nothing cleared" in again.reason


def test_a_purge_after_the_rewrite_is_still_owed(engine, policy):
    """The rewrite's horizon drops only changes older than the rewrite: a purge after it is
    owed by the next night."""
    with engine.begin() as conn:
        for i in range(2):
            add_delivered(conn, i + 1, AS_OF - timedelta(days=100))
    purge.run_purge(engine, policy, run_id="r1", as_of=AS_OF)
    settle(engine, policy)
    assert erasure.erase_purged_storage(engine, policy, run_id="r1").ran
    with engine.begin() as conn:
        add_delivered(conn, 3, AS_OF - timedelta(days=100))
    purge.run_purge(engine, policy, run_id="r2", as_of=AS_OF)
    assert "shop.orders" in roots(
        engine, [p.relation for p in erasure.pending_erasures(engine, policy)]
    )


def _marks(engine, policy) -> dict[str, datetime]:
    """Each table's (or partition's) mark: changes recorded before it are not read again."""
    with engine.connect() as conn:
        leaves = [r for source in backlog.sources(policy) for r in backlog.relations(conn, source)]
        return {r: conn.execute(backlog._MARK, {"relation": r}).one_or_none() for r in leaves}


def test_a_night_moves_the_mark_of_every_table_it_found_owing_nothing(engine, policy):
    """A table nothing is cleared in is never rewritten; its mark still moves on, so the next
    night reads only the changes since and not the whole purge ledger (on a partitioned shop the
    partitions of the orders in flight are such tables, every night)."""
    with engine.begin() as conn:
        add_delivered(conn, 1, AS_OF - timedelta(days=100))
        add_delivered(conn, 2, AS_OF - timedelta(days=2))  # in its window: nothing cleared
    purge.run_purge(engine, policy, run_id="r1", as_of=AS_OF)
    settle(engine, policy)
    assert erasure.erase_purged_storage(engine, policy, run_id="r1").ran
    with engine.connect() as conn:
        newest = conn.execute(
            sa.text("SELECT max(recorded_at) FROM lifecycle.purge_ledger")
        ).scalar()
        checked = set(
            conn.execute(sa.text("SELECT relation FROM lifecycle.erasure_checks")).scalars()
        )
    marks = _marks(engine, policy)
    assert checked, "no table was found owing nothing"
    assert all(mark is not None and mark[0] >= newest for mark in marks.values()), marks
    assert not erasure.erasure_pending(engine, policy)


def test_a_change_committed_after_a_night_found_nothing_owed_is_still_owed(engine, policy):
    """The mark a night records for a table owing nothing is the start of the oldest transaction
    then open: a purge that was running (its ledger row not committed yet) is read the next
    night, and its table is owed."""
    with engine.begin() as conn:
        add_delivered(conn, 1, AS_OF - timedelta(days=100))
    q = RetentionSql(policy)
    params = {
        **Cutoffs.at(AS_OF, policy).params(),
        "run_id": "running",
        "policy_version": policy.version,
        "policy_hash": policy.sha256,
        "after": -MAX_BIGINT - 1,
        "upto": MAX_BIGINT,
    }
    running = engine.connect()
    try:
        cleared = running.execute(sa.text(purge._purge_batch_sql(q)), params).one()
        assert cleared[0] == 1  # cleared and ledgered, not committed
        night = erasure.erase_purged_storage(engine, policy, run_id="night")
        assert not night.ran
        with engine.connect() as conn:
            checked = set(
                conn.execute(sa.text("SELECT relation FROM lifecycle.erasure_checks")).scalars()
            )
        assert "shop.orders" in roots(engine, checked)
        running.commit()
    finally:
        running.close()
    owed = [p.relation for p in erasure.pending_erasures(engine, policy)]
    assert "shop.orders" in roots(engine, owed)


def impatient(policy, seconds: int = 1):
    """The policy with a short lock and snapshot wait, so a test of waiting takes a second."""
    return policy.model_copy(
        update={
            "retention": policy.retention.model_copy(
                update={"erasure_lock_timeout_seconds": seconds}
            )
        }
    )


@contextmanager
def open_snapshot(engine, write: bool = False):
    """A REPEATABLE READ transaction on `engine` whose snapshot is taken now and held open; with
    `write`, it also holds a transaction id (as a loading job in that database would)."""
    conn = engine.connect()
    try:
        conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        conn.execute(sa.text("SELECT count(*) FROM pg_class"))
        if write:
            conn.execute(sa.text("SELECT pg_current_xact_id()"))
        yield conn
    finally:
        conn.rollback()
        conn.close()


@pytest.fixture
def other_database(engine):
    """An engine on a second database of the same server (this lane's name in it)."""
    name = f"lifecycle_retention_other_{os.getpid()}"
    db.ensure_database(engine.url, name)
    other = db.create_engine(engine.url.set(database=name))
    yield other
    other.dispose()
    db.drop_database(engine.url, name)


def settle(engine, policy, seconds: float = 120) -> None:
    """Waits until no other session of the shared test server holds back the versions cleared so
    far (other test runs write in their own databases); skips if one holds on for minutes."""
    xids = [p.newest_xid for p in erasure.pending_erasures(engine, policy)]
    deadline = time.monotonic() + seconds
    with engine.connect() as conn:
        newest = conn.execute(erasure._NEWEST, {"xids": xids}).scalar()
        while newest and horizon.holders(conn, newest):
            if time.monotonic() > deadline:
                pytest.skip("another session on this server kept a writing transaction open")
            time.sleep(0.5)
            conn.rollback()


def quiet_horizon(engine, seconds: float = 120) -> None:
    """Before a night whose erasure a test expects to run: waits until no writing transaction of
    another database (another suite, a benchmark on the shared server) is open, since the rewrite
    cannot pass one that started before the night's purge; skips if one holds on for minutes."""
    deadline = time.monotonic() + seconds
    with engine.connect() as conn:
        now = conn.execute(sa.text("SELECT CAST(pg_current_xact_id() AS text)")).scalar()
        xid = str(int(now) % 2**32)
        conn.rollback()
        while horizon.holders(conn, xid):
            if time.monotonic() > deadline:
                pytest.skip("another session on this server kept a writing transaction open")
            time.sleep(0.5)
            conn.rollback()


def purged_markers(engine, policy, n: int = 5) -> None:
    with engine.begin() as conn:
        for i, marker in enumerate(MARKERS[:n]):
            add_delivered(conn, i + 1, AS_OF - timedelta(days=100), receiver_name=marker)
    purge.run_purge(engine, policy, run_id="r1", as_of=AS_OF)


def test_a_locked_table_leaves_the_erasure_pending_and_the_night_green(engine, policy):
    purged_markers(engine, policy, 1)
    settle(engine, policy)
    holder = engine.connect()
    try:
        holder.execute(sa.text("SELECT 1 FROM shop.orders LIMIT 1"))  # ACCESS SHARE until rollback
        report = erasure.erase_purged_storage(engine, impatient(policy), run_id="r1")
    finally:
        holder.rollback()
        holder.close()
    assert "shop.orders" in roots(engine, report.pending) and "shop.orders" not in roots(
        engine, report.tables
    )
    assert any("lock on shop.orders" in w for w in report.waiting_for)
    assert "shop.orders" in roots(
        engine, [p.relation for p in erasure.pending_erasures(engine, policy)]
    )
    # Every connection the pool holds (the erasure's among them) is back at the server's default.
    pooled = [engine.connect() for _ in range(3)]
    try:
        assert {c.execute(sa.text("SHOW lock_timeout")).scalar() for c in pooled} == {"0"}
    finally:
        for c in pooled:
            c.close()


def test_a_snapshot_in_the_same_database_leaves_the_erasure_pending_not_failed(engine, policy):
    with engine.begin() as conn:
        for i, marker in enumerate(MARKERS[:5]):
            add_delivered(conn, i + 1, AS_OF - timedelta(days=100), receiver_name=marker)
    with open_snapshot(engine):  # a report's snapshot, taken before the purge
        purge.run_purge(engine, policy, run_id="r1", as_of=AS_OF)
        report = erasure.erase_purged_storage(engine, impatient(policy), run_id="r1")
        assert not report.ran and "pending" in report.reason
        assert "shop.orders" in roots(engine, report.pending)
        assert any("in this database" in w for w in report.waiting_for)
        assert found(engine, "shop.orders") > 0
        (pending,) = [
            p
            for p in erasure.pending_erasures(engine, policy)
            if roots(engine, [p.relation]) == {"shop.orders"}
        ]
        assert pending.changes == 5 and pending.waiting_for
        with engine.connect() as conn:
            waits = conn.execute(sa.text("SELECT relations FROM lifecycle.erasure_waits")).all()
        assert len(waits) == 1 and "shop.orders" in roots(engine, waits[0][0])
    settle(engine, policy)
    report = erasure.erase_purged_storage(engine, policy, run_id="r2")
    assert report.ran and found(engine, "shop.orders") == 0
    assert "shop.orders" not in roots(
        engine, [p.relation for p in erasure.pending_erasures(engine, policy)]
    )


def test_a_snapshot_in_another_database_does_not_hold_the_erasure(engine, policy, other_database):
    with open_snapshot(other_database) as dump:  # e.g. a pg_dump of another database, all night
        pid = dump.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        purged_markers(engine, policy)
        report = erasure.erase_purged_storage(engine, impatient(policy, 30), run_id="r1")
        assert not any(f"pid {pid} " in w for w in report.waiting_for)
        if not report.ran:  # another test run on the shared server was writing meanwhile
            settle(engine, policy)
            report = erasure.erase_purged_storage(engine, policy, run_id="r2")
        assert report.ran and "shop.orders" in roots(engine, report.tables) and not report.pending
        assert found(engine, "shop.orders") == 0


def test_a_writing_transaction_in_another_database_does_hold_the_erasure(
    engine, policy, other_database
):
    # Its transaction id is running, so the rewrite's own snapshot cannot pass it: PostgreSQL
    # would copy the cleared versions. This is the one kind of foreign snapshot that waits.
    with open_snapshot(other_database, write=True):
        purged_markers(engine, policy)
        report = erasure.erase_purged_storage(engine, impatient(policy), run_id="r1")
        assert not report.ran and any("writing in database" in w for w in report.waiting_for)
    settle(engine, policy)
    assert erasure.erase_purged_storage(engine, policy, run_id="r2").ran
    assert found(engine, "shop.orders") == 0


@pytest.mark.parametrize("minutes, passed", [(-1, True), (1, False)])
def test_the_deadline_check_fails_only_once_values_stayed_past_the_deadline(
    engine, policy, minutes, passed
):
    purged_markers(engine, policy, 1)
    (pending,) = [
        p
        for p in erasure.pending_erasures(engine, policy)
        if roots(engine, [p.relation]) == {"shop.orders"}
    ]
    deadline = pending.cleared_since + timedelta(hours=policy.retention.erasure_deadline_hours)
    result = backlog.erasure_deadline(engine, policy, now=deadline + timedelta(minutes=minutes))
    assert result.passed is passed
    if not passed:
        assert roots(engine, [f.table for f in result.findings]) >= {"shop.orders"}
        assert all(f.kind == "erasure_overdue" for f in result.findings)
    settle(engine, policy)
    erasure.erase_purged_storage(engine, policy, run_id="r1")
    later = backlog.erasure_deadline(engine, policy, now=deadline + timedelta(days=30))
    assert later.passed


def test_a_corrections_old_payload_leaves_the_files_on_a_night_with_nothing_purged(
    engine, policy, tmp_path
):
    marker = "ZQPAYLOAD4411XJ"
    with engine.begin() as conn:
        add_order(conn, 1, "placed", AS_OF - timedelta(days=1), customer_id=7)
        conn.execute(
            sa.text("""INSERT INTO shop.data_requests (request_id, customer_id, kind, payload, received_at)
                       VALUES (100, 7, 'correct', CAST(:p AS jsonb), :at)"""),
            {
                "p": json.dumps({"fields": {"receiver_phone": marker}, "order_ids": [1]}),
                "at": AS_OF - timedelta(days=1),
            },
        )
    handle_requests(engine, policy, tmp_path / "exports", run_id="req", as_of=AS_OF)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM lifecycle.purge_ledger")).scalar() == 0
        payload = conn.execute(sa.text("SELECT payload FROM shop.data_requests")).scalar()
    assert marker not in json.dumps(payload)  # redacted in the row,
    assert marker.encode() in relation_bytes(engine, "shop.data_requests")  # not yet in the file
    settle(engine, policy)
    report = erasure.erase_purged_storage(engine, policy, run_id="night")
    assert report.ran and "shop.data_requests" in roots(engine, report.tables)
    assert "shop.orders" in roots(
        engine, report.tables
    )  # the correction replaced the order's old values
    assert "shop.after_sales_cases" not in roots(engine, report.tables)  # nothing changed there
    assert marker.encode() not in relation_bytes(engine, "shop.data_requests")
    assert not erasure.erase_purged_storage(engine, policy, run_id="night-2").ran


def test_old_statistics_holding_purged_values_leave_pg_statistic(engine, policy):
    marker = "ZQSTATMARKER01XJ"
    with engine.begin() as conn:
        for i in range(1, 31):  # one value in every row: ANALYZE keeps it as most common
            add_delivered(conn, i, AS_OF - timedelta(days=100), receiver_name=marker)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE shop.orders"))  # as autovacuum would, before the purge
    assert marker.encode() in relation_bytes(engine, "pg_catalog.pg_statistic")
    purge.run_purge(engine, policy, run_id="r1", as_of=AS_OF)
    settle(engine, policy)
    report = erasure.erase_purged_storage(engine, policy, run_id="r1")
    assert report.ran and report.statistics == "rewritten"
    assert marker.encode() not in relation_bytes(engine, "pg_catalog.pg_statistic")
    assert marker.encode() not in relation_bytes(engine, "shop.orders")


def test_a_user_who_may_not_rewrite_pg_statistic_is_told_what_a_dba_runs(engine):
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(
            sa.text("""DO $$ BEGIN CREATE ROLE lifecycle_retention_plain NOLOGIN;
                       EXCEPTION WHEN duplicate_object THEN NULL; END $$""")
        )
        conn.execute(sa.text("SET ROLE lifecycle_retention_plain"))
        try:
            outcome = statistics.erase_old_statistics(conn, timeout=1)
        finally:
            conn.execute(sa.text("RESET ROLE"))
    assert outcome.startswith("not rewritten") and "VACUUM FULL pg_catalog.pg_statistic" in outcome


def test_a_rewrite_of_pg_statistic_that_could_not_run_is_owed_retried_and_held_to_the_deadline(
    engine, policy
):
    """pg_statistic's old rows hold values sampled before the purge. When its rewrite cannot run
    (here its lock is held; on a shared server, a writer in another database), it is a pending
    erasure with the time the values were cleared, shown and held to the deadline, and the next
    night retries it even with no table to rewrite."""
    marker = "ZQSTATOWED02XJ"
    with engine.begin() as conn:
        for i in range(1, 31):
            add_delivered(conn, i, AS_OF - timedelta(days=100), receiver_name=marker)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE shop.orders"))
    purge.run_purge(engine, policy, run_id="r1", as_of=AS_OF)
    settle(engine, policy)
    with engine.connect() as holder:  # no snapshot, no transaction id: only the lock
        holder.execute(sa.text("LOCK TABLE pg_catalog.pg_statistic IN ACCESS SHARE MODE"))
        night = erasure.erase_purged_storage(engine, impatient(policy), run_id="r1")
        holder.rollback()
    # (The old rows may or may not still be in the files now: page pruning can reclaim versions
    # no snapshot needs. What matters is that the rewrite is owed until it runs.)
    assert night.ran and night.statistics.startswith("pending")
    (owed,) = [
        p for p in erasure.pending_erasures(engine, policy) if p.relation == statistics.RELATION
    ]
    deadline = owed.cleared_since + timedelta(hours=policy.retention.erasure_deadline_hours)
    assert backlog.erasure_deadline(engine, policy, now=deadline - timedelta(minutes=1)).passed
    late = backlog.erasure_deadline(engine, policy, now=deadline + timedelta(minutes=1))
    assert [(f.table, f.kind) for f in late.findings] == [(statistics.RELATION, "erasure_overdue")]
    quiet_horizon(engine)
    retried = erasure.erase_purged_storage(engine, policy, run_id="r2")
    assert not retried.ran and retried.statistics == statistics.REWRITTEN
    assert "pg_statistic" in retried.reason
    assert marker.encode() not in relation_bytes(engine, "pg_catalog.pg_statistic")
    assert not erasure.pending_erasures(engine, policy)
    assert erasure.erase_purged_storage(engine, policy, run_id="r3").statistics == "not needed"


@pytest.fixture
def pg_repack(engine):
    """The pg_repack extension in the test database, where the server and the machine have it."""
    if shutil.which("pg_repack") is None:
        pytest.skip("pg_repack client not installed (Debian: postgresql-15-repack)")
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_repack"))
    except sa.exc.DBAPIError:
        pytest.skip("this server has no pg_repack extension (the embedded server never has)")
    yield
    with engine.begin() as conn:
        conn.execute(sa.text("DROP EXTENSION pg_repack CASCADE"))


def test_where_the_server_has_pg_repack_the_rewrite_is_online_and_clean(engine, policy, pg_repack):
    with engine.begin() as conn:
        for i, marker in enumerate(MARKERS[:5]):
            add_delivered(conn, i + 1, AS_OF - timedelta(days=100), receiver_name=marker)
            add_case(
                conn,
                i + 1,
                i + 1,
                AS_OF - timedelta(days=99),
                AS_OF - timedelta(days=98),
                note=marker,
            )
    purge.run_purge(engine, policy, run_id="r1", as_of=AS_OF)
    assert found(engine, "shop.orders") > 0
    settle(engine, policy)
    report = erasure.erase_purged_storage(engine, policy, run_id="r1")
    assert report.ran and report.mechanism == "pg_repack"
    assert {"shop.orders", "shop.after_sales_cases"} <= roots(engine, report.tables)
    assert found(engine, "shop.orders") == 0 and found(engine, "shop.after_sales_cases") == 0
    with engine.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT mechanism FROM lifecycle.erasure_runs")).scalar()
            == "pg_repack"
        )


def test_with_pg_repack_a_writing_transaction_in_another_database_does_not_hold_the_erasure(
    engine, policy, other_database, pg_repack
):
    # pg_repack copies only the rows its own snapshot sees: a running writer elsewhere on the
    # server, which makes VACUUM FULL keep the cleared versions, cannot make it keep them.
    with open_snapshot(other_database, write=True) as writer:
        pid = writer.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        purged_markers(engine, policy)
        report = erasure.erase_purged_storage(engine, impatient(policy, 5), run_id="r1")
        assert not any(f"pid {pid} " in w for w in report.waiting_for)
        assert report.ran and report.mechanism == "pg_repack"
        assert "shop.orders" in roots(engine, report.tables)
        assert found(engine, "shop.orders") == 0
