"""The planning tables: built from the raw zone at a planner's grain, small cells rolled up a level
instead of withheld, and merged further where a subtraction against another table would leak."""

from __future__ import annotations

from datetime import date, timedelta
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
        noon(WEEK + timedelta(days=day)),
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
    _, build = planning.build_planning_tables(engine, policy, AS_OF)
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
    # (Topped up with tea's rest, the week's all row would leave P alone beside the 28-day
    # block's tea row, which shows that rest too: planning._undo_top_up.)
    assert (build.units_total, build.units_published) == (22, 15)
    assert build.rows_per_level == {"product_line": 1, "sku": 1, "sku_region": 1}
    assert differencing_remainders(engine, policy).passed


def test_the_summary_rolls_skus_into_their_line_and_shares_count_published_units(
    engine, policy_file
):
    policy = k3_with_catalogue(policy_file)
    small_shop(engine)
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    build = planning.build_product_line_summary(engine, policy, AS_OF)
    planning.build_weekly_demand(engine, policy, AS_OF)
    assert rows(
        engine,
        "SELECT window_days, level, product_line, sku, units, units_share_pct, customers "
        "FROM analytics.product_line_summary ORDER BY window_days, sku",
    ) == [
        (days, level, "tea", sku, units, share, customers)
        for days in planning.WINDOWS
        for level, sku, units, share, customers in [
            ("product_line", "OTHER", 6, Decimal("40.00"), 3),
            ("sku", "X", 9, Decimal("60.00"), 6),
        ]
    ]
    assert build.units_published == 15 and build.cells_merged == 0
    # X (9 units), P (7) and Y (5) make 80% of 22; only X is shown as itself.
    top = build.utility.errors["sku_28d_top80"]
    assert (top.count, top.exact_pct, top.median_error_pct) == (3, 33.3, 100.0)


def test_the_summary_reports_the_window_that_shows_the_least_of_its_units(engine, policy_file):
    """P's one buyer of the last week is withheld from the weekly table's week, so from the
    7-day window that adds it up (15 of 22 units shown); with two buyers three weeks earlier P
    has k buyers in the 28- and 84-day blocks, which show every unit. The summary's share is the
    7-day window's: reported as the longest window's, it read 100%."""
    policy = k3_with_catalogue(policy_file)
    small_shop(engine)
    with engine.begin() as conn:
        for n in range(2):
            add_sale(conn, 50 + n, 41 + n, noon(WEEK - timedelta(days=21)), region="SH", sku="P")
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    build, _ = planning.build_planning_tables(engine, policy, AS_OF)
    assert rows(
        engine,
        "SELECT window_days, level, sku, units FROM analytics.product_line_summary "
        "WHERE product_line = 'pet' ORDER BY window_days",
    ) == [(28, "sku", "P", 9), (84, "sku", "P", 9)]
    metadata = build.metadata()
    assert (build.units_total, build.units_published) == (22, 15)
    assert metadata["units_published_pct"] == 68.18
    assert metadata["units_published_pct_per_window"] == {"7d": 68.18, "28d": 100.0, "84d": 100.0}


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


# The week minus Monday, seen as that row minus the daily rows inside it, as each sum of the
# week's rows (the row is the only one), and as an atom of one buyer some combination derives.
PLANTED_FINDINGS = [
    ("analytics.weekly_demand", "minus analytics.sales_volume_daily", "differencing", 1),
    *[
        (
            f"analytics.weekly_demand ({group}: its rows added up)",
            "minus analytics.sales_volume_daily",
            "differencing",
            1,
        )
        for group in ("a product line's week", "a sku's week", "a week")
    ],
    ("analytics sales tables", "a combination of their published rows", "differencing", 1),
]


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
    assert [(f.table, f.column, f.kind, f.count) for f in result.findings] == PLANTED_FINDINGS
    assert "99" not in result.description()  # counts only, never a customer


def test_a_top_sellers_28_day_total_stays_exact_and_its_smaller_partners_merge_instead(
    engine, policy_file
):
    """k = 3. X: three buyers in the last week, one more the week before: four over 28 days.
    The 28-day total minus the last week (7-day window or weekly row) would be that one buyer;
    the smaller cells (the weekly ones, and with them the 7-day window that adds them up) move
    up, the 28-day sku total stays exact. The summary merges nothing of its own."""
    policy = k3_with_catalogue(policy_file)
    with engine.begin() as conn:
        catalogue(conn, tea=["X"])
        for n, region in enumerate(["SH", "ZJ", "BJ"]):
            buys(conn, 1 + n, 10 + n, n, "X", region)
        buys(conn, 4, 20, -7, "X", "GD", units=5)
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    summary, weekly = planning.build_planning_tables(engine, policy, AS_OF)
    shown = "SELECT window_days, level, sku, units FROM analytics.product_line_summary"
    assert (28, "sku", "X", 8) in rows(engine, shown)
    assert (7, "sku", "X", 3) not in rows(engine, shown)
    assert summary.cells_merged == 0 and weekly.cells_merged >= 1
    assert ("X", 3) not in rows(engine, "SELECT sku, units FROM analytics.weekly_demand")
    assert summary.utility.errors["sku_28d_top80"].exact_k_pct == 100.0
    assert differencing_remainders(engine, policy).passed


