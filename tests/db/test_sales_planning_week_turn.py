"""Earlier copies: the planning tables published on earlier Sundays, beside tonight's, give away no
cell under k.

The summary's windows are fixed blocks (lifecycle/sales/blocks.py): a copy shows a block again or
one that shares no day, so sliding windows' week-to-week differences are gone. What a reader who
kept the copies still holds beside tonight's tables: each earlier block's rows, of which tonight's
longer block is a sum (an 84-day total minus the 28-day totals of its first two blocks, published
four and eight weeks ago, is its third block), and each week's and block's rows as first shown,
which tonight's tables may show merged otherwise. Each build audits its tables against the first
copy of every week and block in its span, as against tables it cannot change
(lifecycle/sales/publications.py)."""

from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa

from lifecycle import synthetic
from lifecycle.sales import planning
from lifecycle.sales.differencing import differencing_remainders
from tests.conftest import AS_OF
from tests.db.test_sales import add_sale, noon
from tests.db.test_sales_planning import (
    catalogue,
    k3_with_catalogue,
    nightly_planning,
    rows,
    small_shop,
)

NEXT = AS_OF + timedelta(days=7)
NEW_WEEK = date(2026, 6, 1)  # the week the second night adds (Monday)
LAST_WEEK = NEW_WEEK - timedelta(weeks=1)  # in both nights' weekly tables
LEFT_28 = NEW_WEEK - timedelta(weeks=4)  # the first week of the 28-day block that ends before it
QUARTER_END = date(2026, 5, 31)  # in the tests' calendar an 84-day block ends here
# The Sundays that end its three 28-day blocks, and the nights whose builds first show them.
PERIOD_ENDS = [QUARTER_END - timedelta(weeks=4 * n) for n in (2, 1, 0)]
PERIOD_NIGHTS = [AS_OF - timedelta(weeks=4 * n) for n in (2, 1, 0)]

_SUMMARY = "SELECT window_days, level, sku, units FROM analytics.product_line_summary"


def summary_rows(engine) -> dict[tuple[int, str], int]:
    """(window, sku) -> units of the summary's sku rows."""
    return {(w, sku): units for w, level, sku, units in rows(engine, _SUMMARY) if level == "sku"}


def thin_weeks_over_a_quarter(engine) -> None:
    """k = 3, line tea. X: one buyer a week in three weeks of each of the quarter's first two
    28-day blocks (three buyers each: shown) and one in its third block (hidden); never k in a
    week or a day, so neither the weekly nor the daily table shows it. Y: the same three buyers
    every week, so the line shows."""
    with engine.begin() as conn:
        catalogue(conn, tea=["X", "Y"])
        order = 0
        for block, end in enumerate(PERIOD_ENDS):
            first = end - timedelta(days=27)
            for week in range(3 if block < 2 else 1):
                order += 1
                add_sale(
                    conn, order, 10 * block + week, noon(first + timedelta(weeks=week)), sku="X"
                )
        for week in range(12):
            monday = QUARTER_END - timedelta(days=83) + timedelta(weeks=week)
            for buyer in (91, 92, 93):
                order += 1
                add_sale(conn, order, buyer, noon(monday + timedelta(days=2)), sku="Y")


def test_a_blocks_total_minus_its_earlier_blocks_is_not_given_away(engine, policy_file):
    """X's 84-day total minus its 28-day totals of the first two blocks, as the copies of four and
    eight weeks ago show them, is its one buyer of the third: tonight's tables alone derive
    nothing, the first copies of the earlier blocks do, so X's 84-day total is merged."""
    policy = k3_with_catalogue(policy_file)
    thin_weeks_over_a_quarter(engine)
    for night in PERIOD_NIGHTS[:2]:
        nightly_planning(engine, policy, night)
        assert (28, "X") in summary_rows(engine)  # its block's total, exact: three buyers
    summary, _ = nightly_planning(engine, policy, PERIOD_NIGHTS[2])
    shown = summary_rows(engine)
    assert (28, "X") not in shown and (28, "Y") in shown  # one buyer in this block
    assert (84, "X") not in shown and (84, "Y") in shown
    assert summary.audited_against == PERIOD_ENDS[1]
    assert differencing_remainders(engine, policy).passed


