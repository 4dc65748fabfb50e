"""Across the week turn: last week's planning tables beside this week's give away no cell under k.

The summary's windows end on the last complete week and slide by a week every Monday. A reader
who kept last week's copy subtracts: last week's 28-day row of a sku minus this week's, plus this
week's 7-day row, is the week that just left the 28-day window (the same with the 91-day window
and the 13th week back); and a week of the weekly table merged differently from last week's copy
gives away the difference. Each build audits its tables against the previous publication's, as
against tables it cannot change (lifecycle/sales/publications.py)."""

from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa

from lifecycle import synthetic
from lifecycle.policy import Policy
from lifecycle.sales import planning, rollup
from lifecycle.sales.differencing import differencing_remainders
from lifecycle.sales.source import Source, counted_customers
from tests.conftest import AS_OF
from tests.db.test_sales import add_sale, noon
from tests.db.test_sales_planning import catalogue, k3_with_catalogue, nightly_planning, rows

NEXT = AS_OF + timedelta(days=7)
NEW_WEEK = date(2026, 6, 1)  # the week the second night adds (Monday)
LAST_WEEK = NEW_WEEK - timedelta(weeks=1)  # in both nights' weekly tables
LEFT_28 = NEW_WEEK - timedelta(weeks=4)  # the week that leaves the 28-day window that night

_SUMMARY = "SELECT window_days, level, sku, units FROM analytics.product_line_summary"


def summary_rows(engine) -> dict[tuple[int, str], int]:
    """(window, sku) -> units of the summary's sku rows."""
    return {(w, sku): units for w, level, sku, units in rows(engine, _SUMMARY) if level == "sku"}


def sku_weeks(engine, policy: Policy, first: date, after: date) -> dict[tuple[str, date], int]:
    """(sku, week) -> customers of the sku's sales that week, counted as the builds count them."""
    with engine.begin() as conn:
        rollup.load_lines(conn, Source(policy), policy.raw.catalogue, first, after)
        found = conn.execute(
            sa.text(f"""
            SELECT sku, week_start, {counted_customers("customer_id", "units")}
            FROM (SELECT sku, week_start, customer_id, units FROM pg_temp.sales_lines) l
            GROUP BY sku, week_start""")
        )
        return {(sku, week): int(n) for sku, week, n in found}


def weeks_given_away(
    engine, policy: Policy, old: dict, new: dict, k: int
) -> list[tuple[str, int, int]]:
    """The sku weeks under k that old window - new window + new 7 days gives: (sku, window,
    customers), for both long windows."""
    left = {28: LEFT_28, 91: NEW_WEEK - timedelta(weeks=13)}
    weeks = sku_weeks(engine, policy, left[91], NEW_WEEK + timedelta(days=7))
    found = []
    for days, week in left.items():
        for (window, sku), _ in old.items():
            if window == days and (days, sku) in new and (7, sku) in new:
                customers = weeks.get((sku, week), 0)
                if 0 < customers < k:
                    found.append((sku, days, customers))
    return sorted(found)


def one_buyer_leaves_the_window(engine) -> None:
    """k = 3, line tea. X: one buyer in the week that leaves the 28-day window on the second
    night, three in each of the weeks after it, the new week included. Y: the same three buyers
    every week. Z: one buyer, in the week before the new one."""
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


def test_the_week_that_leaves_the_window_is_not_given_away(engine, policy_file):
    policy = k3_with_catalogue(policy_file)
    one_buyer_leaves_the_window(engine)
    nightly_planning(engine, policy, AS_OF)
    old = summary_rows(engine)
    assert {(28, "X"), (7, "X")} <= set(old)  # a sku a planner sees: its 28 days are exact
    nightly_planning(engine, policy, NEXT)
    new = summary_rows(engine)
    assert weeks_given_away(engine, policy, old, new, k=3) == []


