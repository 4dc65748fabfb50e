"""A week or a block shown again is shown as its first copy showed it, or coarser, line by line:
neither planning build places a line in a row below the level of its row in the week's or the
block's first copy (planning._rows_finer_than_first_copies)."""

from __future__ import annotations

from datetime import timedelta

from lifecycle.sales import daily, planning
from lifecycle.sales.differencing import differencing_remainders
from tests.conftest import AS_OF
from tests.db.test_sales_planning import WEEK, buys, catalogue, k3_with_catalogue, rows

BLOCK_DAY = -14  # Monday 2026-05-11: in the 28-day block both AS_OF and the Sunday after show
BLOCK_ROWS = """
SELECT level, product_line, sku, units FROM analytics.product_line_summary
WHERE window_days = 28 ORDER BY level, sku
"""
WEEK_ROWS = """
SELECT level, product_line, sku, region, units FROM analytics.weekly_demand
WHERE week_start = :week ORDER BY level, sku
""".replace(":week", f"DATE '{WEEK.isoformat()}'")


def test_a_late_sale_does_not_show_a_week_finer_than_its_first_copy(engine, policy_file):
    """k = 3. A's two buyers and B's one make tea's OTHER row in the week's first copy. A third
    buyer of A, placed in that week, arrives after it: A's SH cell now reaches k, and as its own
    row it would show A's first two buyers finer than the first copy did (the copies a reader
    kept are audited on the premise that the first copy is the finest). So A stays in tea's row,
    with its late buyer. Its finer rows are held from the start: no audit has to find them and
    merge them one by one (the build before held them to the first copy that way, in its rounds:
    on a shop where other rows moved around them, the audits closed the gap by withholding the
    week's all row, 79.8% of an 8,000-order shop's week shown for eleven Sundays)."""
    policy = k3_with_catalogue(policy_file)
    with engine.begin() as conn:
        catalogue(conn, tea=["A", "B"])
        buys(conn, 1, 10, 0, "A", "SH")
        buys(conn, 2, 11, 1, "A", "SH")
        buys(conn, 3, 12, 2, "B", "SH")
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    planning.build_planning_tables(engine, policy, AS_OF)
    assert rows(engine, WEEK_ROWS) == [("product_line", "tea", "OTHER", "OTHER", 3)]
    with engine.begin() as conn:
        buys(conn, 4, 13, 3, "A", "SH")  # late: placed in the week, recorded a week on
    next_week = AS_OF + timedelta(weeks=1)
    daily.refresh(engine, policy, run_id="night", as_of=next_week)
    _, weekly = planning.build_planning_tables(engine, policy, next_week)
    assert rows(engine, WEEK_ROWS) == [("product_line", "tea", "OTHER", "OTHER", 4)]
    assert weekly.cells_merged == 0
    assert differencing_remainders(engine, policy).passed


def test_a_late_sale_does_not_show_a_block_finer_than_its_first_copy(engine, policy_file):
    """The summary's 28-day block is shown four Sundays running, so the same holds for it. k = 3.
    A's two buyers and B's one make tea's OTHER row in the block's first copy; A's third buyer,
    placed in the block, arrives a week on, while the same block is shown. A's own row would show
    A's first two buyers finer than the first copy did (tea's first-copy row minus it is B's one
    buyer): A stays in tea's row from the start, not merged there by an audit."""
    policy = k3_with_catalogue(policy_file)
    with engine.begin() as conn:
        catalogue(conn, tea=["A", "B"])
        buys(conn, 1, 10, BLOCK_DAY, "A", "SH")
        buys(conn, 2, 11, BLOCK_DAY + 1, "A", "SH")
        buys(conn, 3, 12, BLOCK_DAY + 2, "B", "SH")
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    planning.build_planning_tables(engine, policy, AS_OF)
    assert rows(engine, BLOCK_ROWS) == [("product_line", "tea", "OTHER", 3)]
    with engine.begin() as conn:
        buys(conn, 4, 13, BLOCK_DAY + 3, "A", "SH")  # late: placed in the block, recorded on
    next_week = AS_OF + timedelta(weeks=1)
    daily.refresh(engine, policy, run_id="night", as_of=next_week)
    summary, _ = planning.build_planning_tables(engine, policy, next_week)
    assert rows(engine, BLOCK_ROWS) == [("product_line", "tea", "OTHER", 4)]
    assert summary.cells_merged == 0
    assert differencing_remainders(engine, policy).passed