def test_the_guard_catches_a_summary_built_without_the_earlier_copies(engine, policy_file):
    """The blocking check audits tonight's tables against the kept copies too: a summary built
    blind to them publishes X's 84-day total, and fails it."""
    policy = k3_with_catalogue(policy_file)
    thin_weeks_over_a_quarter(engine)
    for night in PERIOD_NIGHTS[:2]:
        nightly_planning(engine, policy, night)
    kept = ("published_summary_rows", "published_weekly_rows")
    with engine.begin() as conn:  # the build does not see the earlier publications
        for table in kept:
            conn.execute(sa.text(f"CREATE TABLE public.{table} AS TABLE lifecycle.{table}"))
            conn.execute(sa.text(f"DELETE FROM lifecycle.{table}"))
    nightly_planning(engine, policy, PERIOD_NIGHTS[2])
    assert (84, "X") in summary_rows(engine)
    with engine.begin() as conn:  # the guard does
        for table in kept:
            conn.execute(sa.text(f"INSERT INTO lifecycle.{table} TABLE public.{table}"))
            conn.execute(sa.text(f"DROP TABLE public.{table}"))
    result = differencing_remainders(engine, policy)
    assert not result.passed
    assert result.scanned["audited_against_summary_of"] == PERIOD_ENDS[1].isoformat()
    assert (
        "analytics.product_line_summary (84 days)",
        "minus analytics.product_line_summary (28-day blocks, each as first published)",
    ) in [(f.table, f.column) for f in result.findings]
    assert "X" not in str(result) and "tea" not in str(result)  # counts, no codes needed


def one_buyer_leaves_the_window(engine) -> None:
    """k = 3, line tea. X: one buyer in the first week of the 28-day block that ends before
    the new week, three in each of the weeks after it, the new week included. Y: the same three
    buyers every week. Z: one buyer, in the week before the new one."""
    with engine.begin() as conn:
        catalogue(conn, tea=["X", "Y", "Z"])
        add_sale(conn, 900, 99, noon(LAST_WEEK + timedelta(days=4)), sku="Z")
        order = 0
        for week in range(5):
            monday = LEFT_28 + timedelta(weeks=week)
            for buyer in [1] if week == 0 else [10 * week + n for n in range(3)]:
                order += 1
                add_sale(conn, order, buyer, noon(monday + timedelta(days=order % 7)), sku="X")
        for buyer in (91, 92, 93):  # Y: enough for the line to show, each week
            for week in range(5):
                order += 1
                monday = LEFT_28 + timedelta(weeks=week)
                add_sale(conn, order, buyer, noon(monday + timedelta(days=2)), sku="Y")


def test_a_week_merged_otherwise_last_week_is_merged_as_it_was(engine, policy_file):
    """Last week's copy of the weekly table showed the week before the new one with Y inside its
    line's row, with Z's one buyer (X in a row of its own). Tonight's table showing Y alone gives
    Z's buyer away: the guard fails, and a build that knows that copy merges Y again."""
    policy = k3_with_catalogue(policy_file)
    one_buyer_leaves_the_window(engine)
    nightly_planning(engine, policy, AS_OF)
    nightly_planning(engine, policy, NEXT)
    shown = "SELECT level, sku FROM analytics.weekly_demand WHERE week_start = :w"
    alone = {("sku_region", "Y"), ("sku", "Y")}  # Y's week in a row of its own
    with engine.connect() as conn:
        assert alone & set(conn.execute(sa.text(shown), {"w": LAST_WEEK}).all())
    with engine.begin() as conn:  # plant the copy: Y's week inside the line's row, with Z's
        params = {"day": date(2026, 5, 31), "w": LAST_WEEK}
        kept = "FROM lifecycle.published_weekly_rows WHERE as_of_date = :day AND week_start = :w"
        conn.execute(sa.text(f"DELETE {kept} AND product_line = 'tea'"), params)
        for level, sku in (("product_line", "OTHER"), ("sku", "X")):
            conn.execute(
                sa.text("""INSERT INTO lifecycle.published_weekly_rows
                    VALUES (:day, :w, :level, 'tea', :sku, 'OTHER')"""),
                params | {"level": level, "sku": sku},
            )
    result = differencing_remainders(engine, policy)
    assert not result.passed
    assert "analytics.weekly_demand (each week as first published)" in str(result.findings)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM lifecycle.planning_builds"))  # rebuild, same night
    nightly_planning(engine, policy, NEXT)
    with engine.connect() as conn:
        assert not alone & set(conn.execute(sa.text(shown), {"w": LAST_WEEK}).all())
    assert differencing_remainders(engine, policy).passed


