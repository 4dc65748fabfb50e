"""What the UI's metadata panes show: id lists on one line, no empty findings on a passing check."""

from datetime import timedelta

import dagster as dg

from assets.check_results import as_asset_check_result
from assets.metadata import compact
from lifecycle.checks import CheckResult, Finding
from tests.dagster.test_retention_assets import NOW, materialize, metadata
from tests.shop import add_order


def test_id_lists_become_one_line_and_other_values_stay():
    shown = compact(
        {
            "stale_sample_order_ids": [3, 14, 34],
            "anomaly_sample_order_ids": {"future_timestamp": [99, 2517], "no_date": [5]},
            "failed_request_ids": [],
            "rows_by_carrier": {"sf_express": 181},
            "eligible": 2048,
        }
    )
    assert shown == {
        "stale_sample_order_ids": "3, 14, 34",
        "anomaly_sample_order_ids": "future_timestamp: 99, 2517; no_date: 5",
        "failed_request_ids": "none",
        "rows_by_carrier": {"sf_express": 181},
        "eligible": 2048,
    }


def test_a_passing_check_shows_its_figures_and_no_empty_findings():
    passed = as_asset_check_result(CheckResult(scanned={"columns": 12}))
    assert passed.passed and "findings" not in passed.metadata
    assert "failed_on" not in passed.metadata and passed.metadata["scanned_columns"].value == 12
    failed = as_asset_check_result(
        CheckResult(findings=[Finding("analytics.t", "email", "email_pattern", 3, ("a***@***",))])
    )
    assert not failed.passed and failed.metadata["failed_on"].value == ["analytics.t.email"]
    assert "email_pattern" in failed.metadata["findings"].value


def test_due_orders_sample_ids_read_as_one_line_in_the_ui(engine, database_url):
    with engine.begin() as conn:
        for order_id in (7, 8, 9):  # paid long ago and never delivered: stale
            add_order(
                conn, order_id, "paid", NOW - timedelta(days=400), paid_at=NOW - timedelta(days=400)
            )
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize(database_url, instance)
    due = metadata(result, "due_orders")
    assert due["stale"] == 3 and due["stale_sample_order_ids"] == "7, 8, 9"
