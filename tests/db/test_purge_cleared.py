"""Cleared means cleared: an order marked cleared holds no personal value, and a policy that
leaves a personal column out is refused before the purge writes anything."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from lifecycle.policy import load_policy
from lifecycle.retention import purge, standing
from lifecycle.retention.coverage import PolicyCoverageError
from lifecycle.settings import PROJECT_DIR
from tests.conftest import AS_OF
from tests.shop import PERSONAL, add_case, add_delivered, leaked

DAY = timedelta(days=1)
FULL = "[receiver_name, receiver_phone, receiver_email, receiver_address, receiver_postcode, payment_ref]"


CORRECTABLE = "correctable_columns: [receiver_name, receiver_phone, receiver_email,"


def variant(policy_file, old: str, new: str):
    """The project's policy with `old` replaced, and receiver_email no longer correctable (only a
    personal column may be)."""
    text = (PROJECT_DIR / "policy.yaml").read_text()
    assert old in text and CORRECTABLE in text
    text = text.replace(old, new, 1).replace(
        CORRECTABLE, CORRECTABLE.replace(" receiver_email,", "")
    )
    return load_policy(policy_file(text))


def nothing_written(engine) -> bool:
    with engine.connect() as conn:
        return (
            conn.execute(
                sa.text("""SELECT (SELECT count(*) FROM lifecycle.purge_runs)
                            + (SELECT count(*) FROM lifecycle.purge_ledger)
                            + (SELECT count(*) FROM shop.orders WHERE purged_at IS NOT NULL)""")
            ).scalar()
            == 0
        )


def test_a_policy_missing_email_from_personal_columns_is_refused_before_anything_is_written(
    engine, policy_file
):
    missing = variant(policy_file, FULL, FULL.replace(" receiver_email,", ""))
    with engine.begin() as conn:
        add_delivered(conn, 1, AS_OF - 100 * DAY)
    with pytest.raises(PolicyCoverageError) as refused:
        purge.run_purge(engine, missing, run_id="r1", as_of=AS_OF)
    message = str(refused.value)
    assert "\n" not in message and "nothing written" in message
    assert "raw.orders.personal_columns" in message and "'receiver_email'" in message
    assert not leaked(message)
    assert nothing_written(engine)


def test_a_personal_column_declared_kept_is_refused_too(engine, policy_file):
    kept = variant(
        policy_file,
        FULL,
        FULL.replace(" receiver_email,", "") + "\n    kept_columns: [receiver_email]",
    )
    with engine.begin() as conn:
        add_delivered(conn, 1, AS_OF - 100 * DAY)
    with pytest.raises(PolicyCoverageError, match="'receiver_email' of shop.orders is personal"):
        purge.run_purge(engine, kept, run_id="r1", as_of=AS_OF)
    assert nothing_written(engine)


def test_an_order_marked_cleared_with_its_email_left_is_found_and_cleared_again(engine, policy):
    with engine.begin() as conn:
        add_delivered(conn, 1, AS_OF - 100 * DAY)
        add_delivered(conn, 2, AS_OF - 100 * DAY)
    purge.run_purge(engine, policy, run_id="night-1", as_of=AS_OF)
    assert standing.values_left_after_clear(engine, policy).passed
    # What an earlier policy without receiver_email left behind.
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE shop.orders SET receiver_email = :v WHERE order_id = 2"),
            {"v": PERSONAL["receiver_email"]},
        )
        first_purged_at = conn.execute(
            sa.text("SELECT purged_at FROM shop.orders WHERE order_id = 2")
        ).scalar()

    check = standing.values_left_after_clear(engine, policy)
    assert not check.passed
    (finding,) = check.findings
    assert finding.count == 1 and "[2]" in finding.detail and not leaked(finding.line())

    report = purge.run_purge(engine, policy, run_id="night-2", as_of=AS_OF)
    assert (report.purged, report.recleared) == (0, 1)
    assert standing.values_left_after_clear(engine, policy).passed
    with engine.connect() as conn:
        email, purged_at = conn.execute(
            sa.text("SELECT receiver_email, purged_at FROM shop.orders WHERE order_id = 2")
        ).one()
        ledger = conn.execute(
            sa.text(
                "SELECT order_id, action, reason FROM lifecycle.purge_ledger WHERE run_id = 'night-2'"
            )
        ).all()
    assert email is None and purged_at == first_purged_at  # cleared again, first date kept
    assert ledger == [(2, "retention_reclear", "personal_values_left")]
    # Nothing left: a third run changes nothing.
    assert purge.run_purge(engine, policy, run_id="night-3", as_of=AS_OF).recleared == 0


def test_a_case_note_left_on_a_cleared_order_is_cleared_again(engine, policy):
    with engine.begin() as conn:
        add_delivered(conn, 1, AS_OF - 100 * DAY)
        add_case(conn, 10, 1, AS_OF - 99 * DAY, AS_OF - 98 * DAY)
    purge.run_purge(engine, policy, run_id="night-1", as_of=AS_OF)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE shop.after_sales_cases SET note = 'called back' WHERE case_id = 10")
        )
    assert not standing.values_left_after_clear(engine, policy).passed
    report = purge.run_purge(engine, policy, run_id="night-2", as_of=AS_OF)
    assert report.recleared == 1 and report.notes_cleared == 1
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT note FROM shop.after_sales_cases")).scalar() is None


def _index_names(conn, index: str) -> set[str]:
    """The index and, on a partitioned table, its partitions' indexes."""
    return {index.split(".")[1]} | set(
        conn.execute(
            sa.text(
                "SELECT c.relname FROM pg_partition_tree(CAST(:i AS regclass)) t "
                "JOIN pg_class c ON c.oid = t.relid"
            ),
            {"i": index},
        ).scalars()
    )


