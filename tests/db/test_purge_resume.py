"""A run that dies part-way keeps what it committed, and the next run finishes the rest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from lifecycle.retention import liveness, purge
from tests.conftest import AS_OF
from tests.shop import add_delivered

ORDERS = 120


def small_batches(policy, size: int):
    return policy.model_copy(
        update={"retention": policy.retention.model_copy(update={"batch_size": size})}
    )


def seed(engine) -> None:
    with engine.begin() as conn:
        for oid in range(1, ORDERS + 1):
            add_delivered(conn, oid, AS_OF - timedelta(days=100))


def assert_consistent(engine) -> tuple[int, int]:
    """Every order is either cleared with exactly one ledger row, or untouched with none."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("""
            SELECT o.order_id, o.purged_at IS NOT NULL, o.receiver_name IS NULL, count(l.order_id)
            FROM shop.orders o LEFT JOIN lifecycle.purge_ledger l USING (order_id)
            GROUP BY o.order_id, o.purged_at, o.receiver_name
        """)
        ).all()
    for order_id, purged, cleared, ledgered in rows:
        assert (purged, cleared, ledgered) in {(True, True, 1), (False, False, 0)}, order_id
    purged = sum(1 for r in rows if r[1])
    return purged, len(rows) - purged


def test_failed_batch_rolls_back_alone_and_the_next_run_resumes(engine, policy):
    seed(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.text("""
            CREATE FUNCTION shop.fail_on_55() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN IF NEW.order_id = 55 THEN RAISE EXCEPTION 'simulated crash'; END IF; RETURN NEW; END $$;
            CREATE TRIGGER fail_on_55 BEFORE UPDATE ON shop.orders FOR EACH ROW EXECUTE FUNCTION shop.fail_on_55();
        """)
        )
    try:
        with pytest.raises(purge.PurgeError):
            purge.run_purge(engine, small_batches(policy, 10), run_id="crashing", as_of=AS_OF)
        assert assert_consistent(engine) == (
            50,
            ORDERS - 50,
        )  # batches 1-5 committed, batch 6 rolled back
    finally:
        with engine.begin() as conn:
            conn.execute(
                sa.text("DROP TRIGGER fail_on_55 ON shop.orders; DROP FUNCTION shop.fail_on_55()")
            )
    resumed = purge.run_purge(engine, small_batches(policy, 10), run_id="resumed", as_of=AS_OF)
    assert resumed.purged == ORDERS - 50
    assert assert_consistent(engine) == (ORDERS, 0)


_WORKER = """
import sys
from datetime import datetime
from lifecycle import db
from lifecycle.retention import purge
from lifecycle.policy import load_policy
from lifecycle.settings import PROJECT_DIR
policy = load_policy(PROJECT_DIR / "policy.yaml")
policy = policy.model_copy(update={"retention": policy.retention.model_copy(update={"batch_size": 4})})
purge.run_purge(db.create_engine(sys.argv[1]), policy, run_id="killed", as_of=datetime.fromisoformat(sys.argv[2]))
"""


def test_run_killed_mid_batch_loses_nothing_and_the_next_run_resumes(engine, policy):
    seed(engine)
    with engine.begin() as conn:  # slow each row down so the kill lands inside a batch
        conn.execute(
            sa.text("""
            CREATE FUNCTION shop.slow() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_sleep(0.01); RETURN NEW; END $$;
            CREATE TRIGGER slow BEFORE UPDATE ON shop.orders FOR EACH ROW EXECUTE FUNCTION shop.slow();
        """)
        )
    url = engine.url.render_as_string(hide_password=False)
    worker = subprocess.Popen(
        [sys.executable, "-c", _WORKER, url, AS_OF.isoformat()],
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                if (
                    conn.execute(sa.text("SELECT count(*) FROM lifecycle.purge_ledger")).scalar()
                    >= 20
                ):
                    break
            time.sleep(0.02)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    _wait_for_orphaned_backend(engine)
    purged, untouched = assert_consistent(engine)
    assert 20 <= purged < ORDERS and untouched > 0, (purged, untouched)

    with engine.begin() as conn:
        conn.execute(sa.text("DROP TRIGGER slow ON shop.orders; DROP FUNCTION shop.slow()"))
    resumed = purge.run_purge(engine, policy, run_id="after-kill", as_of=AS_OF)
    assert resumed.purged == untouched
    assert assert_consistent(engine) == (ORDERS, 0)


def _wait_for_orphaned_backend(engine) -> None:
    """The killed client's server process rolls back once it notices; wait until it has."""
    for _ in range(500):
        with engine.connect() as conn:
            busy = conn.execute(
                sa.text("""
                SELECT count(*) FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'
                  AND query ILIKE '%purge_ledger%'
            """)
            ).scalar()
        if not busy:
            return
        time.sleep(0.02)
    raise AssertionError("the killed run's backend never finished")


