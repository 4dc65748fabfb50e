"""Order lines a mapped line table allows without a sku, a quantity or a unit price: every sales
build leaves them out, publishes the rest, and says how many and which orders."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from lifecycle.policy import load_policy
from lifecycle.sales import daily, dp, planning
from lifecycle.sales.differencing import differencing_remainders
from tests.conftest import AS_OF
from tests.db.test_sales import add_sale, noon
from tests.db.test_sales_dp import PERIOD
from tests.db.test_sales_planning import WEEK, rows

# Order id → what the line lacks; each is one unit, bought by its own customer in SH.
BROKEN = {201: "sku NULL", 202: "sku blank", 203: "quantity NULL", 204: "unit_price NULL"}


LAX = ("sku", "quantity", "unit_price")


@pytest.fixture
def lax_items(engine):
    """shop.order_items as a shop's own table might be: nothing forbids a missing value. The
    session's database is shared, so the constraints come back afterwards."""
    with engine.begin() as conn:
        for column in LAX:
            conn.execute(sa.text(f"ALTER TABLE shop.order_items ALTER {column} DROP NOT NULL"))
    yield
    with engine.begin() as conn:
        missing = " OR ".join(f"{column} IS NULL" for column in LAX)
        conn.execute(sa.text(f"DELETE FROM shop.order_items WHERE {missing}"))
        for column in LAX:
            conn.execute(sa.text(f"ALTER TABLE shop.order_items ALTER {column} SET NOT NULL"))


def sales(engine, day) -> int:
    """Four buyers of X on `day` (2 units each: 8 units), and one broken line per BROKEN order."""
    with engine.begin() as conn:
        for n in range(4):
            add_sale(conn, 1 + n, 100 + n, noon(day), region="SH", sku="X", quantity=2)
        for order in BROKEN:
            add_sale(conn, order, order, noon(day), region="SH", sku="Y")
        conn.execute(sa.text("UPDATE shop.order_items SET sku = NULL WHERE order_id = 201"))
        conn.execute(sa.text("UPDATE shop.order_items SET sku = '  ' WHERE order_id = 202"))
        conn.execute(sa.text("UPDATE shop.order_items SET quantity = NULL WHERE order_id = 203"))
        conn.execute(sa.text("UPDATE shop.order_items SET unit_price = NULL WHERE order_id = 204"))
    return 8


def _said(found) -> None:
    """Four lines, the three with a quantity one unit each, named by their orders in one line."""
    assert (found.lines, found.units) == (4, 3)
    assert found.orders == ("201", "202", "203", "204")
    warning = found.warning()
    assert "\n" not in warning and "4 sales line(s)" in warning
    assert "orders 201, 202, 203, 204" in warning and "shop.order_items" in warning


def test_the_daily_and_planning_builds_leave_them_out_and_name_their_orders(
    engine, policy_file, lax_items
):
    policy = load_policy(policy_file('version: "test"\nanalytics: {min_customers_per_cell: 3}\n'))
    units = sales(engine, WEEK + timedelta(days=2))

    built = daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    summary, weekly = planning.build_planning_tables(engine, policy, AS_OF)

    assert rows(engine, "SELECT sku, units FROM analytics.sales_volume_daily") == [("X", units)]
    assert rows(
        engine, "SELECT DISTINCT sku, units FROM analytics.weekly_demand WHERE level <> 'all'"
    ) == [("X", units)]
    assert rows(
        engine, "SELECT DISTINCT sku, units FROM analytics.product_line_summary ORDER BY sku"
    ) == [("X", units)]
    assert built.total("units_total") == units
    assert summary.units_total == weekly.units_total == units
    for found in (built.uncounted, summary.uncounted, weekly.uncounted):
        _said(found)
    assert built.metadata()["order_lines_not_counted"] == 4
    assert weekly.metadata()["units_not_counted"] == 3
    guard = differencing_remainders(engine, policy)
    assert guard.error is None and not guard.findings


def test_the_dp_release_leaves_them_out(engine, policy_file, lax_items):
    policy = load_policy(
        policy_file(
            'version: "test"\n'
            "analytics: {mechanism: differential_privacy, min_customers_per_cell: 3}\n"
            "raw: {catalogue: {table: shop.products}}\n"
        )
    )
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO shop.products VALUES ('X', 'tea'), ('Y', 'tea')"))
    sales(engine, PERIOD + timedelta(days=3))

    report = dp.release(engine, policy, AS_OF, run_id="night")

    _said(report.uncounted)
    assert report.metadata()["order_lines_not_counted"] == 4


def test_orders_whose_status_lifecycle_does_not_know_are_counted_and_named(engine, policy_file):
    """A mapped shop's own words for a paid order ('approved', 'Paid') are neither a sale nor a
    known non-sale: no table counts them, and every build now says so instead of publishing a
    share of units sold that covers only part of the shop's sales. Cancelled and unpaid orders
    are known, and not named."""
    policy = load_policy(policy_file('version: "test"\nanalytics: {min_customers_per_cell: 3}\n'))
    day = WEEK + timedelta(days=2)
    units = 8
    with engine.begin() as conn:
        for n in range(4):
            add_sale(conn, 1 + n, 100 + n, noon(day), sku="X", quantity=2)
        for order, status in [(301, "approved"), (302, "approved"), (303, "Paid")]:
            add_sale(conn, order, order, noon(day), sku="X", quantity=5, status=status)
        for order, status in [(304, "cancelled"), (305, "placed")]:
            add_sale(conn, order, order, noon(day), sku="X", status=status)

    built = daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    summary, weekly = planning.build_planning_tables(engine, policy, AS_OF)

    assert rows(engine, "SELECT sku, units FROM analytics.sales_volume_daily") == [("X", units)]
    for found in (built.uncounted, summary.uncounted, weekly.uncounted):
        assert found.lines == 0 and found.warning() is None
        assert (found.unknown_status_lines, found.unknown_status_units) == (3, 15)
        assert found.unknown_statuses == ("Paid", "approved")
        warning = found.status_warning()
        assert "\n" not in warning and "3 order line(s) (15 unit(s))" in warning
        assert "(e.g. 'Paid', 'approved')" in warning and "shop.orders" in warning
    assert built.metadata()["order_lines_of_unknown_status"] == 3
