"""Which rows the product-line summary published before: what the next build is audited against.

The summary's windows end on the last complete ISO week and slide by a week every Monday. A reader
who kept last week's copy holds, beside this week's, last week's 28-day row of a sku; minus this
week's, plus this week's 7-day row, it is the week that just left the window, whatever the weekly
table showed of it (and the 91-day windows give the 13th week back the same way). A build audits
its own tables together, so it could not see this: on the synthetic shops such a week of one to
four buyers was given away on most week turns.

So each summary build keeps which rows it published (lifecycle.published_summary_rows: levels,
product lines and skus, never a figure) and the next build for a later Sunday places the lines of
that publication's windows in its rows, as a reader of the old copy can, and audits its own
windows, and the weekly table, against them as against a table it cannot change
(planning.assign_earlier_summary): a cell under k that the two publications together derive has a
cell of tonight's merged, as any other chain. What is kept is the last publication for an earlier
Sunday and tonight's; the one before is no longer audited against (docs/sales.md says what that
leaves open, and why auditing against every copy would not be the answer).

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
_RECORD = sa.text("""
    DELETE FROM lifecycle.published_summary_rows WHERE as_of_date = :day;
    INSERT INTO lifecycle.published_summary_rows (as_of_date, window_days, level, product_line, sku)
    SELECT DISTINCT as_of_date, window_days, level, product_line, sku
    FROM analytics.product_line_summary WHERE as_of_date = :day;
    DELETE FROM lifecycle.published_summary_rows WHERE as_of_date < :keep_from
""")


def earlier_summary(conn: Connection, day: date) -> date | None:
    """The Sunday of the last summary published for an earlier week whose windows reach into the
    span of a build for `day`; None on a first build, or after a pause of over 13 weeks."""
    return conn.execute(_EARLIER, {"day": day, "reach": REACH_DAYS}).scalar()


def record_summary(conn: Connection, day: date, earlier: date | None) -> None:
    """Keeps which rows the summary for `day` just published (replacing an earlier build for the
    same Sunday) beside those of `earlier`, the publication it was audited against; older ones
    go."""
    keep_from = earlier or day
    for statement in _RECORD.text.split(";"):
        conn.execute(sa.text(statement), {"day": day, "keep_from": keep_from})


def earliest_line(earlier: date | None, first: date, longest: int) -> date:
    """The first sales date a build must read: its own span's first, or the first day of the
    earlier publication's `longest` window when that starts before."""
    if earlier is None:
        return first
    return min(first, earlier - timedelta(days=longest - 1))
