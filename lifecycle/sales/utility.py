"""What a planner gets from a planning table: the relative error of the 28-day totals they compute.

A planner sums a table's rows for a sku, a region or a product line. Units rolled up past that
grain are not in the sum, so the figure is low by exactly those units. Measured on the build's
own line assignment (lifecycle/sales/rollup.py), over 28 days: per sku for the skus that make up
80% of units, per region and per product line. Counts and percentages only.

The DP release (lifecycle/sales/dp.py) is measured the same way on its latest period: the
released 28-day units per sku (top 80%) and per product line against the true ones, the share of
sold units released, and the noise expected from ε alone. Measured on the raw lines, these are
figures for the data team's metadata, not part of the release: they are not differentially
private, exactly as the planning builds' own counts are not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lifecycle.sales import blocks
from lifecycle.sales.rollup import OTHER
from lifecycle.sales.source import counted_customers

TOP_SHARE = 0.80

# One grain: `grain` is the line's sku, region or product line; a line counts for it when the
# row it was assigned to is at most `deepest` levels up (the rows a planner sums for that grain).
# A grain whose lines add up to no units or fewer (returns booked as negative lines) has no
# relative error, and dividing by its units failed the build: it is left out of the measure.
_ERRORS = sa.text("""
WITH per AS (
    SELECT {grain} AS g, sum(l.units) AS true_units, {buyers} AS buyers,
           coalesce(sum(l.units) FILTER (WHERE a.level <= :deepest), 0) AS shown_units
    FROM pg_temp.sales_lines l
    LEFT JOIN pg_temp.sales_assign a ON a.part = :p AND a.line_id = l.line_id
    WHERE l.sales_date >= :first AND l.sales_date <= :last AND {known}
    GROUP BY 1 HAVING sum(l.units) > 0
), ranked AS (
    SELECT per.*, abs(true_units - shown_units)::float8 / true_units AS err,
           coalesce(sum(true_units) OVER (ORDER BY true_units DESC, g
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before,
           sum(true_units) OVER () AS everything
    FROM per
)
SELECT count(*), avg((err = 0)::int), percentile_cont(0.5) WITHIN GROUP (ORDER BY err),
       count(*) FILTER (WHERE buyers >= :k), avg((err = 0)::int) FILTER (WHERE buyers >= :k)
FROM ranked WHERE NOT :top OR before < :share * everything
""")


@dataclass(frozen=True)
class GrainError:
    """Relative error of the 28-day totals of one grain: how many, share exact, median; and the
    same share among those with at least k buyers (the only ones a k rule can show exactly)."""

    count: int
    exact_pct: float
    median_error_pct: float
    count_k: int = 0
    exact_k_pct: float = 0.0


@dataclass
class Utility:
    """The 28-day totals a planner computes from one table, against the true totals."""

    first: date
    last: date
    errors: dict[str, GrainError]

    def metadata(self) -> dict[str, object]:
        """Figures for the asset's materialization (and bench/RESULTS.md)."""
        out: dict[str, object] = {"utility_window": f"{self.first}..{self.last}"}
        for grain, e in self.errors.items():
            out[f"{grain}_count"] = e.count
            out[f"{grain}_exact_pct"] = e.exact_pct
            out[f"{grain}_median_rel_error_pct"] = e.median_error_pct
            out[f"{grain}_with_k_buyers_count"] = e.count_k
            out[f"{grain}_with_k_buyers_exact_pct"] = e.exact_k_pct
        return out


def _grain(
    conn: Connection,
    part: str,
    grain: str,
    deepest: int,
    first: date,
    last: date,
    top: bool,
    k: int,
) -> GrainError:
    count, exact, median, count_k, exact_k = conn.execute(
        # OTHER is no region (an order without one); a sku or product line may be named so.
        sa.text(
            _ERRORS.text.format(
                grain=grain,
                known=f"{grain} <> :other" if grain == "l.region" else "true",
                buyers=counted_customers("l.customer_id", "l.units"),
            )
        ),
        {
            "p": part,
            "deepest": deepest,
            "first": first,
            "last": last,
            "other": OTHER,
            "top": top,
            "share": TOP_SHARE,
            "k": k,
        },
    ).one()
    return GrainError(
        int(count),
        round(100 * float(exact or 0), 1),
        round(100 * float(median or 0), 2),
        int(count_k),
        round(100 * float(exact_k or 0), 1),
    )


def measure_utility(
    conn: Connection, day: date, weekly: str | None, summary: str | None, k: int
) -> Utility:
    """28-day errors per sku (top 80% of units), region and product line of one planning table:
    the weekly table over its last four weeks, the summary over its 28-day window (the last
    complete 28-day block, lifecycle/sales/blocks.py)."""
    if weekly is not None:
        sunday = day - timedelta(days=(day.weekday() + 1) % 7)
        first, last = sunday - timedelta(days=27), sunday
        levels = {"sku": 1, "region": 0, "product_line": 2}
        part = weekly
    else:
        first, last = blocks.block_bounds(day, 28)
        levels = {"sku": 0, "product_line": 1}
        part = summary or ""
    errors = {
        f"{grain}_28d{'_top80' if grain == 'sku' else ''}": _grain(
            conn, part, f"l.{grain}", deepest, first, last, top=grain == "sku", k=k
        )
        for grain, deepest in levels.items()
    }
    return Utility(first, last, errors)


# The DP release of one period against the period's true units (pg_temp.sales_lines): per sku for
# the skus making up 80% of units, per product line (its released row; a period released before
# there were line rows: its skus' sum), and in all.
_DP_ERRORS = sa.text("""
WITH truth AS (
    SELECT sku, min(product_line) AS product_line, sum(units) AS units
    FROM pg_temp.sales_lines
    WHERE sales_date >= :first AND sales_date <= :last
    GROUP BY sku
), released AS (
    SELECT sku, product_line, units FROM analytics.sales_units_dp WHERE period_start = :first
), ranked AS (
    SELECT t.units, coalesce(r.units, 0) AS shown,
           coalesce(sum(t.units) OVER (ORDER BY t.units DESC, t.sku
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before,
           sum(t.units) OVER () AS everything
    FROM truth t LEFT JOIN released r USING (sku)
    WHERE t.units > 0
), summed AS (
    SELECT coalesce(t.product_line, r.product_line) AS product_line,
           sum(coalesce(t.units, 0)) AS units, sum(coalesce(r.units, 0)) AS shown
    FROM truth t FULL JOIN released r USING (sku)
    GROUP BY 1
), line_rows AS (
    SELECT product_line, units FROM analytics.sales_units_dp_lines WHERE period_start = :first
), lines AS (  -- the released line rows where the period has them, else the skus' sum
    SELECT s.units, CASE WHEN EXISTS (SELECT FROM line_rows) THEN coalesce(x.units, 0)
                         ELSE s.shown END AS shown
    FROM summed s LEFT JOIN line_rows x USING (product_line)
)
SELECT (SELECT count(*) FROM ranked WHERE before < :share * everything),
       (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(shown - units)::float8 / units)
        FROM ranked WHERE before < :share * everything),
       (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(shown - units)::float8 / units)
        FROM lines WHERE units > 0),
       (SELECT sum(units) FROM truth),
       coalesce((SELECT sum(units) FROM line_rows), (SELECT sum(units) FROM released))
""")


@dataclass(frozen=True)
class DpUtility:
    """The 28-day totals a planner reads from one released period, against the true totals."""

    first: date
    last: date
    sku_top80_count: int
    sku_top80_median_error_pct: float
    product_line_median_error_pct: float
    units_released_pct: float  # released units (the line rows' sum) over sold units
    expected_median_noise_units: float  # scale × ln 2 under the policy's ε and bound

    def metadata(self) -> dict[str, object]:
        """Figures for the release's materialization (and bench/RESULTS.md)."""
        return {
            "utility_period": f"{self.first}..{self.last}",
            "units_released_pct": self.units_released_pct,
            "sku_28d_top80_count": self.sku_top80_count,
            "sku_28d_top80_median_rel_error_pct": self.sku_top80_median_error_pct,
            "product_line_28d_median_rel_error_pct": self.product_line_median_error_pct,
            "expected_median_noise_units": self.expected_median_noise_units,
        }


def measure_dp_utility(conn: Connection, first: date, last: date, scale: float) -> DpUtility:
    """The errors of the period first..last as released in analytics.sales_units_dp, measured
    against pg_temp.sales_lines; `scale` is the Laplace noise's."""
    count, sku_median, line_median, sold, released = conn.execute(
        _DP_ERRORS, {"first": first, "last": last, "share": TOP_SHARE}
    ).one()
    return DpUtility(
        first,
        last,
        int(count),
        round(100 * float(sku_median or 0), 2),
        round(100 * float(line_median or 0), 2),
        round(100 * float(released or 0) / float(sold), 2) if sold else 100.0,
        round(scale * math.log(2), 2),
    )
