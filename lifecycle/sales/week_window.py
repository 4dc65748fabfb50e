"""The summary's 7-day window: the weekly table's newest week, added up over its regions.

The 7-day block of the product-line summary and the newest week of the weekly table hold the same
sales lines. Until stop 43 both were protected apart: the summary's 7-day window was merged against
the daily table and its longer windows, then the weekly table against all of them, and each table's
rows gave the other's away. Measured Sunday after Sunday (bench/bench_sales_sundays.py), the pair
cost the 7-day window its all row on some nights a 28-day block ends (61% of its units shown on an
8,000-order shop, 81% and 93% on the 50,000-order shop), and merges made for the 7-day window took
one 84-day block of the 50,000-order shop down to 89% for the twelve weeks it was shown.

So the 7-day window is derived from the weekly table once that is built, and nothing else: a sku's
row holds its week when every line of the sku lies in the sku's weekly rows (its regions and its
OTHER row), a product line's OTHER row holds its other lines when every one of them lies in the
product line's weekly rows, and the all row holds the rest when the weekly table shows the week's
all row. Every row is a union of whole weekly rows of the newest week, so every figure of the
window is a sum of published weekly figures: a reader learns nothing from it that the weekly table
does not say. The span of the published rows is unchanged, so the exact audit
(lifecycle.sales.derivable) finds no cell through the window that it did not find without it, and
each row covers at least k customers because each weekly row in it does. Each row also holds every
line of the week its labels match, as every published row does: a reader takes a sku's 7-day row
for the sku's week, and the guard places lines in rows by their labels. A line the weekly table
withholds therefore makes its sku and its product line not whole: left out of that test, as in a
first version of this, such lines were placed by the guard in a sku's row that did not count them,
and the guard failed the 50,000-order shop's 15th Sunday. So the window shows the units the weekly
table shows of the week, less those of product lines it withholds a line of when it withholds the
week's all row.

What a reader can still do with the window is subtract it from a 28-day block that ends the same
Sunday, or subtract other tables' rows from its rows: remainders that are unions of atoms, which
the pair audits find (rollup.audit). The weekly build audits them once its rows settle, and for
each one found moves up a weekly row of the newest week under the window's row (`rows_to_change`),
then settles again (planning._weekly).
"""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lifecycle.sales.rollup import Partition
from lifecycle.sales.source import counted_customers

DAYS = 7

# Each line of the newest week placed in the window's row: its sku's where every line of the sku
# sits in the sku's weekly rows, else its product line's OTHER row where every line of the product
# line outside those skus sits at or below the product line's weekly rows, else the window's all
# row, where the weekly table withholds no line of the week (its all row is shown). A line the
# weekly table withholds makes its sku and product line not whole, so that each published row holds
# every line of the week that its labels match, as a reader (and the guard) reads it.
_DERIVE = """
WITH week AS (
    SELECT l.line_id, l.product_line, l.sku, a.level  -- NULL: withheld by the weekly table
    FROM pg_temp.sales_lines l
    LEFT JOIN pg_temp.sales_assign a ON a.part = :weekly AND a.line_id = l.line_id
    WHERE l.week_start = :week
), by_sku AS (
    SELECT *, bool_and(coalesce(level <= 1, false)) OVER (PARTITION BY product_line, sku) AS whole
    FROM week
), by_line AS (
    SELECT *,
           bool_and(whole OR coalesce(level <= 2, false)) OVER (PARTITION BY product_line) AS rest
    FROM by_sku
)
INSERT INTO pg_temp.sales_assign (part, line_id, row_key, level)
SELECT :p, line_id,
       CASE WHEN whole THEN {sku} WHEN rest THEN {line} ELSE {top} END,
       CASE WHEN whole THEN 0 WHEN rest THEN 1 ELSE 2 END
FROM by_line
WHERE whole OR rest OR NOT EXISTS (SELECT FROM week WHERE level IS NULL)
"""


def derive(conn: Connection, window: Partition, weekly: str, week: date) -> None:
    """Assigns the lines of `week` (the newest week of the `weekly` partition) to the rows of the
    7-day `window` (a partition at rollup.WINDOW_LEVELS), as unions of whole weekly rows."""
    conn.execute(sa.text("DELETE FROM pg_temp.sales_assign WHERE part = :p"), {"p": window.name})
    sku, line, top = (window.key(level) for level in window.levels)
    conn.execute(
        sa.text(_DERIVE.format(sku=sku, line=line, top=top)),
        {"p": window.name, "weekly": weekly, "week": week},
    )


# For each derived row to change (a row of the window, of one of its sums, or of a longer window
# whose 7-day rows inside it are to change), the weekly row of the newest week holding some of its
# lines that sits highest, the one with the fewest customers among equals: moving it up changes the
# window's rows over those lines (a sku's OTHER row moved up leaves the sku not shown whole, a
# product line's OTHER row moved into the all row the product line not whole).
_ROW_TO_MOVE = """
SELECT DISTINCT ON (g.ord) w.row_key
FROM unnest(CAST(:parts AS text[]), CAST(:keys AS text[])) WITH ORDINALITY g(part, key, ord)
JOIN pg_temp.sales_assign d ON d.part = g.part AND d.row_key = g.key
JOIN pg_temp.sales_lines l ON l.line_id = d.line_id AND l.week_start = :week
JOIN pg_temp.sales_assign w ON w.part = :weekly AND w.line_id = d.line_id
GROUP BY g.ord, w.row_key, w.level
ORDER BY g.ord, w.level DESC, {customers}, w.row_key
"""


def rows_to_change(
    conn: Connection, weekly: str, week: date, rows: list[tuple[str, str]]
) -> set[str]:
    """The weekly rows of `week` to merge so that each of `rows` ((partition, key) pairs whose
    lines of the week lie in the 7-day window's rows to change) changes."""
    if not rows:
        return set()
    params = {
        "parts": [part for part, _ in rows],
        "keys": [key for _, key in rows],
        "week": week,
        "weekly": weekly,
    }
    sql = _ROW_TO_MOVE.format(customers=counted_customers("l.customer_id", "l.units"))
    return {key for (key,) in conn.execute(sa.text(sql), params)}
