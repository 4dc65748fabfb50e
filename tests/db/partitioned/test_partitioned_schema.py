"""A subset of the purge, request and erasure tests, collected here again so they run on the
partitioned shop (this folder's conftest.py): the rules, a resumed purge, a re-clear, a request's
erasure and correction, the data files after the rewrite and pg_statistic (a partitioned table's
own statistics, from an ANALYZE of it, hold sampled values too). The same test functions,
unchanged."""

from __future__ import annotations

import sqlalchemy as sa

from lifecycle.sales.capture import capture_signature, ensure_capture
from lifecycle.sales.source import Source
from tests.db.test_erasure import (
    test_a_corrections_old_payload_leaves_the_files_on_a_night_with_nothing_purged,
    test_old_statistics_holding_purged_values_leave_pg_statistic,
    test_purged_values_leave_the_data_files_after_erasure,
)
from tests.db.test_purge_cleared import (
    test_an_order_marked_cleared_with_its_email_left_is_found_and_cleared_again,
)
from tests.db.test_purge_resume import test_failed_batch_rolls_back_alone_and_the_next_run_resumes
from tests.db.test_purge_rules import (
    test_closed_case_restarts_the_window_from_its_closing,
    test_ledger_names_columns_and_policy_and_holds_no_personal_value,
    test_one_customer_keeps_orders_in_service_and_loses_finished_ones,
)
from tests.db.test_requests import (
    test_correction_changes_orders_in_service_and_refuses_the_rest_with_reasons,
    test_erasure_clears_every_order_not_in_delivery_and_waits_for_the_rest,
)

__all__ = [
    "test_a_corrections_old_payload_leaves_the_files_on_a_night_with_nothing_purged",
    "test_an_order_marked_cleared_with_its_email_left_is_found_and_cleared_again",
    "test_closed_case_restarts_the_window_from_its_closing",
    "test_correction_changes_orders_in_service_and_refuses_the_rest_with_reasons",
    "test_erasure_clears_every_order_not_in_delivery_and_waits_for_the_rest",
    "test_failed_batch_rolls_back_alone_and_the_next_run_resumes",
    "test_ledger_names_columns_and_policy_and_holds_no_personal_value",
    "test_old_statistics_holding_purged_values_leave_pg_statistic",
    "test_one_customer_keeps_orders_in_service_and_loses_finished_ones",
    "test_purged_values_leave_the_data_files_after_erasure",
]


def test_the_shop_tables_here_are_partitioned(engine):
    with engine.connect() as conn:
        kinds = dict(
            conn.execute(
                sa.text("""SELECT relname, relkind FROM pg_class
                           WHERE oid IN (CAST('shop.orders' AS regclass),
                                         CAST('shop.after_sales_cases' AS regclass))""")
            ).all()
        )
    assert kinds == {"orders": "p", "after_sales_cases": "p"}


def test_the_sales_capture_triggers_install_once_and_reinstall_cleanly(engine, policy):
    """PostgreSQL clones a partitioned table's triggers onto its partitions. The capture reads
    only the triggers it created: installed once, found in place the next night, and replaced
    without tripping over the clones (which go with their parent) when the mapping changes."""
    src, signature = Source(policy), capture_signature(policy)
    with engine.begin() as conn:
        ensure_capture(conn, src, signature)
    with engine.begin() as conn:
        assert not ensure_capture(conn, src, signature)
        assert ensure_capture(conn, src, "another mapping")
        clones = conn.execute(
            sa.text("""SELECT count(*) FROM pg_trigger
                       WHERE tgname LIKE 'lifecycle\\_sales\\_%' AND tgparentid <> 0""")
        ).scalar()
    assert clones > 0  # the partitions do carry clones, so the case is exercised
