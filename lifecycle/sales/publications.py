"""Which rows the planning tables published before: what the next builds are audited against.

A reader who keeps every Sunday's copy holds, beside tonight's tables, subtractions the audits of
one night's tables cannot see:

- Tonight's longer blocks are sums of earlier ones: an 84-day block's row of a sku, minus its
  28-day rows of the block's first two 28-day blocks (published four and eight weeks ago), is its
  third; a 28-day block's row minus its weeks' 7-day rows is its newest week.
- A week is shown in thirteen copies of the weekly table, and a block in up to twelve copies of
  the summary: a copy that shows one merged otherwise than its first copy gives the difference
  away (the first copy's line row minus a sku shown tonight is the rest of that row).

(While the summary's windows slid by a week, two copies a week apart gave a week that had left
the window, and a few months of copies every week of a sku; the windows are now blocks that do
not overlap from one copy to the next: lifecycle/sales/blocks.py.)

So each build keeps which rows it published (lifecycle.published_summary_rows and
published_weekly_rows: levels, weeks, windows and where they end, product lines, skus and
regions, never a figure) for every Sunday whose tables share a day with a later build's span,
and the next builds place their lines in the rows of each week's and each block's first copy, as
a reader of the old copies can, and audit both tables against them as against tables they cannot
change (planning.assign_earlier_tables). Later copies of a week or a block start from its
earlier copy's merges, and both builds hold any row that would show a line below its row in the
week's or the block's first copy (planning._rows_finer_than_first_copies), so the first copy is
the finest a reader holds.

The earlier rows are placed over today's lines. After a late order in their weeks they can derive
a cell by themselves that the copy a reader kept does not; planning._break_derivations then hides
that cell from tonight's rows and counts it, and the night goes on.
"""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lifecycle.sales import blocks

# A publication whose tables all ended before tonight's span began shares no line with tonight's
# tables: nothing to audit against.
_EARLIER = sa.text("""
    SELECT max(as_of_date) FROM lifecycle.published_summary_rows
    WHERE as_of_date < :day AND as_of_date >= :first
""")
_WINDOWS = sa.text("""
    SELECT DISTINCT window_days, window_end FROM lifecycle.published_summary_rows
    WHERE as_of_date = :day ORDER BY window_days
""")
_FIRST_DAY = sa.text("""
    SELECT least((SELECT min(window_end - window_days + 1) FROM lifecycle.published_summary_rows
                  WHERE as_of_date = :day),
                 (SELECT min(week_start) FROM lifecycle.published_weekly_rows
                  WHERE as_of_date = :day))
""")
_RECORD_SUMMARY = """
    DELETE FROM lifecycle.published_summary_rows WHERE as_of_date = :day;
    INSERT INTO lifecycle.published_summary_rows (as_of_date, window_days, window_end, level,
                                                  product_line, sku)
    SELECT DISTINCT as_of_date, window_days, window_end, level, product_line, sku
    FROM analytics.product_line_summary WHERE as_of_date = :day;
    DELETE FROM lifecycle.published_summary_rows WHERE as_of_date < :keep_from
"""
_RECORD_WEEKLY = """
    DELETE FROM lifecycle.published_weekly_rows WHERE as_of_date = :day;
    INSERT INTO lifecycle.published_weekly_rows (as_of_date, week_start, level, product_line, sku,
                                                 region)
    SELECT DISTINCT CAST(:day AS date), week_start, level, product_line, sku, region
    FROM analytics.weekly_demand;
    DELETE FROM lifecycle.published_weekly_rows WHERE as_of_date < :keep_from
"""


def earlier_publication(conn: Connection, day: date, first: date) -> date | None:
    """The Sunday of the last summary published for an earlier week that falls in the span of a
    build for `day` (from `first`); None on a first build, or after a pause longer than the span."""
    return conn.execute(_EARLIER, {"day": day, "first": first}).scalar()


def kept_windows(conn: Connection, earlier: date) -> list[tuple[int, date]]:
    """(length, last day) of each window of the summary published for `earlier`."""
    return [(days, last) for days, last in conn.execute(_WINDOWS, {"day": earlier})]


def _record(conn: Connection, statements: str, day: date, keep_from: date) -> None:
    for statement in statements.split(";"):
        conn.execute(sa.text(statement), {"day": day, "keep_from": keep_from})


def record_summary(conn: Connection, day: date, keep_from: date) -> None:
    """Keeps which rows the summary for `day` just published (replacing an earlier build for the
    same Sunday) beside those published for the Sundays from `keep_from`, the first day its span
    reads; older ones go: no later build reads a day before it, so none of their weeks or blocks
    lies in a later span."""
    _record(conn, _RECORD_SUMMARY, day, keep_from)


def record_weekly(conn: Connection, day: date, keep_from: date) -> None:
    """The same for the weekly table just built for `day`."""
    _record(conn, _RECORD_WEEKLY, day, keep_from)


def first_copies_of_weeks(day: date, first: date) -> str:
    """SQL: the rows the weekly table showed for each week from `first` the first time it was
    published before `day`. A week is shown in thirteen weekly copies; each build starts from the
    last one's merges, so a later copy is the first one with rows merged, and a reader who kept
    them all knows no more of the week than its first copy says."""
    return f"""(
    SELECT r.* FROM lifecycle.published_weekly_rows r
    JOIN (SELECT week_start, min(as_of_date) AS first_copy FROM lifecycle.published_weekly_rows
          WHERE as_of_date < DATE '{day.isoformat()}' AND week_start >= DATE '{first.isoformat()}'
          GROUP BY week_start) f
      ON f.week_start = r.week_start AND f.first_copy = r.as_of_date)"""


def first_copies_of_blocks(days: int, day: date, first: date) -> str:
    """SQL: the rows the summary showed for each block of `days` days lying in [`first`, `day`]
    the first time it was published before `day`, with the Monday of the block's last week as
    `week_start` (so that a line's block and a row's block have one key). A 28-day block is shown
    for four weeks, an 84-day one for twelve, each build starting from the last one's merges."""
    return f"""(
    SELECT r.window_end - 6 AS week_start, r.level, r.product_line, r.sku
    FROM lifecycle.published_summary_rows r
    JOIN (SELECT window_end, min(as_of_date) AS first_copy FROM lifecycle.published_summary_rows
          WHERE window_days = {days} AND as_of_date < DATE '{day.isoformat()}'
            AND window_end - {days} + 1 >= DATE '{first.isoformat()}'
            AND window_end = {blocks.block_end_sql("window_end - 6", days)}
          GROUP BY window_end) f
      ON f.window_end = r.window_end AND f.first_copy = r.as_of_date
    WHERE r.window_days = {days})"""


def earliest_line(conn: Connection, earlier: date | None, first: date) -> date:
    """The first sales date a build must read: its own span's first, or the first day the earlier
    publication's tables showed when that is before."""
    if earlier is None:
        return first
    shown = conn.execute(_FIRST_DAY, {"day": earlier}).scalar()
    return min(first, shown or first)