def test_a_late_cancellation_in_last_weeks_windows_does_not_stop_the_night(engine, policy_file):
    """Last week's rows placed over today's lines can derive a cell under k by themselves when
    orders of their weeks were cancelled since: no build of tonight's tables can hide what was
    published before, so the cell is counted and tonight's tables are published."""
    policy = k3_with_catalogue(policy_file)
    one_buyer_leaves_the_window(engine)
    first = nightly_planning(engine, policy, AS_OF)
    assert first[0].audited_against is None
    with engine.begin() as conn:  # five of X's seven buyers of its first three weeks cancel
        conn.execute(
            sa.text("""
            UPDATE shop.orders SET status = 'cancelled', cancelled_at = placed_at + interval '1 day'
            WHERE order_id IN (SELECT order_id FROM shop.order_items WHERE sku = 'X'
                               ORDER BY order_id LIMIT 5)""")
        )
    summary, weekly = nightly_planning(engine, policy, NEXT)
    assert summary.audited_against == weekly.audited_against == date(2026, 5, 31)
    assert summary.given_away_before > 0
    assert summary.metadata()["cells_derivable_from_earlier_tables_alone"] > 0
    result = differencing_remainders(engine, policy)
    assert result.passed and result.scanned["derivable_from_earlier_tables_alone"] > 0


def test_a_skipped_week_is_audited_against_the_last_publication_kept(engine, policy):
    synthetic.seed_shop(engine, orders=6000, seed=7, as_of=NEXT + timedelta(days=7))
    first, _ = nightly_planning(engine, policy, AS_OF)
    assert first.metadata()["audited_against_summary_of"] is None
    later, weekly = nightly_planning(engine, policy, NEXT + timedelta(days=7))  # a week skipped
    assert later.audited_against == weekly.audited_against == date(2026, 5, 31)
    for table in ("published_summary_rows", "published_weekly_rows"):
        kept = rows(engine, f"SELECT DISTINCT as_of_date FROM lifecycle.{table}")
        assert sorted(kept) == [(date(2026, 5, 31),), (date(2026, 6, 14),)]
    published = rows(
        engine,
        "SELECT DISTINCT as_of_date, window_days, level, product_line, sku "
        "FROM analytics.product_line_summary",
    )
    stored = rows(
        engine,
        "SELECT as_of_date, window_days, level, product_line, sku "
        "FROM lifecycle.published_summary_rows WHERE as_of_date = DATE '2026-06-14'",
    )
    assert sorted(published) == sorted(stored) and published
    assert differencing_remainders(engine, policy).passed


def test_a_summary_row_the_weekly_build_names_is_merged_and_both_are_built_again(
    engine, policy_file, monkeypatch
):
    """Where a cell only the summary's rows can hide, the weekly build names a summary row to merge
    (planning._break_derivations); the summary is then built again with it merged, and the weekly
    table after it (up to SUMMARY_REBUILDS times a night). While the windows slid, a 5,000-order
    shop's week turn did that for three cells of 4 buyers; with blocks, none of the synthetic
    shops probed (1,500-20,000 orders, seeds 1-7, five nights) reaches it, so the weekly build's
    finding is planted here: X's 28-day row, once."""
    policy = k3_with_catalogue(policy_file)
    small_shop(engine)
    weekly_build, named = planning._weekly, []

    def names_x_once(conn, src, day, build, signature, windows, upstream=None):
        weekly_build(conn, src, day, build, signature, windows, upstream)
        if upstream is not None and not named:
            named.append(planning.window_part(28))
            upstream[named[0]].add("28|tea|X|")

    monkeypatch.setattr(planning, "_weekly", names_x_once)
    summary, weekly = nightly_planning(engine, policy)
    assert named
    shown = summary_rows(engine)
    assert (28, "X") not in shown and {(7, "X"), (84, "X")} <= set(shown)
    assert rows(engine, "SELECT count(*) FROM analytics.weekly_demand") == [(weekly.rows,)]
    assert differencing_remainders(engine, policy).passed
