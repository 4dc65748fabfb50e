"""Planning tables a merchandiser reads, rebuilt from the published daily table only.

analytics.weekly_demand (units per ISO week, sku and region, with a trailing 4-week average and
week-over-week change) and analytics.product_line_summary (7/28/91-day units and revenue shares
per sku, with an ABC class by revenue). Both read analytics.sales_volume_daily and nothing raw,
under the daily build's lock, so they show nothing the daily table does not publish.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lifecycle.policy import Policy
from lifecycle.sales.daily import LOCK_KEY, last_complete_day


@dataclass
class PlanningBuild:
    """One rebuilt planning table: its size and the day it is current to."""

    table: str
    as_of_date: date
    rows: int
    seconds: float

    def metadata(self) -> dict[str, object]:
        """Table, size and currency for the planning asset's materialization."""
        return {
            "table": self.table,
            "as_of_date": self.as_of_date.isoformat(),
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
        }


# Weeks are ISO weeks (Monday first), in plain date arithmetic so no session time zone enters.
# The grid gives every (sku, region) a row for each week since it first sold, so weeks without
# sales count as zero in the trailing average; rows are kept while that average is above zero.
_WEEKLY_SQL = sa.text("""
WITH weekly AS (
    SELECT sales_date - (extract(isodow FROM sales_date)::int - 1) AS week_start, sku, region,
           sum(units) AS units, sum(orders) AS orders, sum(revenue) AS revenue,
           count(*) AS days_with_sales, max(customers) AS customers
    FROM analytics.sales_volume_daily WHERE sales_date <= :as_of_date
    GROUP BY 1, 2, 3
), span AS (
    SELECT sku, region, min(week_start) AS first_week FROM weekly GROUP BY sku, region
), grid AS (
    SELECT s.sku, s.region, s.first_week + 7 * n AS week_start
    FROM span s, generate_series(0, (:this_week - s.first_week) / 7) AS n
), dense AS (
    SELECT g.week_start, g.sku, g.region,
           coalesce(w.units, 0) AS units, coalesce(w.orders, 0) AS orders,
           coalesce(w.revenue, 0) AS revenue, coalesce(w.days_with_sales, 0) AS days_with_sales,
           coalesce(w.customers, 0) AS customers,
           avg(coalesce(w.units, 0)) OVER last_4_weeks AS units_avg_4w,
           lag(coalesce(w.units, 0)) OVER series AS previous_units
    FROM grid g LEFT JOIN weekly w USING (week_start, sku, region)
    WINDOW series AS (PARTITION BY g.sku, g.region ORDER BY g.week_start),
           last_4_weeks AS (series ROWS BETWEEN 3 PRECEDING AND CURRENT ROW)
)
INSERT INTO analytics.weekly_demand (week_start, sku, region, week_complete, units, orders, revenue,
    days_with_sales, units_avg_4w, units_change_wow, units_change_wow_pct, customers)
SELECT week_start, sku, region, week_start + 6 <= :as_of_date, units, orders, revenue,
       days_with_sales, round(units_avg_4w, 2), units - previous_units,
       CASE WHEN previous_units > 0
            THEN round(100.0 * (units - previous_units) / previous_units, 1) END,
       customers
FROM dense WHERE units > 0 OR units_avg_4w > 0
ORDER BY week_start, sku, region
""")

