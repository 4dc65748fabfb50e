"""The summary's 7-day window is the weekly table's newest week added up over its regions
(lifecycle/sales/week_window.py): each of its rows is a sum of whole weekly rows, holds every line
of the week its labels match, and opens nothing the guard finds."""

from __future__ import annotations

from datetime import timedelta

from lifecycle import synthetic
from lifecycle.sales import daily, planning
from lifecycle.sales.differencing import differencing_remainders
from tests.conftest import AS_OF
from tests.db.test_sales import add_sale, noon
from tests.db.test_sales_planning import WEEK, catalogue, k3_with_catalogue, rows

# The newest week's weekly rows: (level, product_line, sku, units).
NEWEST_WEEK = """
SELECT level, product_line, sku, units FROM analytics.weekly_demand
WHERE week_start = (SELECT max(week_start) FROM analytics.weekly_demand)
"""
WINDOW = """
SELECT level, product_line, sku, units FROM analytics.product_line_summary WHERE window_days = 7
"""


def test_each_7_day_row_is_a_sum_of_whole_weekly_rows_of_the_newest_week(engine, policy):
    """On a 20,000-order shop: a sku's 7-day row is its weekly rows added up (its regions and its
    OTHER row), a product line's OTHER row its weekly rows at or below the product line's, less
    the skus shown whole, and the all row the rest; the window shows no unit the weekly table's
    week does not."""
    synthetic.seed_shop(engine, orders=20000, seed=7, as_of=AS_OF)
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    summary, _ = planning.build_planning_tables(engine, policy, AS_OF)
    week, window = rows(engine, NEWEST_WEEK), rows(engine, WINDOW)
    skus = {(line, sku): units for level, line, sku, units in window if level == "sku"}
    lines = {line: units for level, line, _, units in window if level == "product_line"}
    top = [units for level, *_, units in window if level == "all"]
    assert len(skus) > 10 and lines  # the shop shows both
    in_skus = [(line, sku, units) for level, line, sku, units in week if level != "all"]
    for (line, sku), units in skus.items():
        assert units == sum(u for ln, s, u in in_skus if (ln, s) == (line, sku))
    for line, units in lines.items():
        rest = [u for ln, s, u in in_skus if ln == line and (ln, s) not in skus]
        assert units == sum(rest)
    shown_elsewhere = sum(skus.values()) + sum(lines.values())
    assert sum(top) == (sum(u for *_, u in week) - shown_elsewhere if top else 0)
    assert sum(u for *_, u in window) <= sum(u for *_, u in week)
    shares = summary.metadata()["units_published_pct_per_window"]
    assert 0 < shares["7d"] <= 100
    assert differencing_remainders(engine, policy).passed


def test_a_line_the_weekly_table_withholds_keeps_its_sku_and_line_from_the_window(
    engine, policy_file
):
    """k = 3, the week after the 28- and 84-day blocks end (no window total holds it). X: three
    buyers in SH (a weekly row of its own) and one in BJ, whose line reaches k in no row, not even
    the week's all row: withheld. A 7-day row of X, or of tea's other skus, would be read as all
    of X's week, BJ's buyer included, and the guard places lines in rows by their labels; so the
    window shows neither, while the weekly table shows X in SH. Y, bought by three buyers in one
    region, is shown whole in both. One buyer a day: the daily table shows nothing."""
    policy = k3_with_catalogue(policy_file)
    week = WEEK + timedelta(weeks=1)
    with engine.begin() as conn:
        catalogue(conn, tea=["X"], pet=["Y"])
        for n in range(3):
            add_sale(conn, 1 + n, 10 + n, noon(week + timedelta(days=n)), sku="X")
            add_sale(conn, 10 + n, 20 + n, noon(week + timedelta(days=n)), "ZJ", "Y", 2)
        add_sale(conn, 5, 30, noon(week + timedelta(days=4)), "BJ", "X", 4)
    as_of = AS_OF + timedelta(weeks=1)
    daily.refresh(engine, policy, run_id="night", as_of=as_of)
    summary, weekly = planning.build_planning_tables(engine, policy, as_of)
    assert rows(engine, NEWEST_WEEK + " ORDER BY 2, 3") == [
        ("sku_region", "pet", "Y", 6),
        ("sku_region", "tea", "X", 3),
    ]
    assert rows(engine, WINDOW) == [("sku", "pet", "Y", 6)]
    days = "SELECT DISTINCT window_start FROM analytics.product_line_summary WHERE window_days = 7"
    assert rows(engine, days) == [(week,)]
    assert summary.metadata()["units_published_pct_per_window"]["7d"] == 46.15  # 6 of 13
    assert weekly.metadata()["weakest_week_units_published_pct"] == 69.23  # 9 of 13
    assert differencing_remainders(engine, policy).passed


def test_a_weeks_first_copy_tops_its_all_row_up_to_k_instead_of_withholding(engine, policy_file):
    """k = 3, the week after the blocks end. Tea's three skus, one buyer each, make tea's OTHER
    row (3 buyers); pet's one buyer reaches k in no row, not even the week's all row. Withheld in
    the week's first copy, pet's units would stay withheld in its twelve later copies, and a later
    28-day block showing them would open a cell of them (`planning._suppress`, `first_copy`); so
    tea's row, the smallest product line, is merged into the all row, which then shows the whole
    week, and the 7-day window with it."""
    policy = k3_with_catalogue(policy_file)
    week = WEEK + timedelta(weeks=1)
    with engine.begin() as conn:
        catalogue(conn, tea=["T1", "T2", "T3"], pet=["P1"])
        for n, sku in enumerate(["T1", "T2", "T3"]):
            add_sale(conn, 1 + n, 10 + n, noon(week + timedelta(days=n)), sku=sku)
        add_sale(conn, 5, 30, noon(week + timedelta(days=4)), "BJ", "P1", 4)
    as_of = AS_OF + timedelta(weeks=1)
    daily.refresh(engine, policy, run_id="night", as_of=as_of)
    summary, weekly = planning.build_planning_tables(engine, policy, as_of)
    assert rows(engine, NEWEST_WEEK) == [("all", "OTHER", "OTHER", 7)]
    assert (weekly.units_total, weekly.units_published) == (7, 7)
    assert rows(engine, WINDOW) == [("all", "OTHER", "OTHER", 7)]
    assert summary.metadata()["units_published_pct_per_window"]["7d"] == 100.0
    assert differencing_remainders(engine, policy).passed
