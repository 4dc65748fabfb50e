"""The planning tables a merchandiser reads, built from the published daily table only."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import sqlalchemy as sa

from lifecycle.policy import load_policy
from lifecycle.sales import daily, planning
from tests.conftest import AS_OF
from tests.db.test_sales import add_sale, noon

DAY = timedelta(days=1)


def k1(policy_file):
    return load_policy(
        policy_file(
            'version: "test"\nacknowledge: [k_of_one]\nanalytics: {min_customers_per_cell: 1}\n'
        )
    )


def sell(
    conn, order_id: int, day: date, sku: str, units: int, price: str = "10.00", region: str = "SH"
) -> None:
    add_sale(
        conn, order_id, order_id, noon(day), region=region, sku=sku, quantity=units, price=price
    )


def test_weekly_demand_counts_weeks_without_sales_as_zero_in_average_and_change(
    engine, policy_file
):
    policy = k1(policy_file)
    with engine.begin() as conn:
        sell(conn, 1, date(2026, 5, 4), "SKU-1", 4)  # week of Mon 2026-05-04
        sell(conn, 2, date(2026, 5, 20), "SKU-1", 3)  # week of 2026-05-18 (2026-05-11 sold nothing)
        sell(conn, 3, date(2026, 5, 21), "SKU-1", 5)
        sell(conn, 4, date(2026, 5, 31), "SKU-1", 2)  # week of 2026-05-25, complete on Sunday 05-31
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    report = planning.build_weekly_demand(engine, policy, AS_OF)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("""
            SELECT week_start, units, days_with_sales, units_avg_4w, units_change_wow, units_change_wow_pct,
                   week_complete, customers
            FROM analytics.weekly_demand WHERE sku = 'SKU-1' ORDER BY week_start""")
        ).all()
    assert report.rows == 4 and report.as_of_date == date(2026, 5, 31)
    assert rows == [
        (date(2026, 5, 4), 4, 1, Decimal("4.00"), None, None, True, 1),
        (date(2026, 5, 11), 0, 0, Decimal("2.00"), -4, Decimal("-100.0"), True, 0),
        (date(2026, 5, 18), 8, 2, Decimal("4.00"), 8, None, True, 1),
        (date(2026, 5, 25), 2, 1, Decimal("3.50"), -6, Decimal("-75.0"), True, 1),
    ]


def test_weekly_demand_marks_the_current_week_incomplete(engine, policy_file):
    policy = k1(policy_file)
    as_of = AS_OF + 3 * DAY  # Thursday 2026-06-04: the week of 2026-06-01 has three days in
    with engine.begin() as conn:
        sell(conn, 1, date(2026, 6, 2), "SKU-1", 3)
    daily.refresh(engine, policy, run_id="night", as_of=as_of)
    planning.build_weekly_demand(engine, policy, as_of)
    with engine.connect() as conn:
        assert conn.execute(
            sa.text("SELECT week_start, week_complete FROM analytics.weekly_demand")
        ).all() == [(date(2026, 6, 1), False)]


def test_product_line_summary_gives_shares_trend_and_abc_class(engine, policy_file):
    policy = k1(policy_file)
    with engine.begin() as conn:
        sell(conn, 1, date(2026, 5, 30), "SKU-A", 9, "100.00")  # revenue 900 in the last 7 days
        sell(conn, 2, date(2026, 5, 10), "SKU-B", 1, "150.00")  # 150 in the last 28 days
        sell(conn, 3, date(2026, 3, 20), "SKU-C", 5, "10.00")  # 50 in the last 91 days only
        sell(
            conn, 4, date(2026, 4, 20), "SKU-B", 2, "10.00"
        )  # the 28 days before: trend base of SKU-B
        sell(
            conn, 5, date(2026, 1, 1), "SKU-D", 9, "10.00"
        )  # older than 91 days: not in the summary
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    report = planning.build_product_line_summary(engine, policy, AS_OF)
    with engine.connect() as conn:
        rows = {
            r.sku: r for r in conn.execute(sa.text("SELECT * FROM analytics.product_line_summary"))
        }
    assert report.rows == 3 and set(rows) == {"SKU-A", "SKU-B", "SKU-C"}
    a, b, c = rows["SKU-A"], rows["SKU-B"], rows["SKU-C"]
    assert (a.units_7d, a.units_28d, a.units_91d, a.units_share_7d_pct, a.revenue_share_7d_pct) == (
        9,
        9,
        9,
        100,
        100,
    )
    assert (b.units_28d, b.units_91d, b.revenue_91d, b.units_change_28d_pct) == (
        1,
        3,
        Decimal("170.00"),
        Decimal("-50.0"),
    )
    assert a.units_change_28d_pct is None
    assert (
        float(a.revenue_share_91d_pct + b.revenue_share_91d_pct + c.revenue_share_91d_pct) == 100.0
    )
    # 91-day revenue 900 / 170 / 50: A alone makes 80.4 %, with B 95.5 %.
    assert [(r.sku, r.revenue_rank_91d, r.abc_class) for r in (a, b, c)] == [
        ("SKU-A", 1, "A"),
        ("SKU-B", 2, "B"),
        ("SKU-C", 3, "C"),
    ]
    assert a.as_of_date == date(2026, 5, 31) and min(r.customers for r in (a, b, c)) == 1


def test_planning_tables_read_only_published_rows(engine, policy):
    with engine.begin() as conn:
        for n in range(1, 5):  # four customers: under k = 5, withheld from the daily table
            sell(conn, n, date(2026, 5, 30), "SKU-1", 1)
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    assert planning.build_weekly_demand(engine, policy, AS_OF).rows == 0
    assert planning.build_product_line_summary(engine, policy, AS_OF).rows == 0
