"""`lifecycle requests …` as a user runs it: a subprocess pointed at a test database."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from tests.db.test_requests import NEW_PHONE, add_request, request_row
from tests.shop import PERSONAL, add_delivered, add_order, leaked
from tests.test_cli import lifecycle

NOW = datetime.now(UTC)
DAY = timedelta(days=1)


def test_requests_run_answers_every_open_request_through_dagster(engine, database_url, tmp_path):
    with engine.begin() as conn:
        add_order(conn, 1, "paid", NOW - DAY, customer_id=42, paid_at=NOW - DAY)
        add_delivered(conn, 2, NOW - 3 * DAY, customer_id=42)
        add_delivered(conn, 3, NOW - 3 * DAY, customer_id=43)
        add_request(conn, 100, "access", customer_id=43, received_at=NOW - DAY)
        add_request(
            conn,
            101,
            "correct",
            {"fields": {"receiver_phone": NEW_PHONE}, "order_ids": [1]},
            received_at=NOW - DAY,
        )
        add_request(conn, 102, "erase", received_at=NOW)
        add_request(conn, 103, "forget_me", received_at=NOW)
    exports = tmp_path / "exports"

    result = lifecycle(
        "requests", "run", url=database_url, tmp_path=tmp_path, LIFECYCLE_EXPORT_DIR=str(exports)
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert "running data_requests" in result.stdout and "succeeded" in result.stdout
    assert re.search(r"^ +4  data requests answered by this run \[handled\]$", result.stdout, re.M)
    assert "requests refused, by reason [rejected_by_reason]: unknown_kind 1" in result.stdout
    assert "{'" not in result.stdout
    with engine.connect() as conn:
        assert {r: request_row(conn, r)["status"] for r in range(100, 104)} == {
            100: "done",
            101: "done",
            102: "partly_done",
            103: "rejected",
        }
    assert (exports / "requests" / "request-100" / "manifest.json").exists()
    assert not leaked(result.stdout + result.stderr, [*PERSONAL.values(), NEW_PHONE])


def test_export_dir_names_the_requests_subfolder_of_the_configured_export_folder(
    database_url, tmp_path
):
    result = lifecycle(
        "requests",
        "export-dir",
        url=database_url,
        tmp_path=tmp_path,
        LIFECYCLE_EXPORT_DIR=str(tmp_path / "out"),
    )
    assert result.returncode == 0
    assert result.stdout.strip() == str(tmp_path / "out" / "requests")


def test_requests_open_lists_overdue_requests_by_age(engine, database_url, tmp_path):
    with engine.begin() as conn:
        add_delivered(conn, 1, NOW - 3 * DAY, customer_id=42)
        add_request(conn, 100, "access", received_at=NOW - 16 * DAY)
    result = lifecycle("requests", "open", url=database_url, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "1 open, 1 overdue (deadline 15 days)" in result.stdout
    assert "| 100 | access | received |" in result.stdout
