"""What a person looks at in the UI: the largest published rows of a day, week or product line.

Rows of the published (already protected) tables only, for assets' metadata, kept as cells
(lifecycle.shown_tables says why not as one markdown text).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lifecycle.shown_tables import ShownTable

PREVIEW_ROWS = 10


@dataclass(frozen=True)
class Preview:
    """A line saying what is shown (or why nothing is), and the rows, if any."""

    caption: str
    table: ShownTable | None = None


_PREVIEW_DAY = sa.text(
    "SELECT max(sales_date) FROM analytics.sales_volume_daily WHERE sales_date <= :day"
)
_PREVIEW = sa.text("""
    SELECT sku, region, orders, units, revenue, customers FROM analytics.sales_volume_daily
    WHERE sales_date = :day ORDER BY units DESC, sku, region LIMIT :n
""")


def day_preview(engine: Engine, day: date, limit: int = PREVIEW_ROWS) -> Preview:
    """The largest published rows of `day`, or of the last day before it with any."""
    with engine.connect() as conn:
        shown = conn.execute(_PREVIEW_DAY, {"day": day}).scalar()
        found = conn.execute(_PREVIEW, {"day": shown, "n": limit}) if shown else []
        rows = [list(r) for r in found]
    if not rows:
        return Preview(f"No published rows up to {day.isoformat()}.")
    note = "" if shown == day else f" (nothing published on {day.isoformat()})"
    return Preview(
        f"{shown.isoformat()}{note}, top {len(rows)} rows by units",
        ShownTable.of(
            ["sku", "region", "orders", "units", "revenue", "customers"], rows, {2, 3, 4, 5}
        ),
    )


_WEEKLY_PREVIEW = sa.text("""
    SELECT week_start, level, product_line, sku, region, units, customers
    FROM analytics.weekly_demand
    WHERE week_start = (SELECT max(week_start) FROM analytics.weekly_demand)
    ORDER BY units DESC, product_line, sku, region LIMIT :n
""")
_PRODUCT_LINE_DAYS = sa.text("""
    SELECT min(window_start), max(window_end) FROM analytics.product_line_summary
    WHERE window_days = 28
""")
_PRODUCT_LINE_PREVIEW = sa.text("""
    SELECT level, product_line, sku, units, revenue, units_share_pct
    FROM analytics.product_line_summary WHERE window_days = 28
    ORDER BY units DESC, product_line, sku LIMIT :n
""")


def _preview(
    engine: Engine,
    statement: sa.TextClause,
    header: list[str],
    numeric: set[int],
    shows: str,
    empty: str,
) -> Preview:
    with engine.connect() as conn:
        rows = [list(row) for row in conn.execute(statement, {"n": PREVIEW_ROWS})]
    if not rows:
        return Preview(empty)
    return Preview(f"{shows}, top {len(rows)} rows by units", ShownTable.of(header, rows, numeric))


def weekly_demand_preview(engine: Engine) -> Preview:
    """The last published week's largest rows of analytics.weekly_demand."""
    return _preview(
        engine,
        _WEEKLY_PREVIEW,
        ["week", "level", "product line", "sku", "region", "units", "customers"],
        {5, 6},
        "the last published week",
        "No complete week published yet.",
    )


def product_line_preview(engine: Engine) -> Preview:
    """The largest 28-day rows of analytics.product_line_summary, with the days they cover (the
    last complete 28-day block, which ends up to three weeks before the summary's Sunday)."""
    with engine.connect() as conn:
        first, last = conn.execute(_PRODUCT_LINE_DAYS).one()
    return _preview(
        engine,
        _PRODUCT_LINE_PREVIEW,
        ["level", "product line", "sku", "units 28 d", "revenue 28 d", "units share 28 d %"],
        {3, 4, 5},
        f"the 28 days {first} to {last}",
        "No 28-day window published yet.",
    )
