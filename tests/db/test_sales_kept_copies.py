"""A reader who keeps every Sunday's copy of the planning tables learns no sku's week of fewer than
k buyers (lifecycle/sales/blocks.py, docs/sales.md "Every copy a reader keeps").

The reader's knowledge of one sku is a system of linear equations over its weeks: each copy's
rows of the sku in the summary (a sum of the weeks its window covers) and each week the weekly
table shows whole (the sku's regions' rows and its OTHER row). A week is known when its unit
vector lies in the span of those equations. With windows that slid by a week, 18 weekly copies of
the 20,000-order synthetic shop gave 676 such weeks of one to four buyers (k = 5).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

import numpy as np
import sqlalchemy as sa

from lifecycle import synthetic
from lifecycle.sales import daily, planning, rollup
from lifecycle.sales.source import Source, counted_customers
from tests.conftest import AS_OF

SUNDAYS = 14  # more than a long window's twelve weeks, so a block is seen whole and again

Equation = tuple[frozenset[date], int]  # the Mondays a published figure adds up, and its units

_SUMMARY_SKU_ROWS = sa.text("""
    SELECT sku, window_start, window_days FROM analytics.product_line_summary WHERE level = 'sku'
""")
# A sku's week is shown whole where it has its OTHER row (its regions' rows beside it).
_WEEKLY_WHOLE_SKU_WEEKS = sa.text("""
    SELECT sku, week_start FROM analytics.weekly_demand WHERE level IN ('sku', 'sku_region')
    GROUP BY week_start, sku HAVING bool_or(level = 'sku')
""")


def published_equations(conn) -> dict[str, list[frozenset[date]]]:
    """Per sku, the sets of weeks whose units tonight's planning tables publish as one figure."""
    found: dict[str, list[frozenset[date]]] = defaultdict(list)
    for sku, start, days in conn.execute(_SUMMARY_SKU_ROWS):
        found[sku].append(frozenset(start + timedelta(weeks=n) for n in range(days // 7)))
    for sku, week in conn.execute(_WEEKLY_WHOLE_SKU_WEEKS):
        found[sku].append(frozenset([week]))
    return found


def known_weeks(equations: list[frozenset[date]]) -> set[date]:
    """The weeks whose units these sums determine (each week's unit vector in their span)."""
    weeks = sorted(set().union(*equations))
    column = {week: n for n, week in enumerate(weeks)}
    sums = np.zeros((len(equations), len(weeks)))
    for row, covered in enumerate(equations):
        for week in covered:
            sums[row, column[week]] = 1
    rank = np.linalg.matrix_rank(sums)
    known = set()
    for week in weeks:
        alone = np.zeros(len(weeks))
        alone[column[week]] = 1
        if np.linalg.matrix_rank(np.vstack([sums, alone])) == rank:
            known.add(week)
    return known


def buyers_per_sku_week(engine, policy, first: date, after: date) -> dict[tuple[str, date], int]:
    """Customers per sku and week, counted as the builds count them."""
    with engine.connect() as conn, conn.begin():
        rollup.load_lines(conn, Source(policy), policy.raw.catalogue, first, after)
        rows = conn.execute(
            sa.text(f"""SELECT sku, week_start, {counted_customers("customer_id", "units")}
                        FROM pg_temp.sales_lines GROUP BY sku, week_start""")
        ).all()
        conn.rollback()
    return {(sku, week): buyers for sku, week, buyers in rows}


def test_known_weeks_are_those_the_sums_determine():
    w = [date(2026, 5, 4) + timedelta(weeks=n) for n in range(6)]
    # 4-week sums sliding a week, a 6-week sum and one week: their differences give w4 - w0 and
    # w5 - w1, the 6 weeks minus the first four w4 + w5; only w2 and w3 stay a sum
    sliding = [frozenset(w[0:4]), frozenset(w[1:5]), frozenset(w[2:6]), frozenset(w), {w[0]}]
    assert known_weeks([frozenset(s) for s in sliding]) == {w[0], w[1], w[4], w[5]}
    # fixed blocks: a block and a week inside it give that week, and the rest only as a sum
    fixed = [frozenset(w[0:4]), frozenset([w[1]]), frozenset(w[4:6])]
    assert known_weeks(fixed) == {w[1]}


def test_a_reader_with_every_weeks_copy_learns_no_sku_week_under_k(engine, policy):
    k = policy.analytics.min_customers_per_cell
    last = AS_OF + timedelta(weeks=SUNDAYS - 1)
    synthetic.seed_shop(engine, orders=8000, seed=2, as_of=last)
    kept: dict[str, list[frozenset[date]]] = defaultdict(list)
    for n in range(SUNDAYS):
        night = AS_OF + timedelta(weeks=n)
        daily.refresh(engine, policy, run_id=f"copy-{n}", as_of=night)
        planning.build_planning_tables(engine, policy, night)
        with engine.connect() as conn:
            for sku, equations in published_equations(conn).items():
                kept[sku] += equations
    first = min(min(week for sums in kept.values() for e in sums for week in e), AS_OF.date())
    buyers = buyers_per_sku_week(engine, policy, first, last.date())
    known = {(sku, week) for sku, sums in kept.items() for week in known_weeks(sums)}
    under_k = sorted((sku, week, buyers.get((sku, week), 0)) for sku, week in known)
    under_k = [(sku, week, b) for sku, week, b in under_k if 0 < b < k]
    assert under_k == []
    # not vacuous: the copies determine many weeks, some of them only just at k
    assert len(known) > 100
    assert any(k <= buyers.get(cell, 0) < 2 * k for cell in known)
