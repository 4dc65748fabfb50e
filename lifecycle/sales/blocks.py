"""Fixed blocks of days counted from one Monday: the periods the sales tables publish.

A window that slides by a week every Monday gives a reader who keeps every week's copy a new
equation per week: last week's 28-day total of a sku minus this week's is `week(n) - week(n-4)`,
the 91-day totals give `week(n) - week(n-13)`, and since 13 - 3 × 4 = 1 a few months of copies
give every week of the sku alone, whatever the tables withheld (on the 20,000-order synthetic shop,
18 weekly copies gave 676 sku-weeks of fewer than k buyers; docs/sales.md). Blocks counted from
one Monday never overlap: a copy either shows the same block again or another one, so keeping
copies adds no equation. Their lengths divide each other (7 | 28 | 84), so every week lies in one
28-day block and every 28-day block in one 84-day block, and a long block is a sum of whole
short ones, never a shifted one.

The differentially private release uses the same 28-day blocks (lifecycle/sales/dp.py).
"""

from __future__ import annotations

from datetime import date, timedelta

EPOCH = date(2001, 1, 1)  # a Monday: every block of whole weeks starts a multiple of its length on


def block_end(day: date, days: int) -> date:
    """The last day of the last complete block of `days` days (counted from EPOCH) up to `day`."""
    return day - timedelta(days=((day - EPOCH).days + 1) % days)


def block_bounds(day: date, days: int) -> tuple[date, date]:
    """The first and last day of that block."""
    last = block_end(day, days)
    return last - timedelta(days=days - 1), last


def is_block(last: date, days: int) -> bool:
    """Whether the `days` days ending on `last` are one of the blocks."""
    return ((last - EPOCH).days + 1) % days == 0


def block_end_sql(week_start: str, days: int) -> str:
    """SQL: the last day of the block of `days` days (a multiple of 7) holding the ISO week that
    starts on the date `week_start`."""
    epoch = f"DATE '{EPOCH.isoformat()}'"
    return f"({epoch} + (({week_start} - {epoch}) / {days} + 1) * {days} - 1)"
