"""Differencing through more than two tables: the guard finds a cell any combination of published
rows derives (lifecycle/sales/derivable.py) and a sum of a table's rows minus another's, and the
planning builds publish neither; on the synthetic shop, where the pair audit alone let such cells
through, no cell under k can be derived from the published tables."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import sqlalchemy as sa

from lifecycle import synthetic
from lifecycle.policy import load_policy
from lifecycle.sales import daily, derivable, planning, rollup, weekly_sums
from lifecycle.sales.differencing import differencing_remainders
from lifecycle.sales.source import Source
from tests.conftest import AS_OF
from tests.db.test_sales import add_sale, noon
from tests.db.test_sales_planning import (
    WEEK,
    catalogue,
    k3_with_catalogue,
    nightly_planning,
    rows,
)

WEEKS = [WEEK - timedelta(weeks=n) for n in (3, 2, 1, 0)]  # the four weeks of the 28-day window


def buy(conn, order_id: int, customer: int, day: date, sku: str, region: str = "SH") -> None:
    add_sale(conn, order_id, customer, noon(day), region=region, sku=sku)


def chain_shop(engine, daily_row: bool = False) -> None:
    """k = 3, line tea. X: 2 buyers in the first week, 3 in each of the others; Y: 3 buyers in
    the last week; Z: 1 buyer in the first week. One buyer a day per sku: the daily table shows
    nothing. With `daily_row`, three more buyers of X on one day of the first week, which the
    daily table shows."""
    with engine.begin() as conn:
        catalogue(conn, tea=["X", "Y", "Z"])
        order = 0
        for week, buyers in zip(WEEKS, ([1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]), strict=True):
            for day, buyer in enumerate(buyers):
                order += 1
                buy(conn, order, buyer, week + timedelta(days=day), "X")
        for day, buyer in enumerate((21, 22, 23)):
            buy(conn, 100 + day, buyer, WEEKS[3] + timedelta(days=day), "Y")
        buy(conn, 200, 31, WEEKS[0] + timedelta(days=4), "Z")
        if daily_row:
            for buyer in (41, 42, 43):
                buy(conn, 300 + buyer, buyer, WEEKS[0] + timedelta(days=5), "X")


def weekly_rows(engine, *published: tuple[date, str, str]) -> None:
    """Replaces analytics.weekly_demand by rows (week, level, sku) of line tea; figures are not
    read by the audit, only which rows exist."""
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM analytics.weekly_demand"))
        for week, level, sku in published:
            conn.execute(
                sa.text("""INSERT INTO analytics.weekly_demand
                    VALUES (:w, :level, 'tea', :sku, 'OTHER', 3, 3, 30, 3)"""),
                {"w": week, "level": level, "sku": sku},
            )


def week_window_rows(engine, *skus: str) -> None:
    """Adds 7-day sku rows of line tea to the summary as published for its Sunday (built alone,
    it has none: its 7-day window adds up the weekly table's week, planted here like it); figures
    are not read by the audit, only which rows exist."""
    with engine.begin() as conn:
        for sku in skus:
            conn.execute(
                sa.text("""INSERT INTO analytics.product_line_summary (as_of_date, window_days,
                    window_start, window_end, level, product_line, sku, orders, units, revenue,
                    units_share_pct, customers)
                    SELECT max(as_of_date), 7, max(as_of_date) - 6, max(as_of_date), 'sku', 'tea',
                           :sku, 3, 3, 30, NULL, 3
                    FROM analytics.product_line_summary"""),
                {"sku": sku},
            )


def true_summary(engine, policy, figure: str, where: str) -> list[tuple]:
    """Builds the daily table and the summary alone (as the shop's lines give them: its 28- and
    84-day windows); returns (window, sku, `figure`) of the summary's rows `where`."""
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    planning.build_product_line_summary(engine, policy, AS_OF)
    return rows(
        engine,
        f"SELECT window_days, sku, {figure} FROM analytics.product_line_summary "
        f"WHERE {where} ORDER BY 1, 2",
    )


def planted_chain(engine, policy, daily_row: bool = False) -> None:
    """The shop's true summary with a 7-day window showing X and Y (3 buyers each), and a weekly
    table that shows X's two middle weeks but puts its first and last weeks into the line's row
    (with Z, and with Y)."""
    chain_shop(engine, daily_row)
    assert true_summary(engine, policy, "customers", "window_days = 28") == [
        (28, "X", 14 if daily_row else 11),
        (28, "Y", 3),
    ]
    week_window_rows(engine, "X", "Y")
    weekly_rows(
        engine,
        (WEEKS[0], "product_line", "OTHER"),
        (WEEKS[1], "sku", "X"),
        (WEEKS[2], "sku", "X"),
        (WEEKS[3], "product_line", "OTHER"),
    )


def test_a_chain_through_three_tables_is_caught_where_no_pair_leaves_a_remainder(
    engine, policy_file
):
    """The 28-day X minus the 7-day X minus X's two middle weeks is X's first week: 2 buyers.
    No pair of published tables leaves it (X's 28 days minus the weeks inside keep the first and
    last weeks, 5 buyers); the summary's 28 days minus its 7 days, a figure one subtraction
    gives, minus the weeks inside it does, and so does a combination of rows. So do tea's 28-
    and 84-day rows added up (X's and the line's, which holds Z), and each window's rows added
    up (tea is the shop's only line): minus the weeks inside them they leave X's first week and
    Z's buyer."""
    policy = k3_with_catalogue(policy_file)
    planted_chain(engine, policy)
    result = differencing_remainders(engine, policy)
    assert not result.passed and result.error is None
    assert [(f.table, f.column, f.kind, f.count) for f in result.findings] == [
        (
            "analytics.product_line_summary (28 days: its rows added up)",
            "minus analytics.weekly_demand",
            "differencing",
            1,
        ),
        (
            "analytics.product_line_summary (28 days: a product line's rows added up)",
            "minus analytics.weekly_demand",
            "differencing",
            1,
        ),
        (
            "analytics.product_line_summary (28 days minus the 7-day rows inside)",
            "minus analytics.weekly_demand",
            "differencing",
            1,
        ),
        (
            "analytics.product_line_summary (84 days: its rows added up)",
            "minus analytics.weekly_demand",
            "differencing",
            1,
        ),
        (
            "analytics.product_line_summary (84 days: a product line's rows added up)",
            "minus analytics.weekly_demand",
            "differencing",
            1,
        ),
        ("analytics sales tables", "a combination of their published rows", "differencing", 2),
    ]  # the combination: X's first week (2 buyers) and, with it, Z's one buyer in the line row
    assert "31" not in result.description()  # counts only, never a customer


def test_a_chain_through_four_tables_is_caught_by_the_exact_audit_alone(engine, policy_file):
    """Three more buyers of X on one day of the first week, shown by the daily table: every pair
    and every derived figure minus a table leaves at least k, and only the 28 days minus the 7
    days minus the two middle weeks minus that day is X's first two buyers."""
    policy = k3_with_catalogue(policy_file)
    planted_chain(engine, policy, daily_row=True)
    result = differencing_remainders(engine, policy)
    assert not result.passed and result.error is None
    assert [(f.table, f.column, f.kind, f.count) for f in result.findings] == [
        ("analytics sales tables", "a combination of their published rows", "differencing", 2)
    ]


def test_the_weekly_build_leaves_no_chain_on_that_shop(engine, policy_file):
    policy = k3_with_catalogue(policy_file)
    chain_shop(engine)
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    planning.build_product_line_summary(engine, policy, AS_OF)
    build = planning.build_weekly_demand(engine, policy, AS_OF)
    assert build.cells_merged >= 1
    assert differencing_remainders(engine, policy).passed


# Two skus of one line, each bought by different people week to week: every weekly row of the
# line's first three weeks, and each sku's 28 days, cover at least k = 3 customers; the last
# week holds one buyer of each, whom no table shows.
PAIR_BUYERS = {
    "Y3": ([1, 2], [6], [8], [1]),
    "Y5": ([4], [9, 10], [12, 13], [4]),
}


def pair_shop(engine) -> None:
    with engine.begin() as conn:
        catalogue(conn, tea=list(PAIR_BUYERS))
        order = 0
        for sku, weeks in PAIR_BUYERS.items():
            for week, buyers in zip(WEEKS, weeks, strict=True):
                for day, buyer in enumerate(buyers):
                    order += 1
                    buy(conn, order, buyer, week + timedelta(days=day), sku)


def test_two_cells_derivable_only_together_are_caught(engine, policy_file):
    """The line's 28-day sku rows minus its first three weeks in the weekly table (each shown at
    the line's level: no sku's week reaches k) is the last week of both skus: 2 buyers at k = 3.
    Neither sku's last week alone is derivable, so the exact audit of single atoms passed it
    (an adversary found such a pair on a shop of 3,000 orders)."""
    policy = k3_with_catalogue(policy_file)
    pair_shop(engine)
    assert true_summary(engine, policy, "units", "level = 'sku'") == [
        (28, "Y3", 5),
        (28, "Y5", 6),
        (84, "Y3", 5),
        (84, "Y5", 6),
    ]
    weekly_rows(engine, *((week, "product_line", "OTHER") for week in WEEKS[:3]))
    result = differencing_remainders(engine, policy)
    assert not result.passed and result.error is None
    # Found as a pair of atoms, and as the line's rows and the window's rows added up
    # (planning.SUMMARY_SUMS; tea is the shop's only line) minus the weeks inside them.
    summary = "analytics.product_line_summary"
    assert [(f.table, f.kind) for f in result.findings] == [
        (f"{summary} (28 days: its rows added up)", "differencing"),
        (f"{summary} (28 days: a product line's rows added up)", "differencing"),
        (f"{summary} (84 days: its rows added up)", "differencing"),
        (f"{summary} (84 days: a product line's rows added up)", "differencing"),
        ("analytics sales tables", "differencing"),
    ]


def test_the_planning_build_leaves_no_pair_derivable_on_that_shop(engine, policy_file):
    """Built together, the tables no longer give the last week: the sku rows minus the weeks
    shown at the line's level leave more than it, or the weeks are not all shown."""
    policy = k3_with_catalogue(policy_file)
    pair_shop(engine)
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    planning.build_planning_tables(engine, policy, AS_OF)
    sku_rows = rows(
        engine,
        "SELECT coalesce(sum(units), 0) FROM analytics.product_line_summary "
        "WHERE window_days = 28 AND level = 'sku'",
    )[0][0]
    weeks = rows(
        engine,
        "SELECT coalesce(sum(units), 0) FROM analytics.weekly_demand "
        "WHERE product_line = 'tea' AND week_start < :last".replace(":last", f"'{WEEKS[3]}'"),
    )[0][0]
    assert sku_rows - weeks != 2  # the last week's two buyers
    assert differencing_remainders(engine, policy).passed


def test_three_cells_derivable_only_together_are_caught(engine, policy_file):
    """k = 4. X's week shown as its SH and BJ rows and the line's row (which holds only X's ZJ
    lines: Y has a sku row of its own), minus X's days in the daily table (each an OTHER row of
    the three regions), is X's one withheld day: three buyers, one in each of those rows, so its
    lines are three atoms, and no atom or pair of them is derivable alone (an adversary found
    this shape on a shop of 3,000 orders)."""
    policy = load_policy(
        policy_file(
            'version: "test"\nanalytics: {min_customers_per_cell: 4}\n'
            "raw: {catalogue: {table: shop.products}}\n"
        )
    )
    week = WEEKS[3]
    with engine.begin() as conn:
        catalogue(conn, tea=["X", "Y"])
        order, customer = 0, 100
        for day in (0, 1, 3):  # four buyers a day across three regions: an OTHER row
            for region in ("SH", "SH", "BJ", "ZJ"):
                order, customer = order + 1, customer + 1
                buy(conn, order, customer, week + timedelta(days=day), "X", region)
        for n, region in enumerate(("SH", "BJ", "ZJ")):  # day 2: three buyers, withheld
            buy(conn, 50 + n, 11 + n, week + timedelta(days=2), "X", region)
        for day in range(4):  # Y: one buyer a day, withheld daily, a sku row weekly
            buy(conn, 60 + day, 21 + day, week + timedelta(days=day), "Y")
    true_summary(engine, policy, "units", "window_days = 28")
    week_window_rows(engine, "Y")  # as the weekly table's Y row adds up
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM analytics.weekly_demand"))
        for level, sku, region in (
            ("sku_region", "X", "SH"),
            ("sku_region", "X", "BJ"),
            ("product_line", "OTHER", "OTHER"),
            ("sku", "Y", "OTHER"),
        ):
            conn.execute(
                sa.text("""INSERT INTO analytics.weekly_demand
                    VALUES (:w, :level, 'tea', :sku, :region, 4, 4, 40, 4)"""),
                {"w": week, "level": level, "sku": sku, "region": region},
            )
    result = differencing_remainders(engine, policy)
    assert not result.passed and result.error is None
    assert [(f.table, f.kind) for f in result.findings] == [
        ("analytics sales tables", "differencing")
    ]


def cover_shop(engine) -> None:
    """k = 3, sku X, one week. Monday: SH 3 buyers (the daily table shows it), ZJ 2 and BJ 2
    (folded into Monday's OTHER, 4 buyers, shown). Tuesday: ZJ 1 buyer; Wednesday: GD 1 buyer
    (each day's OTHER under k: withheld). Over the week SH and ZJ reach 3 as regions and BJ with
    GD make 3 in the sku's OTHER row, yet the week minus Monday's two daily rows is Tuesday's and
    Wednesday's 2 buyers."""
    with engine.begin() as conn:
        catalogue(conn, tea=["X"])
        sales = [(1, "SH", 0), (2, "SH", 0), (3, "SH", 0), (4, "ZJ", 0), (5, "ZJ", 0)]
        sales += [(6, "BJ", 0), (7, "BJ", 0), (8, "ZJ", 1), (9, "GD", 2)]
        for order, (buyer, region, day) in enumerate(sales, start=1):
            buy(conn, order, buyer, WEEK + timedelta(days=day), "X", region)


def test_a_skus_week_whose_withheld_days_are_under_k_is_not_shown_whole(engine, policy_file):
    policy = k3_with_catalogue(policy_file)
    cover_shop(engine)
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    assert rows(
        engine, "SELECT region, customers FROM analytics.sales_volume_daily ORDER BY 1"
    ) == [("OTHER", 4), ("SH", 3)]
    planning.build_weekly_demand(engine, policy, AS_OF)
    shown = rows(engine, "SELECT level, sku, region FROM analytics.weekly_demand ORDER BY 1, 3")
    assert ("sku", "X", "OTHER") not in shown  # the row that would complete the week
    assert ("sku_region", "X", "SH") in shown and ("sku_region", "X", "ZJ") in shown
    assert differencing_remainders(engine, policy).passed


def test_the_guard_catches_a_weeks_rows_added_up_minus_the_days(engine, policy_file):
    """What the pair audit alone let through: ZJ's week straddles Monday's OTHER row, so no
    weekly row holds a daily row whole except SH; the sum of X's three weekly rows does."""
    policy = k3_with_catalogue(policy_file)
    cover_shop(engine)
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    with engine.begin() as conn:
        for region, buyers in (("SH", 3), ("ZJ", 3), ("OTHER", 3)):
            level = "sku" if region == "OTHER" else "sku_region"
            conn.execute(
                sa.text("""INSERT INTO analytics.weekly_demand
                    VALUES (:w, :level, 'tea', 'X', :region, :n, :n, 10 * :n, :n)"""),
                {"w": WEEK, "level": level, "region": region, "n": buyers},
            )
    result = differencing_remainders(engine, policy)
    assert not result.passed
    assert (
        "analytics.weekly_demand (a sku's week: its rows added up)",
        "minus analytics.sales_volume_daily",
    ) in [(f.table, f.column) for f in result.findings]


def test_no_cell_under_k_can_be_derived_from_the_synthetic_shops_tables(engine, policy):
    """Built with the pair audit alone, this shop's tables let 3 cells under k be derived through
    three or more tables, and 2 window differences minus weeks leave remainders under k (10 and
    50 cells on the bench's shops); both builds now merge until none is left."""
    synthetic.seed_shop(engine, orders=20000, seed=7, as_of=AS_OF)
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    planning.build_product_line_summary(engine, policy, AS_OF)
    weekly = planning.build_weekly_demand(engine, policy, AS_OF)
    assert weekly.units_published >= 0.95 * weekly.units_total
    day = weekly.as_of_date
    with engine.begin() as conn:
        first, after = planning.lines_span(day)
        rollup.load_lines(conn, Source(policy), policy.raw.catalogue, first, after)
        rollup.assign_daily(conn)
        planning.assign_published_weekly(conn, day)
        parts = [rollup.DAILY, planning.WEEKLY, *planning.assign_published_summary(conn, day)]
        assert derivable.small_derivable(conn, parts, policy.analytics.min_customers_per_cell) == []
        conn.rollback()
    assert differencing_remainders(engine, policy).passed


def test_a_sum_that_leaves_a_remainder_merges_its_own_top_row_first(engine, policy_file):
    """X's week shown whole: SH 3 buyers, ZJ 3, and an OTHER row of BJ and GD (4 buyers, the
    largest row). Minus the days (Monday's SH and OTHER rows) it leaves Tuesday's ZJ buyer and
    Wednesday's GD buyer: 2. The sku's OTHER row goes up, not its smallest region: with it gone
    the week is no longer whole and the regions stay."""
    policy = k3_with_catalogue(policy_file)
    with engine.begin() as conn:
        catalogue(conn, tea=["X"])
        sales = [(1, "SH", 0), (2, "SH", 0), (3, "SH", 0), (4, "ZJ", 0), (5, "ZJ", 0)]
        sales += [(6, "BJ", 0), (7, "BJ", 0), (8, "GD", 0), (9, "ZJ", 1), (10, "GD", 2)]
        for order, (buyer, region, day) in enumerate(sales, start=1):
            buy(conn, order, buyer, WEEK + timedelta(days=day), "X", region)
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    day = planning.window_end(AS_OF.date())
    with engine.begin() as conn:
        first, after = planning.lines_span(day)
        rollup.load_lines(conn, Source(policy), policy.raw.catalogue, first, after)
        rollup.assign_daily(conn)
        part = planning.weekly_partition(day)
        rollup.assign(conn, part, 3, set())
        leaking = weekly_sums.leaking_sums(conn, planning.WEEKLY, part.span, 3)
        merged = planning._rows_to_merge_for_sums(conn, leaking)
        conn.rollback()
    assert merged == {f"{WEEK}|tea|X|OTHER"}


def generic_sums_audit(conn, k: int) -> dict[int, set[str]]:
    """The sums found by the generic pair audit over the sums as partitions (the guard's way)."""
    sums = planning.assign_weekly_sums(conn)
    found: dict[int, set[str]] = {level: set() for level in weekly_sums.SUM_KEYS}
    for r in rollup.audit(conn, [*sums, rollup.DAILY], k, involving=set(sums)):
        for part, key in ((r.outer, r.outer_key), (r.inner, r.smallest_inner_key)):
            if part in planning.WEEKLY_SUMS and key is not None:
                found[planning.WEEKLY_SUMS[part][1]].add(key)
    return found


def test_the_builds_sums_audit_finds_what_the_generic_audit_finds(engine, policy):
    """The weekly build audits the sums in one statement (lifecycle/sales/weekly_sums.py); the
    guard with the generic pair audit over the sums as partitions. On the synthetic shop's weeks
    assigned with no merge, with the thin weeks' OTHER rows forbidden, and with every fourth
    sku's region rows forbidden, at the policy's k and at larger k (where more sums leak), both find
    the same sums at every level, and the same when only some weeks are read."""
    synthetic.seed_shop(engine, orders=20000, seed=7, as_of=AS_OF)
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    k = policy.analytics.min_customers_per_cell
    day = planning.window_end(daily.last_complete_day(engine, policy, AS_OF))
    part = planning.weekly_partition(day)
    with engine.begin() as conn:
        first, after = planning.lines_span(day)
        rollup.load_lines(conn, Source(policy), policy.raw.catalogue, first, after)
        rollup.assign_daily(conn)
        thin = planning._weeks_thin_beside_daily(conn, part, k)
        regions = {
            key
            for (key,) in conn.execute(
                sa.text(f"""SELECT DISTINCT concat_ws('|', l.week_start, l.product_line, l.sku,
                    l.region) FROM pg_temp.sales_lines l WHERE {part.span}
                    AND hashtext(l.sku) % 4 = 0""")
            )
        }
        found = {level: 0 for level in weekly_sums.SUM_KEYS}
        for forbidden in (set(), thin, thin | regions):
            for audit_k in (k, 12, 40):  # larger k: more opened sums leave a remainder under it
                rollup.assign(conn, part, audit_k, forbidden)
                expected = generic_sums_audit(conn, audit_k)
                fast = weekly_sums.leaking_sums(conn, planning.WEEKLY, part.span, audit_k)
                assert fast == expected
                some = {key.split("|", 1)[0] for keys in expected.values() for key in keys}
                some = set(sorted(some)[::2])
                in_some = {
                    level: {key for key in keys if key.split("|", 1)[0] in some}
                    for level, keys in expected.items()
                }
                scope = weekly_sums.SumScope(weeks=frozenset(some))
                fast = weekly_sums.leaking_sums(conn, planning.WEEKLY, part.span, audit_k, scope)
                assert fast == in_some
                for level, keys in expected.items():
                    found[level] += len(keys)
        conn.rollback()
    # A whole week's sum minus its days still holds most of the week's buyers: never under k.
    assert found[1] > 0 and found[2] > 0, f"sku and line sums were found leaking: {found}"


def test_the_exact_audit_reads_groups_of_product_lines_and_loses_nothing(engine, policy):
    """The exact audit streams its atoms one group of product lines at a time and can read only
    some groups. On the synthetic shop's weeks assigned with no merge beside the published
    summary (where cells are derivable), no published row crosses a group, there is more than one
    group, and the audits of the groups one by one find exactly what the whole audit finds."""
    synthetic.seed_shop(engine, orders=20000, seed=7, as_of=AS_OF)
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    planning.build_product_line_summary(engine, policy, AS_OF)
    k = policy.analytics.min_customers_per_cell
    day = planning.window_end(daily.last_complete_day(engine, policy, AS_OF))
    with engine.begin() as conn:
        first, after = planning.lines_span(day)
        rollup.load_lines(conn, Source(policy), policy.raw.catalogue, first, after)
        rollup.assign_daily(conn)
        rollup.assign(conn, planning.weekly_partition(day), k, set())
        parts = [rollup.DAILY, planning.WEEKLY, *planning.assign_published_summary(conn, day)]
        groups = derivable.product_line_groups(conn, parts)
        crossing = conn.execute(
            sa.text("""
                SELECT count(*) FROM (
                    SELECT a.part, a.row_key FROM pg_temp.sales_assign a
                    JOIN pg_temp.sales_lines l USING (line_id)
                    JOIN unnest(CAST(:lines AS text[]), CAST(:groups AS int[])) g(line, g)
                      ON g.line = l.product_line
                    WHERE a.part = ANY(CAST(:parts AS text[]))
                    GROUP BY a.part, a.row_key HAVING min(g.g) <> max(g.g)) x"""),
            {"lines": list(groups), "groups": list(groups.values()), "parts": parts},
        ).scalar_one()
        # Groups are found from the rows above level 1 only: no row below holds two lines.
        named_crossing = conn.execute(
            sa.text("""
                SELECT count(*) FROM (
                    SELECT a.part, a.row_key FROM pg_temp.sales_assign a
                    JOIN pg_temp.sales_lines l USING (line_id)
                    WHERE a.part = ANY(CAST(:parts AS text[])) AND a.level < 2
                    GROUP BY a.part, a.row_key HAVING min(l.product_line) <> max(l.product_line)
                ) x"""),
            {"parts": parts},
        ).scalar_one()
        whole = derivable.audit_groups(conn, parts, k)
        # The atoms' cursor is planned for every row it returns, over analyzed row numbers.
        assert conn.execute(sa.text("SHOW cursor_tuple_fraction")).scalar() == "1"
        numbered = conn.execute(
            sa.text("""SELECT c.reltuples, (SELECT count(*) FROM pg_temp.sales_row_ids)
                       FROM pg_class c WHERE c.oid = CAST('pg_temp.sales_row_ids' AS regclass)""")
        ).one()
        assert numbered[0] == numbered[1] > 0
        by_group = []
        for g in sorted(set(groups.values())):
            lines = {line for line, n in groups.items() if n == g}
            by_group += derivable.audit_groups(conn, parts, k, lines).found
        nothing = derivable.audit_groups(conn, parts, k, {"no such product line"})
        conn.rollback()
    assert crossing == 0 and named_crossing == 0
    assert len(set(groups.values())) > 1
    assert whole.found, "cells under k are derivable from the unmerged weeks"
    assert Counter(by_group) == Counter(whole.found)
    assert nothing.found == [] and nothing.atoms == 0


def test_a_merge_reassigns_exactly_what_assigning_everything_again_gives(engine, policy):
    """rollup.reassign assigns again only the merged rows' product lines in their periods and
    their periods' top-row and withheld lines. On the synthetic shop, three rounds of merging
    rows at every level (a top row once merged lines reach it) leave the weekly table and the
    84-day window exactly as a fresh assignment of every line with the same cells forbidden."""
    synthetic.seed_shop(engine, orders=20000, seed=7, as_of=AS_OF)
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    k = policy.analytics.min_customers_per_cell
    day = planning.window_end(daily.last_complete_day(engine, policy, AS_OF))
    assigned = sa.text("SELECT line_id, row_key FROM pg_temp.sales_assign WHERE part = :p")
    published = sa.text("SELECT DISTINCT row_key, level FROM pg_temp.sales_assign WHERE part = :p")
    with engine.begin() as conn:
        first, after = planning.lines_span(day)
        rollup.load_lines(conn, Source(policy), policy.raw.catalogue, first, after)
        for part in (planning.weekly_partition(day), planning.window_partition(day, 84)):
            forbidden: set[str] = set()
            rollup.assign(conn, part, k, forbidden)
            levels_merged = set()
            for _ in range(3):
                rows = sorted(conn.execute(published, {"p": part.name}).all())
                top = len(part.levels) - 1
                merged = {key for n, (key, level) in enumerate(rows) if n % 4 == 0 or level == top}
                levels_merged |= {level for key, level in rows if key in merged}
                forbidden |= merged
                rollup.reassign(conn, part, k, forbidden, merged)
                narrow = dict(conn.execute(assigned, {"p": part.name}).all())
                rollup.assign(conn, part, k, forbidden)
                assert narrow == dict(conn.execute(assigned, {"p": part.name}).all())
            assert levels_merged == set(range(len(part.levels)))
        conn.rollback()


def test_after_merges_the_sums_audit_reads_only_what_moved_and_finds_what_a_whole_audit_finds(
    engine, policy
):
    """The weekly build audits again, after a round's merges, only the sums a moved line can
    change (weekly_sums.scope_after_moves): the sku and line sums of the (week, product line)
    pairs whose lines moved, every sum of a week where a line became withheld or published, and
    the sums found in the round. Over three rounds of merges at every level on the synthetic
    shop, at the policy's k and a larger one, the scoped audit finds exactly what auditing every
    sum finds, while reading fewer of them."""
    synthetic.seed_shop(engine, orders=20000, seed=7, as_of=AS_OF)
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    day = planning.window_end(daily.last_complete_day(engine, policy, AS_OF))
    part = planning.weekly_partition(day)
    published = sa.text("SELECT DISTINCT row_key, level FROM pg_temp.sales_assign WHERE part = :p")
    narrower = withheld_weeks = findings = 0
    with engine.begin() as conn:
        first, after = planning.lines_span(day)
        rollup.load_lines(conn, Source(policy), policy.raw.catalogue, first, after)
        rollup.assign_daily(conn)
        every_pair = conn.execute(
            sa.text(
                f"SELECT count(DISTINCT (week_start, product_line)) FROM pg_temp.sales_lines l "
                f"WHERE {part.span}"
            )
        ).scalar_one()
        for audit_k in (policy.analytics.min_customers_per_cell, 12):
            forbidden: set[str] = set()
            rollup.assign(conn, part, audit_k, forbidden)
            found = weekly_sums.leaking_sums(conn, planning.WEEKLY, part.span, audit_k)
            for round_ in range(3):  # rows below the top twice, then top rows: lines withheld
                rows = sorted(conn.execute(published, {"p": part.name}).all())
                top = round_ == 2
                merged = {
                    key
                    for n, (key, level) in enumerate(rows)
                    if (level == 3) == top and n % (2 if top else 5) == round_ % 2
                }
                forbidden |= merged
                rollup.reassign(conn, part, audit_k, forbidden, merged)
                scope = weekly_sums.scope_after_moves(conn, planning.WEEKLY, found)
                conn.execute(sa.text("TRUNCATE pg_temp.sales_moved"))
                scoped = weekly_sums.leaking_sums(conn, planning.WEEKLY, part.span, audit_k, scope)
                found = weekly_sums.leaking_sums(conn, planning.WEEKLY, part.span, audit_k)
                assert scoped == found
                narrower += len(scope.pairs) < every_pair
                withheld_weeks += len(scope.weeks) if top else 0
                findings += sum(len(keys) for keys in found.values())
        conn.rollback()
    assert narrower > 0 and withheld_weeks > 0 and findings > 0, (
        narrower,
        withheld_weeks,
        findings,
    )


def test_a_merge_that_opens_a_sum_is_in_the_next_rounds_scope(engine, policy_file):
    """k = 3, sku X in one week, every day published by the daily table: Monday SH (buyers 1-3),
    Tuesday's OTHER row (SH buyer 4, GD 5 and 7, BJ 6). The weekly table shows SH (1-4) and X's
    OTHER row (5-7), so X's week, summed, is covered by the days: nothing leaks. Merging X's OTHER
    row up to its line leaves Tuesday's row half outside the sum: buyer 4 alone, a sum found only
    by reading the (week, line) whose lines moved; merging the line's row up to the week's does the
    same to the line's sum. Merging the week's row withholds 5-7, and the week's sum leaves buyer
    4: no line moved between published rows, so it is found only by reading the week whole."""
    policy = k3_with_catalogue(policy_file)
    with engine.begin() as conn:
        catalogue(conn, tea=["X"])
        sales = [(1, "SH", 0), (2, "SH", 0), (3, "SH", 0), (4, "SH", 1)]
        sales += [(5, "GD", 1), (6, "BJ", 1), (7, "GD", 1)]
        for order, (buyer, region, day) in enumerate(sales, start=1):
            buy(conn, order, buyer, WEEK + timedelta(days=day), "X", region)
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    day = planning.window_end(AS_OF.date())
    part = planning.weekly_partition(day)
    steps = (
        ({f"{WEEK}|tea|X|OTHER"}, {1: {f"{WEEK}|tea|X"}, 2: set(), 3: set()}),
        ({f"{WEEK}|tea|OTHER|OTHER"}, {1: {f"{WEEK}|tea|X"}, 2: {f"{WEEK}|tea"}, 3: set()}),
        ({f"{WEEK}|OTHER|OTHER|OTHER"}, {1: {f"{WEEK}|tea|X"}, 2: {f"{WEEK}|tea"}, 3: {str(WEEK)}}),
    )
    with engine.begin() as conn:
        first, after = planning.lines_span(day)
        rollup.load_lines(conn, Source(policy), policy.raw.catalogue, first, after)
        rollup.assign_daily(conn)
        forbidden: set[str] = set()
        rollup.assign(conn, part, 3, forbidden)
        found = weekly_sums.leaking_sums(conn, planning.WEEKLY, part.span, 3)
        assert found == {1: set(), 2: set(), 3: set()}
        scopes = []
        for merged, expected in steps:
            forbidden |= merged
            rollup.reassign(conn, part, 3, forbidden, merged)
            scope = weekly_sums.scope_after_moves(conn, planning.WEEKLY, found)
            conn.execute(sa.text("TRUNCATE pg_temp.sales_moved"))
            found = weekly_sums.leaking_sums(conn, planning.WEEKLY, part.span, 3, scope)
            assert found == weekly_sums.leaking_sums(conn, planning.WEEKLY, part.span, 3)
            assert found == expected
            scopes.append(scope)
        conn.rollback()
    assert [s.weeks for s in scopes] == [set(), set(), {str(WEEK)}]


def test_a_product_lines_rows_added_up_minus_its_weeks_are_audited(engine, policy, monkeypatch):
    """A product line's 84-day rows in the summary added up (its skus' rows and its OTHER row)
    minus its weekly rows inside them left 4 buyers on this shop (k = 5): a union of more atoms
    than the exact audit searches, and no single summary row holds those weekly rows whole. The
    guard audits the summary's sums (planning.SUMMARY_SUMS) and fails tables built blind to them;
    the weekly build merges against them, so the tables it publishes pass."""
    synthetic.seed_shop(engine, orders=20000, seed=7, as_of=AS_OF)
    with monkeypatch.context() as blind:  # the builds as before: no sum of the summary's rows
        blind.setattr(planning, "assign_summary_sums", lambda conn: [])
        nightly_planning(engine, policy, AS_OF)
    result = differencing_remainders(engine, policy)
    assert not result.passed
    assert (
        "analytics.product_line_summary (84 days: a product line's rows added up)",
        "minus analytics.weekly_demand",
    ) in [(f.table, f.column) for f in result.findings]
    assert "SKU-" not in str(result)  # counts and table names, no sku
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM lifecycle.planning_builds"))  # rebuild, same night
    nightly_planning(engine, policy, AS_OF)
    assert differencing_remainders(engine, policy).passed


def line_sum_shop(engine) -> None:
    """k = 3. Line tea, last week: X to buyers 1 and 2, Z to 3 and 4, W to 6, each under k. Buyer
    5 bought X in each of the three weeks before and Y in one: over 28 days X has its row (1, 2,
    5) and tea's OTHER row holds Y, Z and W (5, 3, 4, 6). Line coffee: three buyers of C every
    week."""
    with engine.begin() as conn:
        catalogue(conn, tea=["X", "Y", "Z", "W"], coffee=["C"])
        order = 0
        for sku, buyers in (("X", (1, 2)), ("Z", (3, 4)), ("W", (6,))):
            for buyer in buyers:
                order += 1
                buy(conn, order, buyer, WEEKS[3] + timedelta(days=buyer % 7), sku)
        for n, week in enumerate(WEEKS[:3]):
            order += 1
            buy(conn, order, 5, week + timedelta(days=n + 1), "X")
        order += 1
        buy(conn, order, 5, WEEKS[1] + timedelta(days=5), "Y")
        for week in WEEKS:
            for buyer in (71, 72, 73):
                order += 1
                buy(conn, order, buyer, week + timedelta(days=buyer % 7), "C")


def test_a_summary_sum_that_leaves_a_remainder_merges_its_own_top_row_first(engine, policy_file):
    """For a sum of a product line's rows in a window that leaves a remainder, as the outer row
    or inside one, the summary build merges the line's OTHER row, so the sum is no longer whole;
    where that row is not published, its smallest sku row."""
    policy = k3_with_catalogue(policy_file)
    line_sum_shop(engine)
    day = planning.window_end(AS_OF.date())
    name = planning.window_part(28) + "_line"
    with engine.begin() as conn:
        first, after = planning.lines_span(day)
        rollup.load_lines(conn, Source(policy), policy.raw.catalogue, first, after)
        window = planning.window_partition(day, 28)
        for forbidden, expected in ((set(), "28|tea|OTHER|"), ({"28|tea|OTHER|"}, "28|tea|X|")):
            rollup.assign(conn, window, 3, forbidden)
            assert name in planning.assign_summary_sums(conn)
            outer = rollup.Remainder(name, "28|tea", "product_line_summary_7d", "", 1)
            inner = rollup.Remainder("sales_volume_daily", "", name, "", 1, (("28|tea", 2),))
            for found in ([outer], [inner]):
                assert planning._rows_to_merge_for_derived(conn, found, 3) == {expected}
        conn.rollback()
