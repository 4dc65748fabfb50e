"""The planning tables: built from the raw zone at a planner's grain, small cells rolled up a level
instead of withheld, and merged further where a subtraction against another table would leak."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import sqlalchemy as sa

from lifecycle.policy import load_policy
from lifecycle.sales import daily, planning
from lifecycle.sales.differencing import differencing_remainders
from tests.conftest import AS_OF
from tests.db.test_sales import add_sale, noon

WEEK = date(2026, 5, 25)  # the last complete ISO week before AS_OF (Monday 2026-06-01)


def k3_with_catalogue(policy_file):
    return load_policy(
        policy_file(
            'version: "test"\nanalytics: {min_customers_per_cell: 3}\n'
            "raw: {catalogue: {table: shop.products}}\n"
        )
    )


def catalogue(conn, **lines: list[str]) -> None:
    for line, skus in lines.items():
        for sku in skus:
            conn.execute(
                sa.text("INSERT INTO shop.products VALUES (:s, :l)"), {"s": sku, "l": line}
            )


def buys(conn, order_id: int, customer: int, day: int, sku: str, region: str, units: int = 1):
    """Customer buys `units` of sku on day `day` of WEEK (0 = Monday), shipped to region."""
    add_sale(
        conn,
        order_id,
        customer,
        noon(date(2026, 5, 25 + day)),
        region=region,
        sku=sku,
        quantity=units,
    )


def rows(engine, sql: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]


def small_shop(engine) -> None:
    """k = 3. X in SH: three buyers on one day (shown). X in ZJ (2) and BJ (1): too small as
    regions, three together (sku level). Y: two buyers, too small as a sku; with Z's one buyer,
    the line `tea` reaches three (line level). P alone in line `pet`: one buyer, withheld."""
    with engine.begin() as conn:
        catalogue(conn, tea=["X", "Y", "Z"], pet=["P"])
        for n in range(3):
            buys(conn, 1 + n, 10 + n, 0, "X", "SH", units=2)
        buys(conn, 4, 20, 1, "X", "ZJ")
        buys(conn, 5, 21, 2, "X", "ZJ")
        buys(conn, 6, 22, 3, "X", "BJ")
        buys(conn, 7, 30, 4, "Y", "SH", units=4)
        buys(conn, 8, 31, 5, "Y", "ZJ")
        buys(conn, 9, 32, 1, "Z", "GD")
        buys(conn, 10, 40, 6, "P", "SH", units=7)


def test_weekly_cells_roll_up_a_level_at_a_time_a_customer_either_side_of_k(engine, policy_file):
    policy = k3_with_catalogue(policy_file)
    small_shop(engine)
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    build = planning.build_weekly_demand(engine, policy, AS_OF)
    assert rows(
        engine,
        "SELECT week_start, level, product_line, sku, region, orders, units, customers "
        "FROM analytics.weekly_demand ORDER BY level DESC, sku",
    ) == [
        (WEEK, "sku_region", "tea", "X", "SH", 3, 6, 3),  # exactly k: shown as itself
        (WEEK, "sku", "tea", "X", "OTHER", 3, 3, 3),  # ZJ (k-1) and BJ, counted once here
        (WEEK, "product_line", "tea", "OTHER", "OTHER", 3, 6, 3),  # Y (k-1 buyers) and Z
    ]
    # P's one buyer reaches no level, not even all; every other unit is counted exactly once.
    assert (build.units_total, build.units_published) == (22, 15)
    assert build.rows_per_level == {"product_line": 1, "sku": 1, "sku_region": 1}
    assert differencing_remainders(engine, policy).passed


def test_the_summary_rolls_skus_into_their_line_and_shares_count_published_units(
    engine, policy_file
):
    policy = k3_with_catalogue(policy_file)
    small_shop(engine)
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    planning.build_weekly_demand(engine, policy, AS_OF)
    build = planning.build_product_line_summary(engine, policy, AS_OF)
    assert rows(
        engine,
        "SELECT window_days, level, product_line, sku, units, units_share_pct, customers "
        "FROM analytics.product_line_summary ORDER BY window_days, sku",
    ) == [
        (days, level, "tea", sku, units, share, customers)
        for days in (7, 28, 91)
        for level, sku, units, share, customers in [
            ("product_line", "OTHER", 6, Decimal("40.00"), 3),
            ("sku", "X", 9, Decimal("60.00"), 6),
        ]
    ]
    assert build.units_published == 15 and build.cells_merged == 0
    # X (9 units), P (7) and Y (5) make 80% of 22; only X is shown as itself.
    top = build.utility.errors["sku_28d_top80"]
    assert (top.count, top.exact_pct, top.median_error_pct) == (3, 33.3, 100.0)


def test_a_weekly_cell_that_would_leave_one_buyer_beside_the_daily_table_is_merged_up(
    engine, policy
):
    """Daily publishes X in SH on Monday (5 buyers, k = 5); a sixth buyer on Tuesday makes the
    week's X/SH cell 6 buyers, but week minus Monday would be that one buyer's purchase."""
    with engine.begin() as conn:
        for n in range(5):
            buys(conn, 1 + n, 10 + n, 0, "SKU-1", "SH")
        buys(conn, 6, 99, 1, "SKU-1", "SH", units=3)
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    build = planning.build_weekly_demand(engine, policy, AS_OF)
    assert rows(engine, "SELECT sku, region, units FROM analytics.sales_volume_daily") == [
        ("SKU-1", "SH", 5)
    ]
    # Every weekly row holding Tuesday's line also holds Monday's published row: nothing is safe.
    assert rows(engine, "SELECT * FROM analytics.weekly_demand") == []
    assert build.cells_merged >= 1 and build.units_published == 0
    assert differencing_remainders(engine, policy).passed


def test_the_guard_catches_a_planted_differencing_leak(engine, policy):
    with engine.begin() as conn:
        for n in range(5):
            buys(conn, 1 + n, 10 + n, 0, "SKU-1", "SH")
        buys(conn, 6, 99, 1, "SKU-1", "SH", units=3)
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    planning.build_weekly_demand(engine, policy, AS_OF)
    # What a naive weekly build would publish: 6 buyers >= k (SKU-1 is not in the catalogue).
    with engine.begin() as conn:
        conn.execute(
            sa.text("""INSERT INTO analytics.weekly_demand
                VALUES (:w, 'sku_region', 'UNLISTED', 'SKU-1', 'SH', 6, 8, 80, 6)"""),
            {"w": WEEK},
        )
    result = differencing_remainders(engine, policy)
    assert not result.passed and result.error is None
    assert [(f.table, f.column, f.kind, f.count) for f in result.findings] == [
        ("analytics.weekly_demand", "minus analytics.sales_volume_daily", "differencing", 1)
    ]
    assert "99" not in result.description()  # counts only, never a customer
