"""No differencing: no figure derivable by subtracting published sales rows covers 1..k−1 buyers.

The guard's view, independent of how the tables were built: it reads what analytics publishes,
places every sales line of the planning span in the finest published row of each table that
matches it (the daily table, the weekly table, each window of the product-line summary), and
recomputes, for every ordered pair of them, each row minus the rows of the other table that lie
wholly inside it. A remainder with lines behind it and fewer than k customers is a leak.

What it audits is containment between two tables, the subtraction a reader does by hand ("the
national week minus its published regions"); a linear combination of three or more tables is not
searched (that is an integer program, what tau-ARGUS audits).
"""

from __future__ import annotations

from collections import Counter
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lifecycle.checks import CheckResult, Finding
from lifecycle.guard.scan import scan
from lifecycle.policy import Policy
from lifecycle.sales import planning, rollup
from lifecycle.sales.source import Source

_PLANNING_DAY = sa.text("""
    SELECT coalesce((SELECT max(as_of_date) FROM analytics.product_line_summary),
                    (SELECT max(week_start) + 6 FROM analytics.weekly_demand),
                    (SELECT max(sales_date) FROM analytics.sales_volume_daily))
""")
_TABLES = {
    rollup.DAILY: "analytics.sales_volume_daily",
    planning.WEEKLY: "analytics.weekly_demand",
    **{
        planning.window_part(d): f"analytics.product_line_summary ({d} days)"
        for d in planning.WINDOWS
    },
}


@scan
def differencing_remainders(engine: Engine, policy: Policy) -> CheckResult:
    """Fails on any remainder of one published sales table minus another under k customers."""
    k = policy.analytics.min_customers_per_cell
    with engine.connect() as conn, conn.begin():
        day: date | None = conn.execute(_PLANNING_DAY).scalar()
        if day is None:
            return CheckResult(scanned={"lines": 0, "k": k})
        day = planning.window_end(day)  # a Sunday already, unless only the daily table is built
        first, after = planning.lines_span(day)
        lines = rollup.load_lines(conn, Source(policy), policy.raw.catalogue, first, after)
        rollup.assign_daily(conn)
        planning.assign_published_weekly(conn, day)
        parts = [rollup.DAILY, planning.WEEKLY, *planning.assign_published_summary(conn, day)]
        found = rollup.audit(conn, parts, k)
        conn.rollback()
    pairs = Counter((r.outer, r.inner) for r in found)
    detail = (
        f"a row minus the rows of the other table inside it leaves fewer than k={k} customers; "
        "rebuild the planning tables (they merge such cells) or stop publishing the other table"
    )
    findings = [
        Finding(_TABLES[outer], f"minus {_TABLES[inner]}", "differencing", n, detail=detail)
        for (outer, inner), n in sorted(pairs.items())
    ]
    return CheckResult(
        findings=findings,
        scanned={
            "lines": lines,
            "tables": len(parts),
            "pairs": len(parts) * (len(parts) - 1),
            "k": k,
        },
    )
