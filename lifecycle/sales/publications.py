"""Which rows the planning tables published before: what the next build is audited against.

A reader who keeps last week's copies holds, beside this week's tables, two kinds of subtraction
the audits of one night's tables cannot see:

- The summary's windows end on the last complete ISO week and slide by a week every Monday. Last
  week's 28-day row of a sku, minus this week's, plus this week's 7-day row, is the week that just
  left the window, whatever the weekly table showed of it (the 91-day windows give the 13th week
  back the same way). On the synthetic shops such a week of one to four buyers was given away on
  most week turns.
- Twelve of the weekly table's 13 weeks were published last week too, each built afresh: a week
  whose cells merged differently gives away the difference (last week's line row minus the sku
  shown tonight is the rest of last week's row).

So each build keeps which rows it published (lifecycle.published_summary_rows and
published_weekly_rows: levels, weeks, windows, product lines, skus and regions, never a figure),
and the next build for a later Sunday places the lines of that publication's span in its rows,
as a reader of the old copies can, and audits both tables against them as against tables it
cannot change (planning.assign_earlier_tables): a cell under k that the two publications together
derive has a cell of tonight's merged, as any other chain. What is kept is the last publication
for an earlier Sunday and tonight's; the ones before are no longer audited against (docs/sales.md
says what that leaves open, and why auditing against every copy would not be the answer).

The earlier rows are placed over today's lines. After a late order in their weeks they can derive
a cell by themselves that the copy a reader kept does not; planning._break_derivations then hides
that cell from tonight's rows and counts it, and the night goes on.
"""

from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

# A publication whose windows all ended before tonight's 91-day window began shares no line with
# tonight's tables: nothing to audit against.
REACH_DAYS = 91

_EARLIER = sa.text("""
    SELECT max(as_of_date) FROM lifecycle.published_summary_rows
    WHERE as_of_date < :day AND as_of_date > :day - :reach
""")
_RECORD_SUMMARY = """
    DELETE FROM lifecycle.published_summary_rows WHERE as_of_date = :day;
    INSERT INTO lifecycle.published_summary_rows (as_of_date, window_days, level, product_line, sku)
    SELECT DISTINCT as_of_date, window_days, level, product_line, sku
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


def earlier_publication(conn: Connection, day: date) -> date | None:
    """The Sunday of the last summary published for an earlier week whose windows reach into the
    span of a build for `day`; None on a first build, or after a pause of over 13 weeks."""
    return conn.execute(_EARLIER, {"day": day, "reach": REACH_DAYS}).scalar()


def _record(conn: Connection, statements: str, day: date, earlier: date | None) -> None:
    for statement in statements.split(";"):
        conn.execute(sa.text(statement), {"day": day, "keep_from": earlier or day})


def record_summary(conn: Connection, day: date, earlier: date | None) -> None:
    """Keeps which rows the summary for `day` just published (replacing an earlier build for the
    same Sunday) beside those of `earlier`, the publication it was audited against; older ones
    go."""
    _record(conn, _RECORD_SUMMARY, day, earlier)


def record_weekly(conn: Connection, day: date, earlier: date | None) -> None:
    """The same for the weekly table just built for `day`."""
    _record(conn, _RECORD_WEEKLY, day, earlier)


def earliest_line(earlier: date | None, first: date, longest: int) -> date:
    """The first sales date a build must read: its own span's first, or the first day of the
    earlier publication's `longest` window when that starts before."""
    if earlier is None:
        return first
    return min(first, earlier - timedelta(days=longest - 1))
