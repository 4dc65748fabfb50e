"""What a person looks at in the UI: the largest published rows of a day, week or product line.

Markdown tables of the published (already protected) tables only, for assets' metadata.
"""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Engine

PREVIEW_ROWS = 10


def markdown_table(header: list[str], rows: list[list[object]], right: set[int]) -> str:
    """A markdown table; integers get thousands separators, the columns in `right` align right."""

    def cell(value: object) -> str:
        return f"{value:,}" if isinstance(value, int) else str(value)

    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" if n in right else "---" for n in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


_PREVIEW_DAY = sa.text(
    "SELECT max(sales_date) FROM analytics.sales_volume_daily WHERE sales_date <= :day"
)
_PREVIEW = sa.text("""
    SELECT sku, region, orders, units, revenue, customers FROM analytics.sales_volume_daily
    WHERE sales_date = :day ORDER BY units DESC, sku, region LIMIT :n
""")


def preview_markdown(engine: Engine, day: date, limit: int = PREVIEW_ROWS) -> str:
    """The largest published rows of `day`, or of the last day before it with any, as markdown."""
    with engine.connect() as conn:
        shown = conn.execute(_PREVIEW_DAY, {"day": day}).scalar()
        found = conn.execute(_PREVIEW, {"day": shown, "n": limit}) if shown else []
        rows = [list(r) for r in found]
    if not rows:
        return f"No published rows up to {day.isoformat()}."
    note = "" if shown == day else f" (nothing published on {day.isoformat()})"
    return f"**{shown.isoformat()}**{note}, top {len(rows)} rows by units\n\n" + markdown_table(
        ["sku", "region", "orders", "units", "revenue", "customers"], rows, right={2, 3, 4, 5}
    )


_WEEKLY_PREVIEW = sa.text("""
    SELECT week_start, level, product_line, sku, region, units, customers
    FROM analytics.weekly_demand
    WHERE week_start = (SELECT max(week_start) FROM analytics.weekly_demand)
    ORDER BY units DESC, product_line, sku, region LIMIT :n
""")
_PRODUCT_LINE_PREVIEW = sa.text("""
    SELECT level, product_line, sku, units, revenue, units_share_pct
    FROM analytics.product_line_summary WHERE window_days = 28
    ORDER BY units DESC, product_line, sku LIMIT :n
""")


def _preview(
    engine: Engine, statement: sa.TextClause, header: list[str], right: set[int], empty: str
) -> str:
    with engine.connect() as conn:
        found = conn.execute(statement, {"n": PREVIEW_ROWS})
        rows = [["" if v is None else v for v in row] for row in found]
    return markdown_table(header, rows, right) if rows else empty


def weekly_demand_preview(engine: Engine) -> str:
    """The last published week's largest rows of analytics.weekly_demand, as markdown."""
    return _preview(
        engine,
        _WEEKLY_PREVIEW,
        ["week", "level", "product line", "sku", "region", "units", "customers"],
        {5, 6},
        "No complete week published yet.",
    )


def product_line_preview(engine: Engine) -> str:
    """The largest 28-day rows of analytics.product_line_summary, as markdown."""
    return _preview(
        engine,
        _PRODUCT_LINE_PREVIEW,
        ["level", "product line", "sku", "units 28 d", "revenue 28 d", "units share 28 d %"],
        {3, 4, 5},
        "No sales published in the last 91 days.",
    )
