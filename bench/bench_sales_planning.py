"""Planning tables on shops that look like shops: units accounted for, 28-day errors, build cost.

Two deterministic shops: the demo shop (50k orders over about 400 days) and a long-tail shop of
about 15k orders a month (200k orders, 2,000 skus). On each: the daily table's share of units
(the k rule at day × sku × region), then each planning table's share of units and the relative
error of the 28-day totals a planner sums from it (per sku for the skus making up 80% of units, per
region, per product line), and the build time (each table alone, and both in one transaction as
the nightly builds them) against a hand-written `CREATE TABLE … AS SELECT …
GROUP BY` of the same grains without protection (and of every level the tables publish, a second
reference); what a night costs when nothing is new, after one changed day (starting from the
week's merges, then cold on the same data), when the week turns (audited against last week's
summary, with what that costs a planner) and inside a week; the DP
release's 28-day error over a sweep of ε and two sets of contribution bounds. Runs in about five
minutes on 2 shared cores.

    .venv/bin/python bench/bench_sales_planning.py [--shops 50000,200000]
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402

from bench.harness import Bench, fresh_database, load_note, run_sql, vacuum_analyze  # noqa: E402
from lifecycle import synthetic  # noqa: E402
from lifecycle.policy import load_policy, parse_policy  # noqa: E402
from lifecycle.sales import daily, dp, planning  # noqa: E402
from lifecycle.sales.differencing import differencing_remainders  # noqa: E402
from lifecycle.settings import PROJECT_DIR  # noqa: E402

AS_OF = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)

# The same grains by hand, unprotected: 13 weeks × sku × region, and the last complete blocks of
# 7/28/84 days (counted from Monday 2001-01-01, lifecycle/sales/blocks.py) × sku.
DBA_CTAS = """
CREATE TABLE public.dba_planning AS
WITH line AS (
    SELECT (o.placed_at AT TIME ZONE 'UTC')::date AS d, i.sku, o.ship_region AS region,
           o.order_id, o.customer_id, i.quantity, i.quantity * i.unit_price AS amount
    FROM shop.orders o JOIN shop.order_items i ON i.order_id = o.order_id
    WHERE o.status IN ('paid', 'shipped', 'delivered')
      AND o.placed_at >= CAST(:first AS date) AND o.placed_at < CAST(:after AS date)
)
SELECT 'week' AS grain, d - (extract(isodow FROM d)::int - 1) AS period, sku, region,
       count(DISTINCT order_id) AS orders, sum(quantity) AS units, sum(amount) AS revenue,
       count(DISTINCT customer_id) AS customers
FROM line WHERE d >= CAST(:first_week AS date) AND d <= CAST(:last_week AS date) + 6
GROUP BY 2, 3, 4
UNION ALL
SELECT w::text, CAST(:day AS date), sku, NULL, count(DISTINCT order_id), sum(quantity),
       sum(amount), count(DISTINCT customer_id)
FROM line, unnest(ARRAY[7, 28, 84]) w,
     LATERAL (SELECT CAST(:day AS date) - (CAST(:day AS date) - DATE '2001-01-01' + 1) % w AS e) b
WHERE d > b.e - w AND d <= b.e
GROUP BY 1, 3
"""
# Every level the planning tables publish, by hand and unprotected: the same lines with their
# product line, grouped by week × (sku × region, sku, line, all) and by window × (sku, line, all).
DBA_CTAS_LEVELS = """
CREATE TABLE public.dba_planning_levels AS
WITH line AS (
    SELECT (o.placed_at AT TIME ZONE 'UTC')::date AS d, i.sku, o.ship_region AS region,
           coalesce(p.product_line, 'UNLISTED') AS product_line,
           o.order_id, o.customer_id, i.quantity, i.quantity * i.unit_price AS amount
    FROM shop.orders o JOIN shop.order_items i ON i.order_id = o.order_id
    LEFT JOIN shop.products p ON p.sku = i.sku
    WHERE o.status IN ('paid', 'shipped', 'delivered')
      AND o.placed_at >= CAST(:first AS date) AND o.placed_at < CAST(:after AS date)
)
SELECT 'week' AS grain, d - (extract(isodow FROM d)::int - 1) AS period, product_line, sku,
       region, count(DISTINCT order_id) AS orders, sum(quantity) AS units,
       sum(amount) AS revenue, count(DISTINCT customer_id) AS customers
FROM line WHERE d >= CAST(:first_week AS date) AND d <= CAST(:last_week AS date) + 6
GROUP BY GROUPING SETS ((2, 3, 4, 5), (2, 3, 4), (2, 3), (2))
UNION ALL
SELECT w::text, CAST(:day AS date), product_line, sku, NULL, count(DISTINCT order_id),
       sum(quantity), sum(amount), count(DISTINCT customer_id)