def test_each_window_says_which_days_it_covers(engine, policy_file):
    """A week after the blocks end (tests/conftest.py: they all end on 2026-05-31), the 7-day
    window is the new week; the 28- and 84-day ones are still the blocks that ended then."""
    policy = k3_with_catalogue(policy_file)
    small_shop(engine)
    nightly_planning(engine, policy, AS_OF + timedelta(days=7))
    assert rows(
        engine,
        "SELECT DISTINCT as_of_date, window_days, window_start, window_end "
        "FROM analytics.product_line_summary ORDER BY window_days",
    ) == [
        (date(2026, 6, 7), 28, date(2026, 5, 4), date(2026, 5, 31)),
        (date(2026, 6, 7), 84, date(2026, 3, 9), date(2026, 5, 31)),
    ]  # the new week has no sale: no 7-day row


def nightly_planning(engine, policy, as_of=AS_OF):
    """As the nightly builds them: the daily refresh, then both planning tables together."""
    daily.refresh(engine, policy, run_id="night", as_of=as_of)
    return planning.build_planning_tables(engine, policy, as_of)


def test_a_rerun_with_nothing_new_leaves_both_planning_tables_as_they_are(engine, policy_file):
    policy = k3_with_catalogue(policy_file)
    small_shop(engine)
    first = nightly_planning(engine, policy)
    published = rows(engine, "SELECT * FROM analytics.weekly_demand ORDER BY 1, 2, 3, 4, 5")
    again = nightly_planning(engine, policy)
    assert [b.mode for b in first] == ["rebuilt", "rebuilt"]
    assert [b.mode for b in again] == ["unchanged", "unchanged"]
    assert again[1].rows == first[1].rows == 3 and again[1].metadata()["mode"] == "unchanged"
    assert rows(engine, "SELECT * FROM analytics.weekly_demand ORDER BY 1, 2, 3, 4, 5") == published


def test_a_late_order_in_the_span_rebuilds_both_planning_tables(engine, policy_file):
    policy = k3_with_catalogue(policy_file)
    small_shop(engine)
    nightly_planning(engine, policy)
    with engine.begin() as conn:
        buys(conn, 11, 33, 2, "Y", "GD")  # Y's third buyer: Y now reaches k as a sku
    # Recorded by the capture but not yet in the daily table: stale, whatever the hash says.
    assert planning.build_product_line_summary(engine, policy, AS_OF).mode == "rebuilt"
    summary, weekly = nightly_planning(engine, policy)
    assert (summary.mode, weekly.mode) == ("rebuilt", "rebuilt")
    assert ("sku", "Y", 6) in rows(
        engine, "SELECT level, sku, units FROM analytics.product_line_summary WHERE window_days = 7"
    )


def test_a_catalogue_change_or_a_new_summary_rebuilds_the_weekly_table(engine, policy_file):
    policy = k3_with_catalogue(policy_file)
    small_shop(engine)
    nightly_planning(engine, policy)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE shop.products SET product_line = 'pet' WHERE sku = 'Z'"))
    summary, weekly = nightly_planning(engine, policy)
    assert (summary.mode, weekly.mode) == ("rebuilt", "rebuilt")
    with engine.begin() as conn:  # the summary alone rebuilt (a UI run): weekly follows it
        conn.execute(sa.text("UPDATE lifecycle.planning_builds SET signature = 'old'"))
    assert planning.build_product_line_summary(engine, policy, AS_OF).mode == "rebuilt"
    assert planning.build_weekly_demand(engine, policy, AS_OF).mode == "rebuilt"


def test_the_nights_inside_a_week_leave_both_planning_tables_and_the_week_turning_rebuilds(
    engine, policy_file
):
    """Both tables end on the last complete ISO week (Sunday 2026-05-31 from AS_OF on): the
    Tuesday and Wednesday nights only bring orders of days after that, so nothing is rebuilt;
    the Monday night after the next Sunday moves the window and rebuilds both."""
    policy = k3_with_catalogue(policy_file)
    small_shop(engine)
    first = nightly_planning(engine, policy)
    assert [(b.mode, b.as_of_date) for b in first] == [("rebuilt", date(2026, 5, 31))] * 2
    shown = "SELECT * FROM analytics.{} ORDER BY 1, 2, 3, 4, 5"
    published = [rows(engine, shown.format(t)) for t in ("product_line_summary", "weekly_demand")]
    for night in (1, 2):  # the new day's orders, then the refresh that publishes that day
        with engine.begin() as conn:
            for n in range(3):
                buys(conn, 100 * night + n, 50 + n, 7 + night - 1, "Y", "SH", units=night)
        as_of = AS_OF + timedelta(days=night)
        summary, weekly = nightly_planning(engine, policy, as_of)
        assert daily.built_days(engine)[-1] == date(2026, 5, 31) + timedelta(days=night)
        assert (summary.mode, weekly.mode) == ("unchanged", "unchanged")
        assert [
            rows(engine, shown.format(t)) for t in ("product_line_summary", "weekly_demand")
        ] == (published)
    summary, weekly = nightly_planning(engine, policy, AS_OF + timedelta(days=7))
    assert [(b.mode, b.as_of_date) for b in (summary, weekly)] == [
        ("rebuilt", date(2026, 6, 7))
    ] * 2
    assert rows(  # the new week: Y's six orders of Monday and Tuesday, nine units
        engine, "SELECT sum(units) FROM analytics.product_line_summary WHERE window_days = 7"
    ) == [(9,)]
    assert rows(engine, "SELECT max(week_start) FROM analytics.weekly_demand") == [
        (date(2026, 6, 1),)
    ]
    assert differencing_remainders(engine, policy).passed
