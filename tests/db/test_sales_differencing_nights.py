"""The differencing audit follows the night's work: in the nightly (`changes.incremental`) a night
on which neither the planning tables, nor the daily table's rows of the span, nor the sales lines
of the span changed skips it; a changed table or a late line audits again, and a leak planted in a
published table is caught on the night it appears and every night after, until it is gone."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from lifecycle.guard import changes
from lifecycle.sales import daily
from lifecycle.sales.differencing import differencing_remainders
from tests.conftest import AS_OF
from tests.db.test_guard_incremental import counters, wait_for_statistics
from tests.db.test_sales_planning import (
    PLANTED_FINDINGS,
    WEEK,
    buys,
    k3_with_catalogue,
    nightly_planning,
    small_shop,
)

DAY = timedelta(days=1)
PLANNING = ("analytics.weekly_demand", "analytics.product_line_summary")


def planned(engine, policy, as_of=AS_OF):
    """The nightly's sales steps, and the statistics of their writes arrived, as by the guard's
    turn in a real night (the signatures carry them, lifecycle/guard/changes.py)."""
    before = {t: counters(engine, t) for t in PLANNING}
    builds = nightly_planning(engine, policy, as_of)
    for table, build in zip(PLANNING[::-1], builds, strict=True):
        if build.mode == "rebuilt" and build.rows:  # an empty table writes nothing
            wait_for_statistics(engine, table, before[table])


def audit(engine, policy, at):
    with changes.incremental(at, timedelta(days=7)):
        return differencing_remainders(engine, policy)


def test_an_unchanged_night_skips_the_audit_and_the_weekly_full_pass_does_not(engine, policy_file):
    policy = k3_with_catalogue(policy_file)
    small_shop(engine)
    planned(engine, policy)
    first = audit(engine, policy, AS_OF)
    assert first.passed and first.scanned["lines"] == 10
    assert (first.scanned["relations_scanned"], first.scanned["full_scan"]) == (3, True)
    # The next night: Monday's orders (after the span) and the refresh rewriting its newest day.
    with engine.begin() as conn:
        for n in range(3):
            buys(conn, 100 + n, 50 + n, 7, "Y", "SH")
    planned(engine, policy, AS_OF + DAY)
    second = audit(engine, policy, AS_OF + DAY)
    assert second.passed and second.scanned["lines"] == 0
    assert (second.scanned["relations_scanned"], second.scanned["full_scan"]) == (0, False)
    weekly = audit(engine, policy, AS_OF + 7 * DAY)
    assert weekly.scanned["lines"] == 10 and weekly.scanned["full_scan"] is True
    # Outside the nightly (`lifecycle guard`, direct calls) the audit always runs.
    assert differencing_remainders(engine, policy).scanned["lines"] == 10


def test_a_late_line_in_the_span_audits_again(engine, policy_file):
    policy = k3_with_catalogue(policy_file)
    small_shop(engine)
    planned(engine, policy)
    assert audit(engine, policy, AS_OF).scanned["lines"] == 10
    with engine.begin() as conn:
        buys(conn, 11, 33, 2, "Y", "GD")
    # Captured, not yet in the daily table: the lines cannot be vouched for, so audited.
    pending = audit(engine, policy, AS_OF + DAY)
    assert pending.scanned["lines"] == 11 and pending.scanned["relations_scanned"] == 3
    # In the daily table, the planning tables left as they were (their build failed, say).
    daily.refresh(engine, policy, run_id="late", as_of=AS_OF + DAY)
    late = audit(engine, policy, AS_OF + DAY)
    assert late.passed and late.scanned["lines"] == 11
    assert audit(engine, policy, AS_OF + 2 * DAY).scanned["lines"] == 0  # now vouched for


def test_a_changed_daily_row_of_the_span_audits_again(engine, policy_file):
    policy = k3_with_catalogue(policy_file)
    small_shop(engine)
    planned(engine, policy)
    assert audit(engine, policy, AS_OF).passed
    with engine.begin() as conn:
        conn.execute(
            sa.text("DELETE FROM analytics.sales_volume_daily WHERE sales_date = :d"), {"d": WEEK}
        )
    assert audit(engine, policy, AS_OF + DAY).scanned["lines"] == 10


def test_a_planted_leak_is_caught_on_the_night_it_appears_and_after(engine, policy):
    with engine.begin() as conn:
        for n in range(5):
            buys(conn, 1 + n, 10 + n, 0, "SKU-1", "SH")
        buys(conn, 6, 99, 1, "SKU-1", "SH", units=3)
    planned(engine, policy)
    clean = audit(engine, policy, AS_OF)
    assert clean.passed and clean.scanned["relations_scanned"] == 3
    assert audit(engine, policy, AS_OF + DAY).scanned["relations_scanned"] == 0
    # What a naive weekly build would publish: 6 buyers >= k, written seconds before the guard.
    with engine.begin() as conn:
        conn.execute(
            sa.text("""INSERT INTO analytics.weekly_demand
                VALUES (:w, 'sku_region', 'UNLISTED', 'SKU-1', 'SH', 6, 8, 80, 6)"""),
            {"w": WEEK},
        )
    expected = PLANTED_FINDINGS
    for night in (2, 3):  # a pass with findings stores nothing: audited again the next night
        result = audit(engine, policy, AS_OF + night * DAY)
        assert not result.passed and result.error is None
        assert [(f.table, f.column, f.kind, f.count) for f in result.findings] == expected
        assert result.scanned["relations_scanned"] == 3
        assert "99" not in result.description()
