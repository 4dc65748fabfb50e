"""The weekly build's "found again" rule on a hand-made shop: a remainder that the last round's
merge left exactly as it was merges all its partners at once, not one more a round.

Why it needs its own shop: the repeat only happens when a merged partner moves up into a row
that still lies inside the remainder's outer row, which on the bench shops (50k to 1M orders)
is a 28-day product-line row of the summary whose weekly sku cells move up into their sku row.
Without the rule the 1M weekly build took 31 rounds; on this shop the same walk takes 7 rounds
without it (checked by disabling it) and 3 with it.
"""

from __future__ import annotations

from datetime import timedelta

from lifecycle.sales import planning
from lifecycle.sales.differencing import differencing_remainders
from tests.db.test_sales_planning import (
    WEEK,
    buys,
    catalogue,
    k3_with_catalogue,
    nightly_planning,
    rows,
)

W1 = -14  # day offsets from WEEK (Monday 2026-05-25): W1 is the week of 2026-05-11
W2 = -7
REGIONS = ("BJ", "GD", "HN", "SH")  # AX's four weekly cells of W1, each the daily row of one day
WEEK_1 = (WEEK + timedelta(days=W1)).isoformat()


def repeat_shop(engine) -> None:
    """k = 3, everything inside the 28-day window (so its 84-day rows hold the same lines).

    - AX (line tea): customers 1-3 buy it in W1 in BJ on Monday, GD on Tuesday, HN on Wednesday,
      SH on Thursday: four daily rows, and four weekly sku_region cells equal to them. Customer
      4 buys it once in W2 (ZJ), withheld everywhere: the 28-day AX total minus the daily rows
      would be customer 4 alone, so the summary rolls AX into the 28-day tea row.
    - Z1 (customers 5, 6) and Z2 (customer 7), tea, in W1 on separate days: under k as skus,
      three together in the weekly tea row of W1 (no daily row inside it).
    - P (line pet): customer 8 in W1, alone, so the weekly "all" row of W1 is not inside tea.

    The 28-day (and 84-day) tea row minus the daily rows keeps customers 4-7 (>= k, published);
    minus the weekly rows inside it (AX's four cells, the tea row of W1) it keeps customer 4
    alone: a remainder whose partners, merged one by one, each move up into a row (AX's sku row
    of W1, then the tea row of W1) still inside it, so it is found again unchanged."""
    with engine.begin() as conn:
        catalogue(conn, tea=["AX", "Z1", "Z2"], pet=["P"])
        order = 1
        for day, region in enumerate(REGIONS):
            for customer in (1, 2, 3):
                buys(conn, order, customer, W1 + day, "AX", region)
                order += 1
        buys(conn, 100, 4, W2 + 2, "AX", "ZJ", units=2)
        buys(conn, 101, 5, W1 + 4, "Z1", "SH")
        buys(conn, 102, 6, W1 + 5, "Z1", "GD")
        buys(conn, 103, 7, W1 + 6, "Z2", "BJ")
        buys(conn, 104, 8, W1 + 1, "P", "SH", units=3)


def test_a_remainder_found_again_unchanged_merges_all_its_partners_in_one_round(
    engine, policy_file, monkeypatch
):
    """Built without the windows' totals among the sums the weekly build audits: with them, the
    28-day total minus the weekly rows inside it finds the week W1 withholding pet's one buyer,
    and topping that week up moves the tea row of W1 into its all row before the rule is needed
    (`test_a_total_tops_up_the_week_before_the_rule_is_needed`)."""
    policy = k3_with_catalogue(policy_file)
    repeat_shop(engine)
    lines_only = {n: s for n, s in planning.SUMMARY_SUMS.items() if s[1] == 1}
    with monkeypatch.context() as no_totals:
        no_totals.setattr(planning, "SUMMARY_SUMS", lines_only)
        summary, weekly = nightly_planning(engine, policy)
    # The planted situation: AX is rolled into the 28-day tea row, which the summary keeps.
    shown = (
        "SELECT window_days, level, product_line, sku, customers "
        "FROM analytics.product_line_summary"
    )
    assert (28, "product_line", "tea", "OTHER", 7) in rows(engine, shown)
    assert not [r for r in rows(engine, shown) if r[3] == "AX"]
    # The remainder's partners: AX's four weekly cells of W1, then AX's sku row of W1 and the tea
    # row of W1 as the merged cells move up: six cells. One partner a round needs a round for
    # each and one more to find nothing; the rule merges one, then all the rest, then settles.
    partners = len(REGIONS) + 2
    assert weekly.rounds == 3 < partners + 1
    assert weekly.cells_merged == partners
    # Nothing of tea is left in W1 as anything finer than the "all" row, which holds pet too.
    assert rows(
        engine,
        f"SELECT level, product_line, sku, region, customers FROM analytics.weekly_demand "
        f"WHERE week_start = DATE '{WEEK_1}'",
    ) == [("all", "OTHER", "OTHER", "OTHER", 7)]
    assert differencing_remainders(engine, policy).passed
    # The units share is still reported: customer 4's two units (W2, alone) are withheld.
    assert (weekly.units_total, weekly.units_published) == (20, 18)
    assert weekly.metadata()["units_published_pct"] == round(100 * 18 / 20, 2)
    assert weekly.metadata()["suppression_rounds"] == 3
    assert summary.rounds >= 2 and summary.cells_merged >= 1


def test_a_total_tops_up_the_week_before_the_rule_is_needed(engine, policy_file):
    """With the windows' totals audited, the 28-day total minus the weekly rows inside it is pet's
    one buyer, whom W1 withholds (its all row holds no one else); W1 is topped up with its
    smallest product line, tea's row, so its all row reaches k and the tea row of W1 is no longer
    inside the 28-day tea row: the remainder closes with AX's cells of W1 still shown."""
    policy = k3_with_catalogue(policy_file)
    repeat_shop(engine)
    summary, weekly = nightly_planning(engine, policy)
    assert rows(
        engine,
        f"SELECT level, product_line, sku, region, customers FROM analytics.weekly_demand "
        f"WHERE week_start = DATE '{WEEK_1}' ORDER BY 1, 2, 3, 4",
    ) == [
        ("all", "OTHER", "OTHER", "OTHER", 4),
        ("sku", "tea", "AX", "OTHER", 3),
        *[("sku_region", "tea", "AX", region, 3) for region in REGIONS[1:]],
    ]
    assert (weekly.units_total, weekly.units_published) == (20, 18)
    assert differencing_remainders(engine, policy).passed