FROM line, unnest(ARRAY[7, 28, 84]) w,
     LATERAL (SELECT CAST(:day AS date) - (CAST(:day AS date) - DATE '2001-01-01' + 1) % w AS e) b
WHERE d > b.e - w AND d <= b.e
GROUP BY GROUPING SETS ((1, 3, 4), (1, 3), (1))
"""
UTILITY_KEYS = (
    "sku_28d_top80_count",
    "sku_28d_top80_exact_pct",
    "sku_28d_top80_median_rel_error_pct",
    "sku_28d_top80_with_k_buyers_count",
    "sku_28d_top80_with_k_buyers_exact_pct",
    "region_28d_median_rel_error_pct",
    "product_line_28d_median_rel_error_pct",
)


def dba_build(engine, end, every_level: bool = False) -> int:
    """The hand-written CTAS: the finest grains (the reference of the 1.5× target), or with
    `every_level` each level the planning tables publish (GROUPING SETS)."""
    first, after = planning.lines_span(end)
    first_week, last_week = planning.weekly_span(end)
    table, sql = (
        ("dba_planning_levels", DBA_CTAS_LEVELS) if every_level else ("dba_planning", DBA_CTAS)
    )
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS public.{table}")
        conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
        params = {"first": first, "after": after, "first_week": first_week}
        params |= {"last_week": last_week, "day": end}
        return conn.execute(sa.text(sql), params).rowcount


DEFAULT = None  # the policy's ε


def dp_errors(
    bench: Bench,
    engine: sa.Engine,
    size: str,
    epsilon: float | None,
    bounds_per_cell_and_period: tuple[int, int] | None = None,
) -> None:
    """Releases the DP table afresh at one ε and notes the 28-day error of the top-80% skus."""
    text = (PROJECT_DIR / "policy.yaml").read_text()
    text = text.replace("mechanism: k_threshold", "mechanism: differential_privacy")
    if bounds_per_cell_and_period is not None:
        cell, period = bounds_per_cell_and_period
        text = text.replace(
            "max_units_per_customer_per_cell: 3", f"max_units_per_customer_per_cell: {cell}"
        )
        text = text.replace(
            "max_units_per_customer_per_period: 6", f"max_units_per_customer_per_period: {period}"
        )
    if epsilon is not None:
        text = text.replace("epsilon_per_release: 1.0", f"epsilon_per_release: {epsilon}")
        text = text.replace(
            "epsilon_budget_per_period: 2.0", f"epsilon_budget_per_period: {epsilon}"
        )
    dp_policy = parse_policy(text, PROJECT_DIR / "policy.yaml")
    bounds = dp_policy.analytics.differential_privacy
    run_sql(engine, "TRUNCATE analytics.sales_units_dp, lifecycle.dp_releases, lifecycle.dp_ledger")
    label = f"{size}: sales_units_dp ({dp.PERIODS} periods × every catalogue sku, OpenDP)"
    if epsilon is None:
        with bench.measure(label) as box:
            release = dp.release(engine, dp_policy, AS_OF, run_id="bench-dp")
            box["rows"] = release.rows
    else:
        release = dp.release(engine, dp_policy, AS_OF, run_id="bench-dp")
    first = release.released[-1]
    utility = release.utility  # the latest period, as the release's metadata shows it
    count, median = utility.sku_top80_count, utility.sku_top80_median_error_pct / 100
    which = "the default ε" if epsilon is None else "ε"
    verdict = f" (target ≤ 5%: {'met' if median <= 0.05 else 'not met'})" if epsilon is None else ""
    bench.notes.append(
        f"{size} orders, differential privacy at {which}={bounds.epsilon_per_release} per 28-day "
        f"period (units clipped to {bounds.max_units_per_customer_per_cell} per sku and "
        f"{bounds.max_units_per_customer_per_period} per customer and period): 28-day units of the "
        f"{count} skus making up 80% of units in the period from {first}, released once, median "
        f"relative error **{100 * median:.1f}%**{verdict}; per product line (its released row) "
        f"{utility.product_line_median_error_pct}%, units released "
        f"{utility.units_released_pct}% of those sold."
    )


FORGET_BUILDS = "DELETE FROM lifecycle.planning_builds"  # the hashes and the merges carried
# (night, days after AS_OF, a Sunday 02:00): the Monday night opens a new week, Tuesday's lies in it.
NIGHTS = (("unchanged", 0), ("one changed day", 0), ("week turned", 1), ("new day in the week", 2))
# A new day's orders: those of the same weekday a week before, placed after the newest order.
NEW_DAY_ORDERS = """
WITH copied AS (
    SELECT o.*, (SELECT max(order_id) FROM shop.orders)
                + row_number() OVER (ORDER BY o.order_id) AS new_id
    FROM shop.orders o
    WHERE o.placed_at >= CAST(:day AS date) - 7 AND o.placed_at < CAST(:day AS date) - 6
      AND o.placed_at + interval '7 days' > (SELECT max(placed_at) FROM shop.orders)
), orders AS (
    INSERT INTO shop.orders
    SELECT (jsonb_populate_record(NULL::shop.orders, to_jsonb(c) || jsonb_build_object(
        'order_id', c.new_id, 'placed_at', c.placed_at + interval '7 days',
        'paid_at', c.paid_at + interval '7 days', 'shipped_at', c.shipped_at + interval '7 days',
        'delivered_at', c.delivered_at + interval '7 days'))).*
    FROM copied c
)
INSERT INTO shop.order_items
SELECT (jsonb_populate_record(NULL::shop.order_items,
                              to_jsonb(i) || jsonb_build_object('order_id', c.new_id))).*
