"""The nightly builds both planning tables in one transaction: the same tables as built one after
the other, published together or not at all."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from lifecycle import synthetic
from lifecycle.sales import daily, planning
from lifecycle.sales.daily import SalesError
from lifecycle.sales.differencing import differencing_remainders
from tests.conftest import AS_OF
from tests.db.test_sales_planning import rows
from tests.db.test_sales_planning_carry import CANCEL_IN_SPAN

PUBLISHED = {
    "summary": "SELECT * FROM analytics.product_line_summary ORDER BY window_days, level, 4, 5",
    "weekly": "SELECT * FROM analytics.weekly_demand ORDER BY 1, 2, 3, 4, 5",
}
FORGET = "DELETE FROM lifecycle.planning_builds"


def published(engine) -> dict[str, list[tuple]]:
    return {name: rows(engine, sql) for name, sql in PUBLISHED.items()}


def figures(build: planning.PlanningBuild) -> tuple:
    return build.mode, build.rows, build.rounds, build.cells_merged, build.units_published


def test_together_they_are_the_tables_built_one_after_the_other(engine, policy):
    """The weekly build audits against the summary's own assignment instead of reading the
    published summary back: the tables, rounds and merges are the same. Built alone, the summary
    writes its 28- and 84-day windows, and the weekly build then adds the 7-day window that adds
    up its newest week (lifecycle/sales/week_window.py)."""
    synthetic.seed_shop(engine, orders=20000, seed=7, as_of=AS_OF)
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    together = planning.build_planning_tables(engine, policy, AS_OF)
    tables = published(engine)
    with engine.begin() as conn:
        conn.execute(sa.text(FORGET))
    apart = (
        planning.build_product_line_summary(engine, policy, AS_OF),
        planning.build_weekly_demand(engine, policy, AS_OF),
    )
    assert published(engine) == tables
    week = "SELECT count(*) FROM analytics.product_line_summary WHERE window_days = 7"
    assert together[0].rows == apart[0].rows + rows(engine, week)[0][0] > apart[0].rows
    apart[0].rows = together[0].rows
    assert [figures(b) for b in together] == [figures(b) for b in apart]
    assert all(b.cells_merged > 0 for b in together)
    assert differencing_remainders(engine, policy).passed


def test_a_weekly_build_that_fails_leaves_the_summary_as_it_was(engine, policy):
    """After a late correction the summary is rebuilt; the weekly table then fails to publish
    (a trigger refuses its rows). Nothing of the night is kept: the summary beside the old weekly
    table is the old one, the pair the guard last vouched for."""
    synthetic.seed_shop(engine, orders=20000, seed=7, as_of=AS_OF)
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    planning.build_planning_tables(engine, policy, AS_OF)
    before = published(engine)
    builds = rows(engine, "SELECT table_name, signature FROM lifecycle.planning_builds ORDER BY 1")
    with engine.begin() as conn:
        day = planning.window_end(daily.last_complete_day(engine, policy, AS_OF))
        assert conn.execute(sa.text(CANCEL_IN_SPAN), {"day": day}).rowcount == 20
        conn.execute(
            sa.text("""
            CREATE FUNCTION public.refuse() RETURNS trigger LANGUAGE plpgsql AS
                $$ BEGIN RAISE EXCEPTION 'weekly rows refused'; END $$;
            CREATE TRIGGER refuse BEFORE INSERT ON analytics.weekly_demand
                FOR EACH ROW EXECUTE FUNCTION public.refuse();
        """)
        )
    daily.refresh(engine, policy, run_id="late", as_of=AS_OF)
    try:
        with pytest.raises(SalesError, match=r"SQLSTATE P0001 \(RaiseException\)") as failed:
            planning.build_planning_tables(engine, policy, AS_OF)
        assert "weekly rows refused" not in str(failed.value)  # the server's text stays out
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TRIGGER refuse ON analytics.weekly_demand"))
            conn.execute(sa.text("DROP FUNCTION public.refuse()"))
    assert published(engine) == before
    assert (
        rows(engine, "SELECT table_name, signature FROM lifecycle.planning_builds ORDER BY 1")
        == builds
    )
    # The next night builds the pair again.
    summary, weekly = planning.build_planning_tables(engine, policy, AS_OF)
    assert (summary.mode, weekly.mode) == ("rebuilt", "rebuilt")
    assert published(engine) != before


def test_a_summary_as_published_is_read_back_when_only_the_weekly_table_is_stale(engine, policy):
    synthetic.seed_shop(engine, orders=20000, seed=7, as_of=AS_OF)
    daily.refresh(engine, policy, run_id="night", as_of=AS_OF)
    planning.build_planning_tables(engine, policy, AS_OF)
    tables = published(engine)
    with engine.begin() as conn:
        conn.execute(sa.text(f"{FORGET} WHERE table_name = :t"), {"t": planning.WEEKLY_TABLE})
    summary, weekly = planning.build_planning_tables(engine, policy, AS_OF)
    assert (summary.mode, weekly.mode) == ("unchanged", "rebuilt")
    assert published(engine) == tables