_SUMMARY_SQL = sa.text("""
WITH per_sku AS (
    SELECT sku,
           coalesce(sum(units) FILTER (WHERE sales_date > :as_of_date - 7), 0) AS units_7d,
           coalesce(sum(units) FILTER (WHERE sales_date > :as_of_date - 28), 0) AS units_28d,
           coalesce(sum(units) FILTER (WHERE sales_date > :as_of_date - 91), 0) AS units_91d,
           coalesce(sum(units) FILTER (WHERE sales_date > :as_of_date - 56
                                         AND sales_date <= :as_of_date - 28), 0) AS units_prior_28d,
           coalesce(sum(revenue) FILTER (WHERE sales_date > :as_of_date - 7), 0) AS revenue_7d,
           coalesce(sum(revenue) FILTER (WHERE sales_date > :as_of_date - 28), 0) AS revenue_28d,
           coalesce(sum(revenue) FILTER (WHERE sales_date > :as_of_date - 91), 0) AS revenue_91d,
           max(customers) FILTER (WHERE sales_date > :as_of_date - 91) AS customers
    FROM analytics.sales_volume_daily
    WHERE sales_date > :as_of_date - 91 AND sales_date <= :as_of_date
    GROUP BY sku
), shares AS (
    SELECT p.*,
           sum(units_7d) OVER () AS all_units_7d, sum(units_28d) OVER () AS all_units_28d,
           sum(units_91d) OVER () AS all_units_91d, sum(revenue_7d) OVER () AS all_revenue_7d,
           sum(revenue_28d) OVER () AS all_revenue_28d, sum(revenue_91d) OVER () AS all_revenue_91d,
           rank() OVER (ORDER BY revenue_91d DESC) AS revenue_rank_91d,
           coalesce(sum(revenue_91d) OVER (ORDER BY revenue_91d DESC, sku
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS revenue_before
    FROM per_sku p WHERE units_91d > 0
)
INSERT INTO analytics.product_line_summary (as_of_date, sku, units_7d, units_28d, units_91d,
    revenue_7d, revenue_28d, revenue_91d,
    units_share_7d_pct, units_share_28d_pct, units_share_91d_pct,
    revenue_share_7d_pct, revenue_share_28d_pct, revenue_share_91d_pct, units_change_28d_pct,
    revenue_rank_91d, abc_class, customers)
SELECT :as_of_date, sku, units_7d, units_28d, units_91d, revenue_7d, revenue_28d, revenue_91d,
       coalesce(round(100.0 * units_7d / nullif(all_units_7d, 0), 2), 0),
       coalesce(round(100.0 * units_28d / nullif(all_units_28d, 0), 2), 0),
       coalesce(round(100.0 * units_91d / nullif(all_units_91d, 0), 2), 0),
       coalesce(round(100.0 * revenue_7d / nullif(all_revenue_7d, 0), 2), 0),
       coalesce(round(100.0 * revenue_28d / nullif(all_revenue_28d, 0), 2), 0),
       coalesce(round(100.0 * revenue_91d / nullif(all_revenue_91d, 0), 2), 0),
       CASE WHEN units_prior_28d > 0
            THEN round(100.0 * (units_28d - units_prior_28d) / units_prior_28d, 1) END,
       revenue_rank_91d,
       CASE WHEN revenue_before < 0.80 * all_revenue_91d THEN 'A'
            WHEN revenue_before < 0.95 * all_revenue_91d THEN 'B' ELSE 'C' END,
       customers
FROM shares ORDER BY sku
""")


def _rebuild_table(
    engine: Engine, table: str, statement: sa.TextClause, as_of_date: date, **params
) -> PlanningBuild:
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        conn.execute(sa.text(f"DELETE FROM {table}"))
        rows = conn.execute(statement, {"as_of_date": as_of_date, **params}).rowcount
    return PlanningBuild(
        table=table, as_of_date=as_of_date, rows=rows, seconds=time.perf_counter() - started
    )


def build_weekly_demand(engine: Engine, policy: Policy, as_of: datetime) -> PlanningBuild:
    """Rebuilds analytics.weekly_demand from the daily table, current to the last complete day."""
    day = last_complete_day(engine, policy, as_of)
    this_week = day - timedelta(days=day.weekday())
    return _rebuild_table(engine, "analytics.weekly_demand", _WEEKLY_SQL, day, this_week=this_week)


def build_product_line_summary(engine: Engine, policy: Policy, as_of: datetime) -> PlanningBuild:
    """Rebuilds analytics.product_line_summary (7/28/91-day shares per sku) from the daily table."""
    day = last_complete_day(engine, policy, as_of)
    return _rebuild_table(engine, "analytics.product_line_summary", _SUMMARY_SQL, day)
