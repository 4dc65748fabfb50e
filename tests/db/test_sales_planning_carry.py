"""A rebuild of the planning tables in the same week starts from that week's merges.

A late order or correction in the span rebuilds both planning tables. The week's last build already
found the cells to merge against differencing, round by round; the rebuild starts with them merged
and goes on auditing until nothing is left, so it takes fewer rounds and still publishes nothing
derivable. Other rules start from none; a new week starts the weekly table from last week's
merges in the weeks both show, and the summary from last week's in the blocks both show (the 28-
and 84-day ones, until a new block ends), so a later copy of a week or block is never finer than
its first: what the audits against first copies rely on (lifecycle/sales/publications.py)."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from lifecycle import synthetic
from lifecycle.policy import load_policy
from lifecycle.sales import planning
from lifecycle.sales.differencing import differencing_remainders
from tests.conftest import AS_OF
from tests.db.test_sales_planning import nightly_planning, rows

# Twenty paid orders of the span's middle weeks cancelled: a late correction the capture records.
CANCEL_IN_SPAN = """
UPDATE shop.orders SET status = 'cancelled', cancelled_at = placed_at + interval '1 day'
WHERE order_id IN (
    SELECT order_id FROM shop.orders
    WHERE status IN ('paid', 'shipped', 'delivered')
      AND placed_at >= CAST(:day AS date) - 45 AND placed_at < CAST(:day AS date) - 38
    ORDER BY order_id LIMIT 20)
"""


def merged_cells(engine) -> dict[str, list[str]]:
    found = rows(engine, "SELECT table_name, merged_cells FROM lifecycle.planning_builds")
    return {table: cells for table, cells in found}


def test_a_late_correction_in_the_week_starts_from_that_weeks_merges(engine, policy):
    synthetic.seed_shop(engine, orders=20000, seed=7, as_of=AS_OF)
    cold = nightly_planning(engine, policy)
    assert all(b.cells_merged > 0 and b.cells_carried == 0 for b in cold)
    kept = merged_cells(engine)
    assert {len(kept[b.table]) for b in cold} == {b.cells_merged for b in cold}
    with engine.begin() as conn:
        assert conn.execute(sa.text(CANCEL_IN_SPAN), {"day": cold[0].as_of_date}).rowcount == 20
    late = nightly_planning(engine, policy)
    assert [b.mode for b in late] == ["rebuilt", "rebuilt"]
    summary, weekly = late
    assert summary.cells_carried == cold[0].cells_merged
    # The weekly table's sku weeks held back beside the daily table are decided afresh each build.
    assert 0 < weekly.cells_carried <= cold[1].cells_merged
    assert weekly.rounds < cold[1].rounds and summary.rounds <= cold[0].rounds
    assert weekly.units_published >= 0.95 * weekly.units_total
    assert differencing_remainders(engine, policy).passed
    # What is kept is catalogue codes and periods: no customer, order or personal value.
    codes = {c for (c,) in rows(engine, "SELECT sku FROM shop.order_items")}
    codes |= {c for (c,) in rows(engine, "SELECT product_line FROM shop.products")}
    codes |= {c for (c,) in rows(engine, "SELECT DISTINCT ship_region FROM shop.orders")}
    for cells in merged_cells(engine).values():
        for cell in cells:
            period, *labels = cell.split("|")
            assert period.isdigit() or period.startswith("2026-")
            assert set(labels) <= codes | {"OTHER", ""}, cell


def test_other_rules_start_from_no_merges_and_a_new_week_from_last_weeks(
    engine, policy, policy_file
):
    synthetic.seed_shop(engine, orders=20000, seed=7, as_of=AS_OF + timedelta(days=7))
    cold = nightly_planning(engine, policy)
    assert all(b.cells_merged > 0 for b in cold)
    stricter = load_policy(policy_file('version: "test"\nanalytics: {min_customers_per_cell: 6}\n'))
    assert all(b.cells_carried == 0 for b in nightly_planning(engine, stricter))
    back = nightly_planning(engine, policy)  # k = 5 again: the k = 6 merges are not carried
    assert all(b.mode == "rebuilt" and b.cells_carried == 0 for b in back)
    before = merged_cells(engine)
    next_week = nightly_planning(engine, policy, AS_OF + timedelta(days=7))
    assert [b.as_of_date - c.as_of_date for b, c in zip(next_week, cold, strict=True)] == [
        timedelta(days=7)
    ] * 2
    summary, weekly = next_week
    assert summary.mode == weekly.mode == "rebuilt"
    # Last week's merges in the twelve weeks both show stay merged: each is a row finer than its
    # week's first copy showed its lines, so the weekly build holds it from the start
    # (planning._rows_finer_than_first_copies) rather than carrying it as a merge.
    first = planning.weekly_span(weekly.as_of_date)[0].isoformat()
    shared = {key for key in before["analytics.weekly_demand"] if key >= first}
    shown = {
        "|".join(str(label) for label in row)
        for row in rows(
            engine, "SELECT week_start, product_line, sku, region FROM analytics.weekly_demand"
        )
    }
    assert shared and not shared & shown
    assert weekly.cells_carried <= len(shared)
    # The same in the summary's 28- and 84-day blocks, still the ones shown last week (its 7-day
    # window is a new week): last week's merged rows stay unshown, held as rows finer than the
    # blocks' first copies.
    blocks_shared = {
        tuple(key.split("|")[:3])
        for key in before["analytics.product_line_summary"]
        if key.split("|")[0] in ("28", "84")
    }
    blocks_shown = {
        (str(days), line, sku)
        for days, line, sku in rows(
            engine, "SELECT window_days, product_line, sku FROM analytics.product_line_summary"
        )
    }
    assert blocks_shared and not blocks_shared & blocks_shown
    assert summary.cells_carried <= len(blocks_shared)
    assert differencing_remainders(engine, policy).passed