def test_a_killed_run_is_marked_killed_when_the_next_run_starts(engine, policy):
    seed(engine)
    with engine.begin() as conn:  # slow each row down so the run is still working when killed
        conn.execute(
            sa.text("""
            CREATE FUNCTION shop.slow() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_sleep(0.01); RETURN NEW; END $$;
            CREATE TRIGGER slow BEFORE UPDATE ON shop.orders FOR EACH ROW EXECUTE FUNCTION shop.slow();
        """)
        )
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _WORKER,
            engine.url.render_as_string(hide_password=False),
            AS_OF.isoformat(),
        ],
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and status_of(engine, "killed") != "running":
            time.sleep(0.02)
        assert status_of(engine, "killed") == "running"
        # A run that is alive is left alone by another run starting meanwhile.
        assert liveness.mark_killed_runs(engine, by_run="meanwhile") == []
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    _wait_for_orphaned_backend(engine)
    _wait_for_released_lock(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TRIGGER slow ON shop.orders; DROP FUNCTION shop.slow()"))
    assert status_of(engine, "killed") == "running"  # nothing noticed yet

    purge.run_purge(engine, policy, run_id="next", as_of=AS_OF)

    assert status_of(engine, "killed") == "killed"
    assert status_of(engine, "next") == "succeeded"
    with engine.connect() as conn:
        summary = conn.execute(
            sa.text("SELECT summary FROM lifecycle.purge_runs WHERE run_id = 'killed'")
        ).scalar()
    assert summary["marked_by_run"] == "next"


def status_of(engine, run_id: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT status FROM lifecycle.purge_runs WHERE run_id = :r"), {"r": run_id}
        ).scalar()


def _wait_for_released_lock(engine) -> None:
    """The killed client's idle session, which held the run's lock, ends once the server notices."""
    for _ in range(500):
        with engine.connect() as conn:
            held = conn.execute(
                sa.text("""
                SELECT count(*) FROM pg_locks
                WHERE locktype = 'advisory' AND granted AND classid = :space
                  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
            """),
                {"space": liveness.LOCK_SPACE},
            ).scalar()
        if not held:
            return
        time.sleep(0.02)
    raise AssertionError("the killed run's lock was never released")


def test_a_batch_behind_another_sessions_row_lock_is_left_for_the_next_night(
    engine, policy, monkeypatch
):
    """The shop's own session holds order 55 locked, idle in its transaction: the purge waited
    for as long as the lock lasted, holding the rows it had updated. Now the batch holding 55
    gives up after its tries, the others are cleared, the range is named, and the next run, the
    lock gone, clears it."""
    monkeypatch.setattr(purge, "BATCH_LOCK_TIMEOUT_MS", 200)
    monkeypatch.setattr(purge, "BATCH_LOCK_PAUSE_SECONDS", 0)
    seed(engine)
    policy = small_batches(policy, 10)
    with engine.connect() as shop_session:
        shop_session.execute(sa.text("SELECT 1 FROM shop.orders WHERE order_id = 55 FOR UPDATE"))
        report = purge.run_purge(engine, policy, run_id="night-1", as_of=AS_OF)
        shop_session.rollback()
    [(after, upto)] = report.skipped_behind_locks
    assert after < 55 <= upto and report.purged == ORDERS - (upto - after)
    assert assert_consistent(engine) == (report.purged, upto - after)
    warning = report.lock_warning()
    assert f"({after}, {upto}]" in warning and "\n" not in warning
    assert report.metadata()["batches_left_behind_locks"] == 1
    again = purge.run_purge(engine, policy, run_id="night-2", as_of=AS_OF)
    assert again.purged == upto - after and not again.skipped_behind_locks
    assert assert_consistent(engine) == (ORDERS, 0)