FROM shop.order_items i JOIN copied c USING (order_id)
"""
# One order 10 days back gets one more unit: a late correction the change capture records.
ONE_CHANGED_DAY = """
UPDATE shop.order_items SET quantity = quantity + 1
WHERE order_id = (SELECT min(order_id) FROM shop.orders
                  WHERE status = 'delivered' AND placed_at >= CAST(:day AS date) - 10)
  AND sku = (SELECT min(sku) FROM shop.order_items WHERE order_id = (
      SELECT min(order_id) FROM shop.orders
      WHERE status = 'delivered' AND placed_at >= CAST(:day AS date) - 10))
"""


def nights(bench: Bench, engine: sa.Engine, policy, size: str, reference: str) -> None:
    """What the nightly pays for the planning tables: a re-run with nothing new, a night after a
    late correction in the span (starting from the week's merges, then again from none), the night
    the week turns, then a night inside the new week."""
    costs = {}
    for night, days_later in NIGHTS:
        as_of = AS_OF + timedelta(days=days_later)
        day = daily.last_complete_day(engine, policy, as_of)
        with engine.begin() as conn:
            if night == "one changed day":
                conn.execute(sa.text(ONE_CHANGED_DAY), {"day": day})
            elif days_later:
                conn.execute(sa.text(NEW_DAY_ORDERS), {"day": day})
        refreshed = daily.refresh(engine, policy, run_id="bench", as_of=as_of)
        label = f"{size}: night, {night}: both planning builds"
        with bench.measure(label) as box:
            summary, weekly = planning.build_planning_tables(engine, policy, as_of)
            box["rows"] = summary.rows + weekly.rows
        costs[night] = (bench.best(label), f"{summary.mode}/{weekly.mode}", refreshed.seconds)
        if night == "week turned":  # audited against last week's copies: what that costs
            turned = [_turn_figures(build) for build in (summary, weekly)]
        if night == "one changed day":  # the same data again, without this week's merges
            run_sql(engine, FORGET_BUILDS)
            cold = f"{size}: night, one changed day, nothing carried: both planning builds"
            with bench.measure(cold) as box:
                summary, weekly = planning.build_planning_tables(engine, policy, as_of)
                box["rows"] = summary.rows + weekly.rows
            costs["the same night, nothing carried"] = (bench.best(cold), "rebuilt cold", 0.0)
    reference_s = bench.best(reference)
    figures = "; ".join(
        f"{night}: {mode}, {seconds:.2f} s (**{seconds / reference_s:.2f}×** the CTAS; the daily "
        f"refresh before it {refresh:.2f} s)"
        for night, (seconds, mode, refresh) in costs.items()
    )
    bench.notes.append(
        f"{size} orders, nightly cost of the planning tables (both end on the last complete ISO "
        f"week): {figures}."
    )
    bench.notes.append(
        f"{size} orders, the night the week turned (audited against the first copy of each week "
        f"and block the earlier planning tables showed, lifecycle/sales/publications.py): "
        f"{'; '.join(turned)}."
    )


def _per_window(meta: dict) -> str:
    """The summary's share of each window, beside its headline (the window showing the least)."""
    shares = meta.get("units_published_pct_per_window")
    if not shares:
        return ""
    each = ", ".join(f"{window} {pct}%" for window, pct in shares.items())
    return f" (the window that shows the least; each window: {each})"


def _turn_figures(build: planning.PlanningBuild) -> str:
    meta = build.metadata()
    figures = ", ".join(f"{k} {meta[k]}" for k in UTILITY_KEYS if k in meta)
    return (
        f"`{build.table.split('.')[1]}` against the tables published for {meta['audited_against_summary_of']}"
        f" accounts for **{meta['units_published_pct']}%** of units{_per_window(meta)}, rows per level "
        f"{meta['rows_per_level']}, {meta['cells_merged_against_differencing']} cells merged, "
        f"{meta['cells_derivable_from_earlier_tables_alone']} derivable from earlier tables alone; "
        f"28-day errors: {figures}"
    )


def shop(bench: Bench, orders: int, policy) -> sa.Engine:
    size = f"{orders:,}"
    engine = fresh_database("sales_bench_planning")
    synthetic.seed_shop(engine, orders=orders, seed=7, as_of=AS_OF)
    vacuum_analyze(engine, "shop.orders", "shop.order_items", "shop.products")
    built = daily.refresh(engine, policy, run_id="bench", as_of=AS_OF)
    day = built.last_complete_day
    end = planning.window_end(day)  # where the planning tables end
    recent = [s for s in built.stats if (day - s.sales_date).days < 91]
    total = sum(s.units_total for s in recent)
    shown = sum(s.units_published for s in recent)
    bench.notes.append(
        f"{size} orders: `sales_volume_daily` (k rule at day × sku × region, unchanged contract) "
        f"publishes {shown:,} of {total:,} units of the last 91 days (**{shown / total:.1%}**)."
    )
    reference = f"{size}: hand-written CTAS of the same grains (reference)"
    levels = f"{size}: hand-written CTAS of every published level (GROUPING SETS)"
    for attempt in (1, 2):
        run_sql(engine, FORGET_BUILDS)  # a full build each attempt, not a skip of an unchanged one
        with bench.measure(f"{reference} #{attempt}") as box:
            box["rows"] = dba_build(engine, end)
        with bench.measure(f"{levels} #{attempt}") as box:
            box["rows"] = dba_build(engine, end, every_level=True)
        with bench.measure(f"{size}: product_line_summary #{attempt}") as box:
            summary = planning.build_product_line_summary(engine, policy, AS_OF)
            box["rows"] = summary.rows
        with bench.measure(f"{size}: weekly_demand #{attempt}") as box:
            weekly = planning.build_weekly_demand(engine, policy, AS_OF)
            box["rows"] = weekly.rows
        run_sql(engine, FORGET_BUILDS)
        with bench.measure(f"{size}: both planning tables in one transaction #{attempt}") as box:
            summary, weekly = planning.build_planning_tables(engine, policy, AS_OF)
            box["rows"] = summary.rows + weekly.rows
    with bench.measure(f"{size}: guard check no_differencing_in_sales_tables") as box:
        check = differencing_remainders(engine, policy)
        box["rows"] = check.scanned.get("lines")
    ours = bench.best(f"{size}: both planning tables in one transaction")
    apart = bench.best(f"{size}: weekly_demand") + bench.best(f"{size}: product_line_summary")
    for build in (summary, weekly):
        meta = build.metadata()
        figures = ", ".join(f"{k} {meta[k]}" for k in UTILITY_KEYS if k in meta)
        bench.notes.append(
            f"{size} orders: `{build.table.split('.')[1]}` accounts for {meta['units_published']:,} of "
            f"{meta['units_total']:,} units (**{meta['units_published_pct']}%**){_per_window(meta)}, "
            "rows per level "
            f"{meta['rows_per_level']}, {meta['cells_merged_against_differencing']} cells merged "
            f"against differencing; 28-day errors: {figures}."
        )
    ratio = ours / bench.best(reference)
    bench.notes.append(
        f"{size} orders: both planning tables (one transaction, as the nightly builds them) / "
        f"hand-written CTAS of the same grains = **{ratio:.1f}×** (target ≤ 1.5×: "
        f"{'met' if ratio <= 1.5 else 'not met'}; built one after the other "
        f"{apart / bench.best(reference):.1f}×); "
        f"the differencing check {'passed' if check.passed else 'FAILED'} in {check.seconds:.1f} s "
        f"= {check.seconds / bench.best(reference):.1f}× the CTAS. Against a CTAS of every level "
        f"the tables publish (week × sku × region, sku, line, all; window × sku, line, all) "
        f"the builds take **{ours / bench.best(levels):.1f}×**."
    )
    nights(bench, engine, policy, size, reference)
    for epsilon in (DEFAULT, 2.0, 4.0, 8.0, 1000.0):
        dp_errors(bench, engine, size, epsilon)
    for epsilon in (1.0, 2.0, 4.0, 8.0):
        dp_errors(bench, engine, size, epsilon, bounds_per_cell_and_period=(4, 8))
    run_sql(engine, "DROP TABLE IF EXISTS public.dba_planning, public.dba_planning_levels")
    return engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--shops", default="50000,200000", help="orders of each shop, comma-separated"
    )
    args = parser.parse_args()
    policy = load_policy(PROJECT_DIR / "policy.yaml")
    bench = Bench("sales_planning", f"python bench/bench_sales_planning.py --shops {args.shops}")
    load_at_start = os.getloadavg()[0]
    for orders in (int(n) for n in args.shops.split(",")):
        engine = shop(bench, orders, policy)
    bench.notes.append(load_note(load_at_start))
    bench.write(engine)


if __name__ == "__main__":
    main()
