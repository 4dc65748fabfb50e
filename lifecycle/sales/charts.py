"""A 28-day picture of demand per region: SVG small multiples and a sparkline table.

Drawn from the published daily table only: the chart as markdown (the SVG inline as a data URI) so
the Dagster UI shows it beside the materialization that published the figures, the table as cells
(lifecycle.shown_tables). The guard reads the chart's SVG decoded (lifecycle.guard.provenance).
"""

from __future__ import annotations

import base64
from datetime import date, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lifecycle.shown_tables import ShownTable

CHART_DAYS = 28


_UNITS_BY_REGION = sa.text("""
    SELECT region, sales_date, sum(units) FROM analytics.sales_volume_daily
    WHERE sales_date > :last - :days AND sales_date <= :last GROUP BY region, sales_date
""")
_BARS = "▁▂▃▄▅▆▇█"


def _sparkline(values: list[int]) -> str:
    top = max(values) or 1
    return "".join(_BARS[min(len(_BARS) - 1, v * len(_BARS) // (top + 1))] for v in values)


def _svg_small_multiples(series: dict[str, list[int]], first: date, last: date) -> str:
    # One panel per region, each on its own scale: the shape of demand is what a planner reads.
    cols, width, height, pad = 4, 190, 58, 6
    rows = -(-len(series) // cols)
    title = f"Daily units per region, {first.isoformat()} to {last.isoformat()}"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{cols * width}" '
        f'height="{rows * height + 22}" font-family="sans-serif" font-size="11">',
        f'<text x="4" y="14" fill="#333">{title} (each panel on its own scale)</text>',
    ]
    for n, (region, values) in enumerate(series.items()):
        x0, y0 = (n % cols) * width, 22 + (n // cols) * height
        top = max(values) or 1
        step = (width - 2 * pad) / max(len(values) - 1, 1)
        bottom = y0 + height - pad
        points = " ".join(
            f"{x0 + pad + k * step:.1f},{bottom - (v / top) * (height - 24):.1f}"
            for k, v in enumerate(values)
        )
        label = f"{region}: {sum(values):,} units, max {top:,}/day"
        parts += [
            f'<rect x="{x0 + 1}" y="{y0 + 1}" width="{width - 2}" height="{height - 2}" '
            f'fill="#fafafa" stroke="#ddd"/>',
            f'<text x="{x0 + pad}" y="{y0 + 13}" fill="#333">{label}</text>',
            f'<polyline points="{points}" fill="none" stroke="#4f6bed" stroke-width="1.5"/>',
        ]
    parts.append("</svg>")
    return "".join(parts)


def units_per_region(
    engine: Engine, last: date, days: int = CHART_DAYS
) -> tuple[str, ShownTable | None]:
    """Published units per region and day over `days` days up to `last`: the chart as markdown
    (or why there is none) and a table of each region's units with a sparkline."""
    first = last - timedelta(days=days - 1)
    calendar = [first + timedelta(days=n) for n in range(days)]
    with engine.connect() as conn:
        rows = conn.execute(_UNITS_BY_REGION, {"last": last, "days": days}).all()
    if not rows:
        return f"No published sales between {first.isoformat()} and {last.isoformat()}.", None
    by_region: dict[str, dict[date, int]] = {}
    for region, day, units in rows:
        by_region.setdefault(region, {})[day] = int(units)
    largest_first = sorted(by_region.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    series = {region: [per_day.get(d, 0) for d in calendar] for region, per_day in largest_first}
    svg = base64.b64encode(_svg_small_multiples(series, first, last).encode()).decode()
    header = [
        "region",
        f"units ({days} d)",
        f"daily units {first.isoformat()} → {last.isoformat()}",
        "last day",
    ]
    table = ShownTable.of(
        header,
        [[region, sum(units), _sparkline(units), units[-1]] for region, units in series.items()],
        {1, 3},
    )
    return f"![Daily units per region](data:image/svg+xml;base64,{svg})", table
