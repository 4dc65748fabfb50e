"""The retention rules, each at its boundary, on real PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from lifecycle.retention import purge, rules, standing
from tests.conftest import AS_OF
from tests.shop import PERSONAL, add_case, add_delivered, add_order, is_purged, leaked, personal_of

MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)


def run(engine, policy, run_id="run-1", as_of=AS_OF):
    return purge.run_purge(engine, policy, run_id=run_id, as_of=as_of)


def test_delivered_order_is_kept_until_window_closes(engine, policy):
    with engine.begin() as conn:
        add_delivered(conn, 1, AS_OF - 30 * DAY + MINUTE)
        add_delivered(conn, 2, AS_OF - 30 * DAY - MINUTE)
    report = run(engine, policy)
    with engine.connect() as conn:
        assert not is_purged(conn, 1)
        assert is_purged(conn, 2)
    assert report.purged == 1


def test_order_whose_window_ends_exactly_now_is_due_and_counted_alike_everywhere(engine, policy):
    with engine.begin() as conn:
        add_delivered(conn, 1, AS_OF - 30 * DAY)  # window ends at as_of
        add_order(conn, 2, "cancelled", AS_OF - 31 * DAY, cancelled_at=AS_OF - 30 * DAY)
        add_order(conn, 3, "placed", AS_OF - 90 * DAY)
        add_delivered(conn, 4, AS_OF - 40 * DAY)
        add_case(
            conn, 40, 4, AS_OF - 39 * DAY, closed_at=AS_OF - 30 * DAY
        )  # case window ends at as_of
    assert standing.summarize(engine, policy, AS_OF).eligible == 4
    assert standing.count_overdue(engine, policy, AS_OF) == 4
    assert sum(standing.forecast_due(engine, policy, AS_OF - MINUTE, days=1).values()) == 4
    assert run(engine, policy).purged == 4


def test_cancelled_order_is_cleared_after_its_retention(engine, policy):
    with engine.begin() as conn:
        for oid, cancelled in ((1, AS_OF - 30 * DAY + MINUTE), (2, AS_OF - 30 * DAY - MINUTE)):
            add_order(conn, oid, "cancelled", cancelled - DAY, cancelled_at=cancelled)
    run(engine, policy)
    with engine.connect() as conn:
        assert not is_purged(conn, 1)
        assert is_purged(conn, 2)


def test_unpaid_order_is_abandoned_after_90_days(engine, policy):
    with engine.begin() as conn:
        add_order(conn, 1, "placed", AS_OF - 90 * DAY + MINUTE)
        add_order(conn, 2, "placed", AS_OF - 90 * DAY - MINUTE)
    run(engine, policy)
    with engine.connect() as conn:
        assert not is_purged(conn, 1)
        assert is_purged(conn, 2)


def test_paid_and_shipped_orders_are_never_purged_and_old_ones_are_stale(engine, policy):
    with engine.begin() as conn:
        add_order(conn, 1, "paid", AS_OF - 400 * DAY, paid_at=AS_OF - 399 * DAY)
        add_order(conn, 2, "shipped", AS_OF - 60 * DAY - MINUTE, shipped_at=AS_OF - 59 * DAY)
        add_order(conn, 3, "shipped", AS_OF - 60 * DAY + MINUTE, shipped_at=AS_OF - 59 * DAY)
    summary = standing.summarize(engine, policy, AS_OF)
    report = run(engine, policy)
    assert report.purged == 0
    assert summary.counts["stale"] == 2 and summary.stale_sample_ids == [1, 2]
    assert summary.counts["in_service"] == 1


def test_open_case_blocks_purge(engine, policy):
    with engine.begin() as conn:
        add_delivered(conn, 1, AS_OF - 200 * DAY)
        add_case(conn, 10, 1, opened_at=AS_OF - 190 * DAY, closed_at=None)
        add_case(conn, 11, 1, opened_at=AS_OF - 195 * DAY, closed_at=AS_OF - 180 * DAY)
    summary = standing.summarize(engine, policy, AS_OF)
    run(engine, policy)
    with engine.connect() as conn:
        assert not is_purged(conn, 1)
    assert summary.counts == {"kept_open_case": 1}


def test_closed_case_restarts_the_window_from_its_closing(engine, policy):
    with engine.begin() as conn:
        add_delivered(conn, 1, AS_OF - 100 * DAY)
        add_case(conn, 10, 1, AS_OF - 90 * DAY, closed_at=AS_OF - 30 * DAY + MINUTE)
        add_delivered(conn, 2, AS_OF - 100 * DAY)
        add_case(conn, 20, 2, AS_OF - 90 * DAY, closed_at=AS_OF - 30 * DAY - MINUTE)
    summary = standing.summarize(engine, policy, AS_OF)
    run(engine, policy)
    with engine.connect() as conn:
        assert not is_purged(conn, 1)
        assert is_purged(conn, 2)
        notes = dict(
            conn.execute(sa.text("SELECT case_id, note FROM shop.after_sales_cases")).all()
        )
    assert notes == {10: "customer says parcel was damaged", 20: None}
    assert summary.counts == {"kept_case_window": 1, "due": 1}
    assert summary.oldest_overdue == MINUTE


@pytest.mark.parametrize(
    "kind, fields",
    [
        ("delivered_without_delivered_at", dict(status="delivered", delivered_at=None)),
        ("future_timestamp", dict(status="delivered", delivered_at=AS_OF + MINUTE)),
        ("delivered_before_placed", dict(status="delivered", delivered_at=AS_OF - 400 * DAY)),
        (
            "future_timestamp",
            dict(status="delivered", delivered_at=AS_OF - 100 * DAY, shipped_at=AS_OF + DAY),
        ),
        ("cancelled_without_cancelled_at", dict(status="cancelled")),
        ("unknown_status", dict(status="lost_in_transit")),
    ],
)
def test_bad_rows_are_never_purged_and_are_reported_by_id(engine, policy, kind, fields):
    with engine.begin() as conn:
        fields = dict(fields)
        status = fields.pop("status")
        add_order(conn, 7, status, AS_OF - 300 * DAY, **fields)
        add_delivered(conn, 8, AS_OF - 100 * DAY)
    summary = standing.summarize(engine, policy, AS_OF)
    report = run(engine, policy)
    with engine.connect() as conn:
        assert personal_of(conn, 7)["receiver_name"] == PERSONAL["receiver_name"]
    assert report.purged == 1
    assert summary.anomalies == {kind: 1}
    assert summary.anomaly_sample_ids == {kind: [7]}


def test_case_opened_in_the_future_is_an_anomaly(engine, policy):
    with engine.begin() as conn:
        add_delivered(conn, 1, AS_OF - 100 * DAY)
        add_case(conn, 10, 1, AS_OF + DAY, closed_at=None)
    assert standing.summarize(engine, policy, AS_OF).anomalies == {"future_timestamp": 1}


def test_second_run_purges_nothing_and_keeps_purged_at(engine, policy):
    with engine.begin() as conn:
        add_delivered(conn, 1, AS_OF - 100 * DAY)
    run(engine, policy, run_id="first")
    with engine.connect() as conn:
        first = personal_of(conn, 1)["purged_at"]
    again = run(engine, policy, run_id="second", as_of=AS_OF + DAY)
    with engine.connect() as conn:
        assert personal_of(conn, 1)["purged_at"] == first
        ledger = conn.execute(sa.text("SELECT run_id FROM lifecycle.purge_ledger")).scalars().all()
    assert again.purged == 0
    assert ledger == ["first"]


def test_only_personal_columns_change(engine, policy):
    with engine.begin() as conn:
        add_delivered(conn, 1, AS_OF - 100 * DAY)
        before = conn.execute(
            sa.text(
                "SELECT order_id, customer_id, status, placed_at, paid_at, shipped_at, delivered_at,"
                " cancelled_at, ship_region FROM shop.orders"
            )
        ).all()
        items_before = conn.execute(sa.text("SELECT * FROM shop.order_items")).all()
    run(engine, policy)
    with engine.connect() as conn:
        after = conn.execute(
            sa.text(
                "SELECT order_id, customer_id, status, placed_at, paid_at, shipped_at, delivered_at,"
                " cancelled_at, ship_region FROM shop.orders"
            )
        ).all()
        assert conn.execute(sa.text("SELECT * FROM shop.order_items")).all() == items_before
        assert is_purged(conn, 1)
    assert after == before


def test_awkward_personal_values_are_cleared(engine, policy):
    awkward = dict(
        receiver_name="O'Brien\"; DROP TABLE shop.orders; --",
        receiver_address="上海市徐汇区 衡山路 12号 🏠",
        receiver_email="a'b@example.com",
        payment_ref="\\x00 %s {0} $1",
    )
    with engine.begin() as conn:
        add_delivered(conn, 1, AS_OF - 100 * DAY, **awkward)
    assert run(engine, policy).purged == 1
    with engine.connect() as conn:
        assert is_purged(conn, 1)


def test_one_customer_keeps_orders_in_service_and_loses_finished_ones(engine, policy):
    with engine.begin() as conn:
        add_delivered(conn, 1, AS_OF - 100 * DAY, customer_id=42)
        add_order(conn, 2, "paid", AS_OF - DAY, customer_id=42, paid_at=AS_OF - DAY)
        add_delivered(conn, 3, AS_OF - 5 * DAY, customer_id=42)
    run(engine, policy)
    with engine.connect() as conn:
        assert [is_purged(conn, oid) for oid in (1, 2, 3)] == [True, False, False]


def test_ledger_names_columns_and_policy_and_holds_no_personal_value(engine, policy):
    with engine.begin() as conn:
        add_delivered(conn, 1, AS_OF - 100 * DAY)
        add_case(conn, 10, 1, AS_OF - 99 * DAY, closed_at=AS_OF - 98 * DAY)
    run(engine, policy, run_id="run-ledger")
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM lifecycle.purge_ledger")).mappings().one()
        everything = conn.execute(
            sa.text("SELECT string_agg(t::text, ' ') FROM lifecycle.purge_ledger t")
        ).scalar()
        everything += conn.execute(
            sa.text("SELECT string_agg(t::text, ' ') FROM lifecycle.purge_runs t")
        ).scalar()
    assert row["run_id"] == "run-ledger" and row["order_id"] == 1
    assert row["policy_version"] == policy.version and row["policy_hash"] == policy.sha256
    assert row["reason"] == "after_sales_window_closed"
    assert set(row["cleared_columns"]) == {f"shop.orders.{c}" for c in PERSONAL} | {
        "shop.after_sales_cases.note"
    }
    assert not leaked(everything)


def test_a_failing_batch_reports_ids_and_no_personal_value(engine, policy):
    with engine.begin() as conn:
        add_delivered(conn, 1, AS_OF - 100 * DAY)
        # A shop whose column cannot be cleared: PostgreSQL's error detail would quote the row.
        conn.execute(sa.text("ALTER TABLE shop.orders ALTER COLUMN receiver_name SET NOT NULL"))
    try:
        with pytest.raises(purge.PurgeError) as failure:
            run(engine, policy)
        message = str(failure.value)
        assert "order_id in" in message and "23502" in message
        for value in PERSONAL.values():
            assert value not in message
        with engine.connect() as conn:
            assert personal_of(conn, 1)["purged_at"] is None
            assert (
                conn.execute(sa.text("SELECT status FROM lifecycle.purge_runs")).scalar()
                == "failed"
            )
    finally:
        with engine.begin() as conn:
            conn.execute(
                sa.text("ALTER TABLE shop.orders ALTER COLUMN receiver_name DROP NOT NULL")
            )


def test_purge_screen_and_summary_labels_agree_on_every_kind_of_row(engine, policy):
    """`trusted` (the purge's estimable screen) must equal `anomaly IS NULL` (the summary's labels)."""
    rows = [
        dict(status="delivered", delivered_at=AS_OF - 100 * DAY),
        dict(status="delivered", delivered_at=None),
        dict(status="delivered", delivered_at=AS_OF - 400 * DAY),
        dict(status="delivered", delivered_at=AS_OF - 100 * DAY, paid_at=AS_OF + DAY),
        dict(status="cancelled", cancelled_at=None),
        dict(status="cancelled", cancelled_at=AS_OF - DAY, delivered_at=AS_OF - 301 * DAY),
        dict(status="paid", paid_at=AS_OF - DAY),
        dict(status="placed"),
        dict(status="refunded"),
        dict(status="shipped", placed_at=AS_OF + MINUTE),
    ]
    with engine.begin() as conn:
        for oid, fields in enumerate(rows, start=1):
            fields = dict(fields)
            add_order(
                conn,
                oid,
                fields.pop("status"),
                fields.pop("placed_at", AS_OF - 300 * DAY),
                **fields,
            )
    q = rules.RetentionSql(policy)
    with engine.connect() as conn:
        pairs = conn.execute(
            sa.text(
                f"SELECT ({q.anomaly}) IS NULL, {q.trusted} IS TRUE FROM {q.orders} o ORDER BY 1"
            ),
            rules.Cutoffs.at(AS_OF, policy).params(),
        ).all()
    assert [a for a, _ in pairs] == [b for _, b in pairs]
    assert sum(a for a, _ in pairs) == 3  # rows 1, 7 and 8


def test_the_nightly_summary_leaves_the_cleared_orders_uncounted_and_lifecycle_due_counts_them(
    engine, policy
):
    """Counting the cleared orders reads the history; the nightly's summary follows the orders in
    flight, so only `lifecycle due` (count_cleared, the default) says how many are cleared."""
    with engine.begin() as conn:
        add_delivered(conn, 1, AS_OF - 40 * DAY)
        add_delivered(conn, 2, AS_OF - 41 * DAY)
        add_delivered(conn, 3, AS_OF - DAY)
    assert standing.summarize(engine, policy, AS_OF).metadata(policy)["already_purged"] == 0
    assert run(engine, policy).purged == 2
    nightly = standing.summarize(engine, policy, AS_OF, count_cleared=False)
    assert "already_purged" not in nightly.metadata(policy) and "purged" not in nightly.counts
    assert nightly.counts == {"waiting": 1}
    assert standing.summarize(engine, policy, AS_OF).metadata(policy)["already_purged"] == 2