def test_the_synthetic_shop_gives_away_no_week_across_the_turn(engine, policy):
    """Built blind to last week's copy, this shop gave away 18 sku weeks of 3-4 buyers."""
    synthetic.seed_shop(engine, orders=20000, seed=7, as_of=NEXT)
    nightly_planning(engine, policy, AS_OF)
    old = summary_rows(engine)
    summary, weekly = nightly_planning(engine, policy, NEXT)
    new = summary_rows(engine)
    k = Source(policy).k
    assert weeks_given_away(engine, policy, old, new, k) == []
    assert differencing_remainders(engine, policy).passed
    # Not by publishing nothing: most skus a planner sees keep their 28-day totals, and where a
    # window's all row left a remainder against last week's copy, product lines were merged into
    # it instead of withholding it (97.3% of units before).
    assert len([key for key in new if key[0] == 28]) >= 0.8 * len([o for o in old if o[0] == 28])
    assert summary.units_published == summary.units_total
    assert weekly.units_published >= 0.99 * weekly.units_total


def test_the_guard_catches_a_summary_built_without_last_weeks(engine, policy_file):
    """The blocking check audits tonight's tables against the kept publication too: a summary
    built as before (blind to last week's copy) fails it."""
    policy = k3_with_catalogue(policy_file)
    one_buyer_leaves_the_window(engine)
    nightly_planning(engine, policy, AS_OF)
    old = summary_rows(engine)
    with engine.begin() as conn:  # the build does not see last week's publication
        kept = conn.execute(sa.text("SELECT * FROM lifecycle.published_summary_rows")).all()
        conn.execute(sa.text("DELETE FROM lifecycle.published_summary_rows"))
    nightly_planning(engine, policy, NEXT)
    new = summary_rows(engine)
    assert weeks_given_away(engine, policy, old, new, k=3) == [("X", 28, 1)]
    with engine.begin() as conn:  # the guard does
        for row in kept:
            conn.execute(
                sa.text("INSERT INTO lifecycle.published_summary_rows VALUES (:a, :w, :l, :p, :s)"),
                dict(zip("awlps", row, strict=True)),
            )
    result = differencing_remainders(engine, policy)
    assert not result.passed
    assert result.scanned["audited_against_summary_of"] == "2026-05-31"
    assert "X" not in str(result) and "tea" not in str(result)  # counts, no codes needed


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
    assert "analytics.weekly_demand (as published the week before)" in str(result.findings)
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


def turned_shop(engine, policy, orders: int, seed: int):
    """A synthetic shop's planning tables for AS_OF, then for the Sunday after, as the nightly
    builds them; returns the second night's (summary, weekly)."""
    synthetic.seed_shop(engine, orders=orders, seed=seed, as_of=NEXT)
    nightly_planning(engine, policy, AS_OF)
    return nightly_planning(engine, policy, NEXT)


def test_the_summarys_window_differences_are_audited_against_last_weeks_copies(engine, policy):
    """Last week's 91-day row minus tonight's 91 days less their 28 days left one buyer on this
    shop: the guard audited the window differences against last week's copies, the builds did
    not, and the night failed. The summary build now audits what a reader derives from its rows
    (differences and sums) against them too."""
    turned_shop(engine, policy, orders=5000, seed=1)
    assert differencing_remainders(engine, policy).passed


def test_a_cell_the_weekly_build_cannot_hide_is_merged_in_the_summary(engine, policy, monkeypatch):
    """On this shop's turn the weekly build found three cells of 4 buyers that tonight's summary
    and last week's copies derive together, which the summary's own audit, searching unions of
    three cells within bounds, had missed; no weekly row holds them. With no summary rebuild the
    weekly build counted them as given away before and the guard failed the night; the summary is
    now rebuilt with a row of theirs merged."""
    with monkeypatch.context() as once:
        once.setattr(planning, "SUMMARY_REBUILDS", 0)
        summary, weekly = turned_shop(engine, policy, orders=5000, seed=3)
    assert weekly.given_away_before == 1
    assert not differencing_remainders(engine, policy).passed
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM lifecycle.planning_builds"))  # rebuild, same night
    summary, weekly = nightly_planning(engine, policy, NEXT)
    assert weekly.given_away_before == summary.given_away_before == 0
    assert differencing_remainders(engine, policy).passed
