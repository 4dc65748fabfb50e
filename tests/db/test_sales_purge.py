"""The promise that ties retention and analytics together: purging personal fields changes no
published figure, because the figures read only ids, status, placed_at, ship_region and lines."""

from __future__ import annotations

import sqlalchemy as sa

from lifecycle import synthetic
from lifecycle.policy import load_policy
from lifecycle.retention import erasure, purge
from lifecycle.sales import daily
from tests.conftest import AS_OF
from tests.db.test_erasure import settle


def snapshot(engine) -> tuple[list, list]:
    """Every published figure and every day's protection cost, in a comparable order."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT * FROM analytics.sales_volume_daily ORDER BY sales_date, sku, region")
        ).all()
        days = conn.execute(
            sa.text("""
            SELECT sales_date, source_lines, units_total, units_published, units_folded, units_withheld,
                   rows_published, cells_folded, rows_withheld
            FROM lifecycle.sales_days ORDER BY sales_date""")
        ).all()
    return rows, days


def test_purge_and_physical_erasure_change_no_published_figure(engine, policy_file):
    policy = load_policy(policy_file('version: "test"\nanalytics: {min_customers_per_cell: 2}\n'))
    synthetic.seed_shop(engine, orders=4000, seed=11, as_of=AS_OF)
    first = daily.refresh(engine, policy, run_id="night-1", as_of=AS_OF)
    before = snapshot(engine)
    # Orders placed today (recorded if capture was installed before the seed) wait for the day to end.
    today = daily.pending_days(engine, policy)
    assert first.mode == "full" and len(before[0]) > 100 and first.total("units_folded") > 0

    report = purge.run_purge(engine, policy, run_id="purge-1", as_of=AS_OF)
    settle(engine, policy)  # another session of the shared server may be writing meanwhile
    erased = erasure.erase_purged_storage(engine, policy, run_id="purge-1")
    assert report.purged > 1000 and erased.ran
    assert all(day > first.last_complete_day for day in today)
    assert daily.pending_days(engine, policy) == today  # the purge's UPDATE marks no day as changed

    nightly = daily.refresh(engine, policy, run_id="night-2", as_of=AS_OF)
    assert nightly.days == [first.last_complete_day]
    assert snapshot(engine) == before

    everything = daily.build_range(
        engine, policy, first.days[0], first.days[-1], run_id="rebuild", as_of=AS_OF
    )
    assert everything.days == first.days
    assert snapshot(engine) == before