def _plan(conn, sql: str, params: dict | None = None) -> str:
    """The plan PostgreSQL would choose with table scans priced out of reach: an index whose
    predicate the statement does not imply still cannot appear in it."""
    conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
    return "\n".join(conn.execute(sa.text("EXPLAIN " + sql), params or {}).scalars())


def test_migration_indexes_hold_the_policys_personal_columns(engine, policy):
    """Migration 0140's partial indexes name the reference policy's personal columns, so the
    re-clear and the check, built from the policy, can read them."""
    with engine.connect() as conn:
        defs = dict(
            conn.execute(
                sa.text("""SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'shop'
                AND indexname IN ('orders_values_left_idx', 'after_sales_cases_values_held_idx')""")
            ).all()
        )
    assert "purged_at IS NOT NULL" in defs["orders_values_left_idx"]
    for column in policy.raw.orders.personal_columns:
        assert f"{column} IS NOT NULL" in defs["orders_values_left_idx"]
    for column in policy.raw.after_sales_cases.personal_columns:
        assert f"{column} IS NOT NULL" in defs["after_sales_cases_values_held_idx"]


def test_the_check_and_the_reclear_read_what_is_left_to_clear_through_the_partial_indexes(
    engine, policy
):
    from lifecycle.retention.rules import Cutoffs, RetentionSql

    q = RetentionSql(policy)
    with engine.begin() as conn:
        orders = _index_names(conn, "shop.orders_values_left_idx")
        cases = _index_names(conn, "shop.after_sales_cases_values_held_idx")
        check = _plan(conn, q.values_left_ids())
        batch = _plan(
            conn,
            purge._purge_batch_sql(q),
            {
                **Cutoffs.at(AS_OF, policy).params(),
                "after": 0,
                "upto": 10_000,
                "run_id": "r",
                "policy_version": "v",
                "policy_hash": "h",
            },
        )
        conn.rollback()
    for plan in (check, batch):
        assert any(name in plan for name in orders) and any(name in plan for name in cases)
    recleared = batch.split("CTE recleared")[1].split("CTE purged")[0]
    assert any(name in recleared for name in orders) and any(name in recleared for name in cases)


def test_a_value_planted_in_a_cleared_order_fails_the_check_until_cleared_again(engine, policy):
    """The check reads only the partial indexes: a value written into a cleared order after the
    purge (its own column, or its case's note) is still in them and still fails it."""
    with engine.begin() as conn:
        for order_id in (1, 2, 1500, 2500):  # on both sides of the test partitions' bounds
            add_delivered(conn, order_id, AS_OF - 100 * DAY)
        add_case(conn, 10, 2500, AS_OF - 99 * DAY, AS_OF - 98 * DAY)
    purge.run_purge(engine, policy, run_id="night-1", as_of=AS_OF)
    assert standing.values_left_after_clear(engine, policy).passed
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE shop.orders SET payment_ref = :v WHERE order_id = 1500"),
            {"v": PERSONAL["payment_ref"]},
        )
        conn.execute(sa.text("UPDATE shop.after_sales_cases SET note = 'rang again'"))
    check = standing.values_left_after_clear(engine, policy)
    assert not check.passed and check.figures == {"cleared_orders_with_values": 2}
    assert "[1500, 2500]" in check.findings[0].detail and not leaked(check.findings[0].line())
    report = purge.run_purge(engine, policy, run_id="night-2", as_of=AS_OF)
    assert (report.purged, report.recleared) == (0, 2)
    assert standing.values_left_after_clear(engine, policy).passed


def test_a_request_erasure_under_a_policy_missing_email_is_refused_before_it_writes(
    engine, policy_file, policy, tmp_path
):
    from lifecycle.requests.handling import handle_requests
    from tests.db.test_requests import add_request, request_row

    missing = variant(policy_file, FULL, FULL.replace(" receiver_email,", ""))
    with engine.begin() as conn:
        add_delivered(conn, 1, AS_OF - 100 * DAY, customer_id=42)
        add_request(conn, 100, "erase", customer_id=42)
    report = handle_requests(engine, missing, tmp_path / "exports", run_id="req-1", as_of=AS_OF)

    message = report.failed[100]
    assert "\n" not in message and message.startswith("request erasure refused, nothing written")
    assert "'receiver_email' of shop.orders" in message and not leaked(message)
    assert nothing_written(engine)
    with engine.connect() as conn:
        row = request_row(conn, 100)
        actions = conn.execute(sa.text("SELECT count(*) FROM lifecycle.request_actions")).scalar()
    assert row["status"] in ("received", "in_progress") and row["completed_at"] is None
    assert actions == 0  # the request's transaction rolled back whole: not even its audit

    fixed = handle_requests(engine, policy, tmp_path / "exports", run_id="req-2", as_of=AS_OF)
    assert fixed.failed == {} and nothing_written(engine) is False  # answered once fixed
