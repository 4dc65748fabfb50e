"""The weekly table's sums against the daily table, audited in one pass over the lines.

A reader adds up the weekly rows of a group: a sku's week (its regions' rows and its OTHER row),
a product line's week (with its OTHER row), the whole week. Each sum is a set of lines whose
figures are published though no single row shows them, so it can be subtracted like a row: a
sku's week minus its days in the daily table is exactly the lines the daily table withheld. The
planning build audits these sums every round (lifecycle.sales.planning); the guard audits them as
partitions with the generic pair audit (rollup.audit, lifecycle.sales.differencing), and a test
holds the two to the same findings.

Here the structure of the two tables does the work the generic audit does with a wide table per
round. A daily row lies within one sku's day, so it lies inside a sum exactly when every one of
its lines is in the weekly table at the sum's level or below (the group is then its own); and a
sum lies inside a daily row when all its lines sit in that one row. So one statement reads each
line once with its weekly level and daily row, and finds both kinds of remainder at every level:
a sum minus the daily rows inside it, and a daily row minus the sum inside it. Sums against each
other leave nothing: a coarser sum minus the finer sums inside it is its own level's OTHER rows,
each published with at least k customers.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lifecycle.sales import rollup
from lifecycle.sales.source import counted_customers

# The key of the group a reader sums the weekly rows of, per level of the rows summed (a sku's
# week sums the rows of levels 0-1, a line's week 0-2, the week 0-3), as an expression on `l`.
# Labels stand as in the rows' keys (rollup.key_label), so a sum's key begins its rows' keys.
_LINE, _SKU = rollup.key_label("l.product_line"), rollup.key_label("l.sku")
SUM_KEYS = {
    1: f"concat_ws('|', l.week_start, {_LINE}, {_SKU})",
    2: f"concat_ws('|', l.week_start, {_LINE})",
    3: "CAST(l.week_start AS text)",
}
# The lines of some weeks (bind :weeks, ISO dates of their Mondays), as a condition on `l`.
IN_WEEKS = "CAST(l.week_start AS text) = ANY(CAST(:weeks AS text[]))"
# The lines of some product lines' weeks (bind :pair_weeks and :pair_lines, side by side).
IN_PAIRS = f"""(CAST(l.week_start AS text), {_LINE}) IN (
    SELECT * FROM unnest(CAST(:pair_weeks AS text[]), CAST(:pair_lines AS text[])))"""
_NOT_WEEKLY = 99  # the level of a line the weekly table withholds: in no sum

_LEAKING = """
WITH lines AS MATERIALIZED (
    SELECT l.customer_id, l.units, coalesce(w.level, {not_weekly}) AS wl, d.row_key AS dk,
           {key1} AS g1, {key2} AS g2, {key3} AS g3, {weeks} AS whole_week
    FROM pg_temp.sales_lines l
    LEFT JOIN pg_temp.sales_assign w ON w.part = :weekly AND w.line_id = l.line_id
    LEFT JOIN pg_temp.sales_assign d ON d.part = :daily AND d.line_id = l.line_id
    WHERE ({span}) AND ({weeks} OR {pairs}) AND (w.line_id IS NOT NULL OR d.line_id IS NOT NULL)
), days AS (  -- each daily row with the highest weekly level among its lines
    SELECT dk, max(wl) AS top FROM lines WHERE dk IS NOT NULL GROUP BY dk
), summed AS MATERIALIZED (  -- each line in each sum holding it, covered when its day is inside
    SELECT v.level, v.g, x.customer_id, x.units, x.dk,
           coalesce(days.top <= v.level, false) AS covered
    FROM lines x LEFT JOIN days USING (dk)
    CROSS JOIN LATERAL (VALUES (1, x.g1), (2, x.g2), (3, x.g3)) v(level, g)
    WHERE x.wl <= v.level AND (v.level < 3 OR x.whole_week)
), sum_minus_days AS (
    SELECT level, g FROM summed GROUP BY level, g
    HAVING bool_or(covered) AND NOT bool_and(covered)
       AND {uncovered_customers} < :k
), sums_within_a_day AS (
    SELECT level, g, min(dk) AS dk FROM summed GROUP BY level, g
    HAVING count(dk) = count(*) AND min(dk) = max(dk)
), day_minus_sum AS (
    SELECT i.level, i.g FROM sums_within_a_day i JOIN lines x ON x.dk = i.dk
    WHERE x.wl > i.level
    GROUP BY i.level, i.g HAVING {day_customers} < :k
)
SELECT level, g FROM sum_minus_days UNION SELECT level, g FROM day_minus_sum
"""


@dataclass(frozen=True)
class SumScope:
    """Which sums to audit: every sum of `weeks`, and the sku and product-line sums of the
    (week, product line) `pairs`. A sku's or a line's sum, and every daily row it can meet, lie
    within one product line's week; a week's sum changes only when a line of the week becomes
    withheld or published (moving between published rows keeps it whole, and its days covered)."""

    weeks: frozenset[str] = frozenset()
    pairs: frozenset[tuple[str, str]] = frozenset()


def leaking_sums(
    conn: Connection, weekly: str, span: str, k: int, scope: SumScope | None = None
) -> dict[int, set[str]]:
    """The sums (level -> group keys) that leave a remainder of 1..k-1 customers against the
    daily table, from the lines' rows in the `weekly` partition and the daily one as assigned in
    pg_temp.sales_assign; `span` is the weekly partition's condition on the lines. `scope`: only
    those sums are audited (None: every sum). Only group keys leave the database, never a
    customer or a figure."""
    sql = _LEAKING.format(
        not_weekly=_NOT_WEEKLY,
        key1=SUM_KEYS[1],
        key2=SUM_KEYS[2],
        key3=SUM_KEYS[3],
        span=span,
        weeks="true" if scope is None else IN_WEEKS,
        pairs="false" if scope is None else IN_PAIRS,
        uncovered_customers=counted_customers(where="NOT covered"),
        day_customers=counted_customers("x.customer_id", "x.units"),
    )
    scope = scope or SumScope()
    pairs = sorted(scope.pairs)
    params = {
        "weekly": weekly,
        "daily": rollup.DAILY,
        "k": k,
        "weeks": sorted(scope.weeks),
        "pair_weeks": [week for week, _ in pairs],
        "pair_lines": [line for _, line in pairs],
    }
    found: dict[int, set[str]] = {level: set() for level in SUM_KEYS}
    for level, key in conn.execute(sa.text(sql), params):
        found[level].add(key)
    return found


# The (week, product line) of every line the last re-assignments moved in the weekly partition,
# and whether its published or withheld state changed (pg_temp.sales_moved holds such a line once,
# under the row it left or the row it reached; a line that moved between rows, twice).
_MOVED = """
SELECT CAST(l.week_start AS text), {line}, bool_or(m.n = 1)
FROM (SELECT line_id, count(*) AS n FROM pg_temp.sales_moved WHERE part = :weekly
      GROUP BY line_id) m
JOIN pg_temp.sales_lines l USING (line_id)
GROUP BY 1, 2
"""


def scope_after_moves(conn: Connection, weekly: str, found: dict[int, set[str]]) -> SumScope:
    """The sums to audit after the round's merges (before rollup.scope_audit clears the record
    of moved lines): those holding a moved line, every sum of a week where a line became withheld
    or published, and every sum `found` this round (one left waiting for a finer sum's merge is
    audited again). Every other sum holds the same lines, at levels that leave it as it was:
    clean."""
    conn.execute(sa.text(rollup.MOVED_TABLE))  # none yet when no line has moved
    weeks: set[str] = set(found[3])
    pairs: set[tuple[str, str]] = set()
    for level in (1, 2):
        pairs |= {tuple(key.split("|")[:2]) for key in found[level]}
    moved = sa.text(_MOVED.format(line=_LINE))
    for week, line, state_changed in conn.execute(moved, {"weekly": weekly}):
        pairs.add((week, line))
        if state_changed:
            weeks.add(week)
    return SumScope(frozenset(weeks), frozenset(pairs))
