"""Planning tables at the grains a planner plans on, built from the raw zone and rolled up.

analytics.weekly_demand: units per ISO week × sku × region over the last 13 complete weeks.
analytics.product_line_summary: units per sku and product line over the last complete week, the
last complete 28-day block and the last complete 84-day block up to its as_of_date (a Sunday),
blocks counted from one Monday so that no two copies overlap (lifecycle/sales/blocks.py). Its
7-day window is the weekly table's newest week added up over its regions, derived once the
weekly rows settle (lifecycle/sales/week_window.py).
A cell under k customers is not withheld but rolled up its hierarchy (region → OTHER, sku → its
product line's OTHER, line → OTHER), so units not visible at a fine grain are counted once,
correctly, one level up (lifecycle/sales/rollup.py).

Publishing several grains beside the daily table opens subtractions; each build then merges the
cells that would leave a remainder under k (secondary suppression) until none is left. The summary's
28- and 84-day windows are built first, against the daily table and each other, keeping the 28-day
sku cells (a planner's per-sku totals) and merging the smaller partner instead; the weekly table is
built second, against the daily table and those windows, so that a remainder between a 28-day sku
total and its weeks is closed by rolling up the smallest week, not the sku's 28-day total; then
the 7-day window, which adds up the weekly table's newest week, and what it lets a reader derive.
Both are also audited against the rows earlier Sundays' tables first showed of each week and
block in their span, which a reader who kept those copies can subtract from tonight's
(lifecycle/sales/publications.py).
The guard recomputes the same remainders from what was published (lifecycle/sales/differencing.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lifecycle.policy import Policy
from lifecycle.sales import (
    blocks,
    derivable,
    freshness,
    publications,
    rollup,
    week_window,
    weekly_sums,
)
from lifecycle.sales.catalogue import (
    UNLISTED,
    AmbiguousSkus,
    SkusNotListed,
    ambiguous_skus,
    skus_not_listed,
)
from lifecycle.sales.daily import LOCK_KEY, SalesError, build_transaction, last_complete_day
from lifecycle.sales.source import Source, counted_customers
from lifecycle.sales.uncounted import UncountedLines, uncounted_lines
from lifecycle.sales.utility import Utility, measure_utility

WEEKS = 13
WINDOWS = (7, 28, 84)  # fixed blocks, each a sum of whole shorter ones (lifecycle/sales/blocks.py)
# The windows the summary build protects; the 7-day one is the weekly table's newest week added up
# over its regions, derived once the weekly table is built (lifecycle/sales/week_window.py).
BLOCK_WINDOWS = WINDOWS[1:]
WEEK_WINDOW = WINDOWS[0]
assert WEEK_WINDOW == week_window.DAYS
MAX_ROUNDS = 100
# Times the summary is rebuilt in one night for cells the weekly build finds it must move
# (`build_planning_tables`); after the last, such a cell is counted as before (`_break_derivations`).
SUMMARY_REBUILDS = 3  # merges per build; each round moves a cell one level up, so this is never hit
WEEKLY = "weekly_demand"
WEEKLY_TABLE = "analytics.weekly_demand"
SUMMARY_TABLE = "analytics.product_line_summary"


def window_part(days: int) -> str:
    """The partition name of one window of the product-line summary."""
    return f"product_line_summary_{days}d"


def earlier_part(days: int | None) -> str:
    """The partition name of one window of the summary published for an earlier Sunday, or
    (None) of the weekly table published with it."""
    return f"{WEEKLY}_earlier" if days is None else f"{window_part(days)}_earlier"


def is_earlier(part: str) -> bool:
    """Whether `part` is a table published for an earlier Sunday (`assign_earlier_tables`)."""
    return part.endswith("_earlier")


@dataclass
class PlanningBuild:
    """One rebuilt planning table: its size, what it shows, and what the protection cost."""

    table: str
    as_of_date: date
    rows: int = 0
    seconds: float = 0.0
    units_total: int = 0
    units_published: int = 0
    units_per_window: dict[int, tuple[int, int]] = field(default_factory=dict)  # the summary's
    units_per_week: dict[date, tuple[int, int]] = field(default_factory=dict)  # the weekly table's
    rows_per_level: dict[str, int] = field(default_factory=dict)
    cells_merged: int = 0
    cells_carried: int = 0  # of those, started from: the last build's (this week's or last)
    rounds: int = 0
    utility: Utility | None = None
    catalogue: AmbiguousSkus = AmbiguousSkus(table="")  # skus it lists under several lines
    uncounted: UncountedLines = UncountedLines(table="")  # lines of the span no table counts
    not_in_catalogue: SkusNotListed = SkusNotListed()  # sold in the span, counted as UNLISTED
    mode: str = "rebuilt"  # or "unchanged": nothing it depends on moved since its last build
    audited_against: date | None = None  # the Sunday of the publication it was audited against
    earlier_parts: list[str] = field(default_factory=list)  # earlier copies, as partitions
    given_away_before: int = 0  # cells under k that earlier tables derive without tonight's

    def metadata(self) -> dict[str, object]:
        """Counts and shares only, for the planning asset's materialization."""
        if self.mode == "unchanged":
            return {
                "table": self.table,
                "as_of_date": self.as_of_date.isoformat(),
                "mode": self.mode,
                "rows": self.rows,
                "seconds": round(self.seconds, 3),
                **self.catalogue.metadata(),
            }
        share = _share(self.units_total, self.units_published)
        return {
            "table": self.table,
            "as_of_date": self.as_of_date.isoformat(),
            "mode": self.mode,
            "rows": self.rows,
            "rows_per_level": self.rows_per_level,
            "units_total": self.units_total,
            "units_published": self.units_published,
            "units_published_pct": round(100 * share, 2),
            **(
                {"units_published_pct_per_window": _shares_per_window(self.units_per_window)}
                if self.units_per_window
                else {}
            ),
            **_weakest_week(self.units_per_week),
            "cells_merged_against_differencing": self.cells_merged,
            "cells_carried_from_the_last_build": self.cells_carried,
            "suppression_rounds": self.rounds,
            "audited_against_summary_of": (
                self.audited_against.isoformat() if self.audited_against else None
            ),
            "cells_derivable_from_earlier_tables_alone": self.given_away_before,
            "seconds": round(self.seconds, 3),
            **self.catalogue.metadata(),
            **self.uncounted.metadata(),
            **self.not_in_catalogue.metadata(),
            **(self.utility.metadata() if self.utility else {}),
        }


def _share(total: int, published: int) -> float:
    return published / total if total else 1.0


def _shares_per_window(units: dict[int, tuple[int, int]]) -> dict[str, float]:
    return {f"{days}d": round(100 * _share(*units[days]), 2) for days in sorted(units)}


def _weakest_week(units: dict[date, tuple[int, int]]) -> dict[str, object]:
    """The weekly table's week that shows the smallest share of its units, beside the table's
    share over its 13 weeks: a week that lost its all row stays so for the 13 weeks it is shown
    (a later copy may not be finer than the first), and the 13 weeks' share hid it (a week at 77%
    on an 8,000-order shop whose table read 95.5%)."""
    if not units:
        return {}
    week = min(units, key=lambda w: (_share(*units[w]), w))
    return {
        "weakest_week": week.isoformat(),
        "weakest_week_units_published_pct": round(100 * _share(*units[week]), 2),
    }


def _window_showing_least(units: dict[int, tuple[int, int]]) -> tuple[int, int]:
    """The (units, published) of the summary's window that shows the smallest share of its units
    (the longest of equals): the summary's headline share, so that no window falls below the
    target unseen. Until stop 42 it was the longest window's alone, and a 7-day window that
    showed 61% of its units on an 8,000-order shop was reported as 100%."""
    days = min(units, key=lambda d: (_share(*units[d]), -d))
    return units[days]


def window_end(day: date) -> date:
    """The Sunday that ends the last complete ISO week up to `day`: where both planning tables end.

    Planners plan weekly, and a window that ends on the last complete day moves every row every
    night, so nothing could be left as it is; anchored on the week, the six nights after a Sunday
    read exactly the same lines and the tables are rebuilt only when the week turns or a late
    order lands in their span (docs/sales.md, "The nightly cost of the planning tables")."""
    return day - timedelta(days=(day.weekday() + 1) % 7)


def weekly_span(day: date) -> tuple[date, date]:
    """Mondays of the first and last of the WEEKS complete ISO weeks up to `day`."""
    last = window_end(day) - timedelta(days=6)
    return last - timedelta(weeks=WEEKS - 1), last


def lines_span(end: date) -> tuple[date, date]:
    """Sales dates [first, after) that either planning table ending on `end` reads."""
    first_week, _ = weekly_span(end)
    first_window, _ = blocks.block_bounds(end, max(WINDOWS))
    return min(first_week, first_window), end + timedelta(days=1)


def weekly_partition(day: date) -> rollup.Partition:
    first, last = weekly_span(day)
    return rollup.Partition(
        WEEKLY,
        "week_start",
        f"week_start BETWEEN DATE '{first.isoformat()}' AND DATE '{last.isoformat()}'",
        rollup.WEEKLY_LEVELS,
    )


def window_partition(
    day: date, days: int, name: str | None = None, last: date | None = None
) -> rollup.Partition:
    """One window of the summary built for `day`: the last complete block of `days` days up to
    it, or the window that ends on `last` (a copy kept from before the windows were blocks)."""
    last = last or blocks.block_end(day, days)
    return rollup.Partition(
        name or window_part(days),
        f"'{days}'",
        f"sales_date > DATE '{last.isoformat()}' - {days} AND sales_date <= DATE '{last.isoformat()}'",
        rollup.WINDOW_LEVELS,
    )


def _label(part: rollup.Partition, attr: str) -> str:
    cases = " ".join(f"WHEN {n} THEN {getattr(level, attr)}" for n, level in enumerate(part.levels))
    return f"min(CASE a.level {cases} END)"


def _level_name(part: rollup.Partition) -> str:
    cases = " ".join(f"WHEN {n} THEN '{level.name}'" for n, level in enumerate(part.levels))
    return f"CASE a.level {cases} END"


def _published_rows(part: rollup.Partition) -> str:
    """SELECT of one row per published cell of `part`, from the line assignment."""
    return f"""
    SELECT a.row_key, {_level_name(part)} AS level, min(l.week_start) AS week_start,
           {_label(part, "product_line")} AS product_line, {_label(part, "sku")} AS sku,
           {_label(part, "region")} AS region,
           count(DISTINCT l.order_id) AS orders, sum(l.units) AS units, sum(l.revenue) AS revenue,
           {counted_customers("l.customer_id", "l.units")} AS customers
    FROM pg_temp.sales_assign a JOIN pg_temp.sales_lines l USING (line_id)
    WHERE a.part = '{part.name}'
    GROUP BY a.row_key, a.level
    """


def _suppress(
    conn: Connection,
    moving: list[rollup.Partition],
    fixed: list[str],
    k: int,
    protected: str | None = None,
    sums: bool = False,
    forbidden_at_start: set[str] | None = None,
    carried: set[str] | None = None,
    summed: list[str] | None = None,
    upstream: dict[str, set[str]] | None = None,
    first_copy: str | None = None,
) -> tuple[set[str], int, int]:
    """Assigns the `moving` partitions, merging their cells upward until no remainder between
    any of them and the `fixed` ones covers fewer than k customers. Returns the cells merged
    (their keys, `carried` ones included), the rounds it took, and how many cells under k the
    fixed partitions derive alone, which no merge of this build can hide (`_break_derivations`).

    The cells merged for a remainder are its partners, the smallest rows inside it, as many as
    its customers need to reach k counted with theirs (rollup.Remainder.partners_to_merge), when
    they are movable and the outer row belongs to the `protected` partition (the 28-day window a
    planner sums per sku), or the outer row is fixed: as statistical offices do, the small cells
    go, never the top seller. Otherwise the outer row moves up (a fixed inner partner, such as the
    daily table, cannot move).

    `sums` (the weekly build): every round, beside the pairs, the sums a reader adds up from the
    weekly rows (WEEKLY_SUMS) are audited against the daily table, and each sum that leaves a
    remainder has a row merged above it (`_rows_to_merge_for_sums`). `forbidden_at_start`: cells
    never to publish, decided before the first round (not counted as merged). `carried`: the
    cells the last build for the same Sunday merged (freshness.carried_merges); they start
    merged, so a rebuild after a late order settles in a round or two instead of five to seven,
    and the rounds still go on until no audit finds anything. `summed`: fixed partitions of sums
    of another table's rows (the summary's, SUMMARY_SUMS), audited in pairs like the `fixed` ones
    but left out of the exact audit: their rows are sums of rows it already has, and a window's
    sum, one row over every product line, would join every group of product lines into one.
    `upstream`: fixed partitions built tonight (the summary's windows, for the weekly build),
    each with a set that receives the rows of theirs that a cell derivable without this build's
    rows needs (`_break_derivations`); the caller rebuilds them with those merged.

    `first_copy` (the weekly build): the newest week, shown tonight for the first time. Each
    round, while its lines that reach k in no row (not even its all row) have 1..k-1 buyers, its
    smallest product lines are merged into its all row (`_top_up_under_k`), so that its first
    copy withholds nothing it need not. A first copy that withholds lines keeps them withheld in
    the twelve copies after it (a later copy may not be finer), and the next 28- and 84-day blocks
    show them in their rows: on the night a block ended, a cell of those lines was derivable
    through the block's all row, and the newest week's all row went to close it (the 8,000-order
    shop's newest week and 7-day window at 76.8% of their units that night).

    When neither leaves a remainder, the exact audit (lifecycle.sales.derivable) looks for a cell
    under k that a longer chain of published rows derives; each one found merges a cell of the
    chain (`_break_derivations`), and the rounds go on until no audit finds anything. After the
    first, an exact audit reads only the groups of product lines whose rows moved since the one
    before: the others have not changed and were clean."""
    start = forbidden_at_start or set()
    forbidden: dict[str, set[str]] = {p.name: start | (carried or set()) for p in moving}
    sum_scope: weekly_sums.SumScope | None = None  # the sums to audit again; None: every sum
    sums_found: dict[int, set[str]] = {}
    touched: set[str] | None = None  # product lines changed since the last exact audit; None: all
    names = {p.name for p in moving}
    everything = [p.name for p in moving] + fixed
    paired = everything + (summed or [])
    for part in moving:
        rollup.assign(conn, part, k, forbidden[part.name])
    found = rollup.audit(conn, paired, k, involving=names)
    seen: set[tuple[str, str, str, int]] = set()
    seen_leaks: dict[tuple[object, ...], int] = {}
    spared_tops: set[tuple[str, str]] = set()
    # The weekly table's all row of a week goes when its week's sum leaves a remainder against the
    # daily table, so only the summary's windows spare their top rows (`_spare_top_rows`).
    spared = {} if sums else {p.name: p for p in moving}
    topped: dict[str, set[str]] = {p.name: set() for p in moving}  # merged to top up first_copy
    newest_all = partial(_is_newest_all_row, moving[0], first_copy)
    for rounds in range(1, MAX_ROUNDS + 1):
        new: dict[str, set[str]] = {p.name: set() for p in moving}
        found = _top_up_for_totals(conn, moving, found, new, k)
        if first_copy is not None:
            before = {name: set(keys) for name, keys in new.items()}
            _top_up_under_k(conn, moving, new, k, first_copy, forbidden)
            for name, keys in new.items():
                topped[name] |= keys - before[name]
        if sums:  # beside the pairs: does a sum of weekly rows leave a remainder?
            sums_found = weekly_sums.leaking_sums(conn, WEEKLY, moving[0].span, k, sum_scope)
            new[WEEKLY] |= _rows_to_merge_for_sums(conn, sums_found)
        if not found and not any(new.values()):  # is a cell derivable through a longer chain?
            leaks = derivable.small_derivable(conn, everything, k, touched)
            touched = set()
            weekly = (moving[0], first_copy) if first_copy is not None else None
            alone = _break_derivations(
                leaks, everything, new, protected, seen_leaks, spared, upstream, weekly
            )
            if not any(new.values()):
                return set().union(*(f - start for f in forbidden.values())), rounds, alone
        for r in found:
            partner_moves = r.inner in names and r.smallest_inner_key is not None
            if r.outer in names and not (r.outer == protected and partner_moves):
                new[r.outer].add(r.outer_key)
            elif (r.outer, r.outer_key, r.inner, r.customers) in seen:
                # The same remainder again: the partners merged last round moved up into a row
                # still inside it (a week's sku_region cell into its sku row, both inside a
                # 28-day line row). Merging one partner a round walked the 1M-order shop through
                # 31 rounds; all of them at once leaves the remainder in a round or two. All
                # but the newest week's all row while others are left: their lines move up.
                everyone = [key for key, _ in r.partners]
                new[r.inner].update([x for x in everyone if not newest_all(r.inner, x)] or everyone)
            else:
                new[r.inner].update(r.partners_to_merge(k, partial(newest_all, r.inner)))
            seen.add((r.outer, r.outer_key, r.inner, r.customers))
        _spare_top_rows(conn, list(spared.values()), new, k, spared_tops)
        # Only the lines the merges can move are assigned again (rollup.reassign), and only the
        # rows the moved lines can affect are audited again: the rest audited clean in this
        # round and has not changed (rollup.scope_audit), so each later round costs what its
        # merges touch.
        for part in moving:
            undone = _undo_top_up(part, first_copy, topped[part.name], new, forbidden)
            if new[part.name] or undone:
                forbidden[part.name] |= new[part.name]
                moved = new[part.name] | undone
                rollup.reassign(conn, part, k, forbidden[part.name], moved)
        if sums:  # the sums no moved line can change audited clean in this round
            sum_scope = weekly_sums.scope_after_moves(conn, WEEKLY, sums_found)
        if touched is not None:  # the exact audit reads again only what moved, in its groups
            touched |= rollup.moved_product_lines(conn)
        rollup.scope_audit(conn)
        changed = {name for name, keys in new.items() if keys}
        found = rollup.audit(conn, paired, k, involving=changed, scoped=True)
    raise SalesError(
        f"secondary suppression did not settle in {MAX_ROUNDS} rounds; nothing was published"
    )


def _top_row(part: rollup.Partition, key: str) -> bool:
    """Whether `key` names a top row of `part` (a window's or a week's all row): its labels are
    the top level's, literals that a label from the data never reads as (rollup.key_label)."""
    top = part.levels[-1]
    labels = "|".join(label.strip("'") for label in (top.product_line, top.sku, top.region))
    return key.partition("|")[2] == labels


def _first_copy_top_row(part: rollup.Partition, first_copy: str | None, key: str) -> bool:
    """Whether `key` is the all row of `first_copy`, the week shown tonight for the first time
    (`_suppress`)."""
    return first_copy is not None and _top_row(part, key) and key.startswith(first_copy + "|")


def _is_newest_all_row(week: rollup.Partition, first_copy: str | None, part: str, key: str) -> bool:
    """Whether `key` of partition `part` is the all row of `first_copy` in the weekly partition
    `week`: the row a merge takes last, since merging it withholds the rest of tonight's new
    week in the weekly table and the 7-day window for the thirteen weeks it is shown, where a
    smaller row merged instead moves its lines up, still shown (`_suppress`,
    `_break_derivations`)."""
    return part == week.name and _first_copy_top_row(week, first_copy, key)


# The published rows one level below a top row, in its period, smallest first: what can be merged
# into it instead of withholding it.
_BELOW_TOP = """
SELECT a.row_key, {customers} AS customers
FROM pg_temp.sales_assign a JOIN pg_temp.sales_lines l USING (line_id)
WHERE a.part = :p AND a.level = :below AND split_part(a.row_key, '|', 1) = :period
  AND NOT (a.row_key = ANY(CAST(:merging AS text[])))
GROUP BY a.row_key
ORDER BY customers, a.row_key
"""


# The customers of each period's lines that no row of a partition holds (withheld: under k even
# at the top, or in a top row merged).
_WITHHELD = """
SELECT {top} AS top, {customers} AS customers
FROM pg_temp.sales_lines l
WHERE {span} AND NOT EXISTS (
    SELECT 1 FROM pg_temp.sales_assign a WHERE a.part = :p AND a.line_id = l.line_id)
GROUP BY 1
"""


def _rows_below_top(
    conn: Connection, part: rollup.Partition, top: str, new: dict[str, set[str]]
) -> list[tuple[str, int]]:
    """The published rows one level below the top row `top` of `part`, in its period, that no
    merge of this round already takes, with their customers, smallest first."""
    params = {
        "p": part.name,
        "below": len(part.levels) - 2,
        "period": top.partition("|")[0],
        "merging": sorted(new[part.name]),
    }
    sql = _BELOW_TOP.format(customers=counted_customers())
    return [(key, customers) for key, customers in conn.execute(sa.text(sql), params)]


def _rows_to_reach_k(rows: list[tuple[str, int]], customers: int, k: int) -> set[str]:
    """The first of `rows` (smallest first) whose customers, added to `customers`, reach k."""
    taken: set[str] = set()
    for key, n in rows:
        if customers >= k:
            break
        taken.add(key)
        customers += n
    return taken


def _top_up_for_totals(
    conn: Connection,
    moving: list[rollup.Partition],
    found: list[rollup.Remainder],
    new: dict[str, set[str]],
    k: int,
) -> list[rollup.Remainder]:
    """Where a window's total (SUMMARY_SUMS, level 2) leaves a remainder, tops up the periods
    that withhold a few buyers (`_top_up_under_k`) and returns the other remainders; where none
    does, returns them all, for the usual merges. A total minus another table's rows over the
    same days is what one withholds and the other does not: on the 20,000-order shop's week turn
    a week's units in the summary minus its units in the weekly table were two buyers the weekly
    table withheld. Merged like other remainders, the weekly rows inside the total moved up round
    after round until nearly every week showed only its all row (8% of units published, or 0% of
    the top skus' 28-day totals exact); topped up, the week's lines are all published instead."""
    totals = {name for name, (_, level) in SUMMARY_SUMS.items() if level == 2}
    by_totals = [r for r in found if r.outer in totals or r.inner in totals]
    if not by_totals:
        return found
    before = sum(len(keys) for keys in new.values())
    _top_up_under_k(conn, moving, new, k)
    if sum(len(keys) for keys in new.values()) == before:
        return found
    return [r for r in found if r not in by_totals]


def _top_up_under_k(
    conn: Connection,
    moving: list[rollup.Partition],
    new: dict[str, set[str]],
    k: int,
    only: str | None = None,
    merged: dict[str, set[str]] | None = None,
) -> None:
    """Adds to `new`, for each period whose withheld lines have 1..k-1 customers (a week's or a
    window's lines that reach k in no row, not even the top one), the smallest rows one level
    below its top row, as many as bring it to k: the top row then holds them and is published
    (or, where it was merged, withholds them too). `only`: the one period to top up; `merged`:
    the rows already merged, whose periods are left as they are."""
    for part in moving:
        sql = _WITHHELD.format(
            top=part.key(part.levels[-1]),
            span=part.span,
            customers=counted_customers("l.customer_id", "l.units"),
        )
        for key, customers in conn.execute(sa.text(sql), {"p": part.name}).all():
            if only is not None and key.partition("|")[0] != only:
                continue
            if merged is not None and key in merged[part.name]:
                continue
            if 0 < customers < k:
                new[part.name] |= _rows_to_reach_k(
                    _rows_below_top(conn, part, key, new), customers, k
                )


def _undo_top_up(
    part: rollup.Partition,
    first_copy: str | None,
    topped: set[str],
    new: dict[str, set[str]],
    forbidden: dict[str, set[str]],
) -> set[str]:
    """Where the all row that the rows `topped` were merged into (`first_copy`'s, see `_suppress`)
    is merged itself, takes those rows out of the merges and returns them: merged into a row that
    is withheld, they would be withheld with it. The lines the top-up would have shown stay
    withheld, and the rows are shown as without it. On a week whose one withheld buyer the 28-day
    block showed withheld too, the topped-up all row held that buyer beside the product line's
    rest that the block showed, so it left the buyer alone and went; with it went the product
    line's rest (15 of 22 units shown became 9)."""
    if not topped or first_copy is None:
        return set()
    merging = new[part.name] | forbidden[part.name]
    if not any(_first_copy_top_row(part, first_copy, key) for key in merging):
        return set()
    undone = set(topped)
    topped.clear()
    new[part.name] -= undone
    forbidden[part.name] -= undone
    return undone


def _spare_top_rows(
    conn: Connection,
    moving: list[rollup.Partition],
    new: dict[str, set[str]],
    k: int,
    spared: set[tuple[str, str]],
) -> None:
    """Replaces in `new`, once per build, each top row an audit would merge (a window's all row)
    with the smallest published rows one level below it (product lines), as many as reach k
    customers between them. A top row has nowhere to go: merging it withholds every line in it.
    On the 50,000-order shop's week turn the 91-day window's all row left a remainder against last
    week's copy, went, and the summary accounted for 94.2% of the units (the target is 95%); with
    product lines merged into it, the remainder took in their lines and the audits, which go on
    until they find nothing, found no more (100%). A top row found again goes as before: merging
    ever more lines into it opened each merged line's sku rows to new differences, round after
    round (on the 20,000-order shop of the week-turn tests, 26 rounds and 7 of 100 28-day sku rows
    kept).

    Only the summary's windows are spared so (`_suppress`). The weekly table's all row of a week
    is also what goes when the week's sum of rows leaves a remainder against the daily table, and
    merging rows into it keeps that sum whole: tried there, the all rows took the merged lines
    with them (98.0% of the 50,000-order shop's units instead of 99.5%)."""
    for part in moving:
        for key in sorted(key for key in new[part.name] if _top_row(part, key)):
            if (part.name, key) in spared:
                continue
            below = _rows_below_top(conn, part, key, new)
            if not below:
                continue
            spared.add((part.name, key))
            new[part.name].discard(key)
            new[part.name] |= _rows_to_reach_k(below, 0, k)


# The weekly row to merge for each sum that leaves a remainder: its own top row (the sku's OTHER
# row, the line's OTHER row, the week's all row) where it is published, else its smallest row.
_SUM_ROW_TO_MERGE = """
SELECT DISTINCT ON (g) row_key FROM (
    SELECT w.row_key, {key} AS g, l.customer_id, l.units
    FROM pg_temp.sales_assign w JOIN pg_temp.sales_lines l USING (line_id)
    WHERE w.part = :weekly AND w.level <= :level
) x
WHERE g = ANY(CAST(:keys AS text[]))
GROUP BY g, row_key
ORDER BY g, row_key = g || :top DESC, {customers}, row_key
"""


def _rows_to_merge_for_sums(conn: Connection, found: dict[int, set[str]]) -> set[str]:
    """The weekly rows to merge so that no sum of a group's rows (a sku's week, a product line's
    week, a week) opens a subtraction against the daily table; `found`: the sums that leave one
    (lifecycle.sales.weekly_sums.leaking_sums). A sku's week shown whole (its regions and its
    OTHER row) minus its days in the daily table is exactly the lines the daily table withheld,
    and no single weekly row need hold a daily row whole for that (a region shown in the week is
    folded into a day's OTHER row with another region). For each sum that leaves a remainder, its
    top row moves up, so the sum is no longer whole (the next round audits the level above); where
    the top row is not published, its smallest row does; a coarser sum that holds a row merged for
    a finer one this round waits for the next. Against the other tables a sum leaves what the
    weekly rows inside it leave, which the pair audit checks."""
    merged: set[str] = set()
    for level, keys in sorted(found.items()):  # finest sums first
        # A coarser sum holding a row merged for a finer one is no longer whole either.
        keys = {key for key in keys if not any(m.startswith(key + "|") for m in merged)}
        if keys:
            sql = _SUM_ROW_TO_MERGE.format(
                key=weekly_sums.SUM_KEYS[level], customers=counted_customers()
            )
            top = f"|{rollup.OTHER}" * level  # its key's labels up to four
            params = {"weekly": WEEKLY, "level": level, "keys": sorted(keys), "top": top}
            merged |= {key for (key,) in conn.execute(sa.text(sql), params)}
    return merged


# The summary row to merge for each of its sums that leaves a remainder: the sum's own top row (the
# product line's OTHER row, the window's all row) where it is published, else its smallest row.
_SUMMARY_SUM_ROW_TO_MERGE = """
SELECT DISTINCT ON (g) row_key FROM (
    SELECT a.row_key, a.level, {key} AS g, l.customer_id, l.units
    FROM pg_temp.sales_assign a JOIN pg_temp.sales_lines l USING (line_id)
    WHERE a.part = :window AND a.level <= :level
) x
WHERE g = ANY(CAST(:keys AS text[]))
GROUP BY g, row_key
ORDER BY g, max(level) DESC, {customers}, row_key
"""


def _rows_to_merge_for_derived(conn: Connection, found: list[rollup.Remainder], k: int) -> set[str]:
    """The summary rows to merge so that no figure a reader derives from them (a sum of a
    product line's rows, SUMMARY_SUMS; a window minus the next shorter one inside it,
    `assign_window_differences`) leaves a remainder against its own windows, the daily table or
    the tables published for the previous Sunday. For a sum found, as the outer row or inside
    one, its top row, so that the sum is no longer whole at that level (the next pass audits what
    is left of it), or its smallest row where the top one is not published; for a window
    difference, the longer window's row it is (its key). Until stop 40 the differences were
    audited against those tables by the guard alone: at the week turn last week's 91-day row
    minus tonight's 91 days less their 28 days left 2 and 5 buyers on two synthetic shops, and
    the guard failed the night."""
    keys: dict[str, set[str]] = {}
    merged: set[str] = set()
    for r in found:
        for part, cells in ((r.outer, [r.outer_key]), (r.inner, r.partners_to_merge(k))):
            if part in SUMMARY_SUMS:
                keys.setdefault(part, set()).update(cells)
                break
            if part in WINDOW_DIFFERENCES:
                merged.update(cells)
                break
    for name, sums in keys.items():
        days, level = SUMMARY_SUMS[name]
        sql = _SUMMARY_SUM_ROW_TO_MERGE.format(
            key=_summary_sum_key(days, level), customers=counted_customers()
        )
        params = {"window": window_part(days), "level": level, "keys": sorted(sums)}
        merged |= {key for (key,) in conn.execute(sa.text(sql), params)}
    return merged


def _break_derivations(
    leaks: list[derivable.Derivable],
    parts: list[str],
    new: dict[str, set[str]],
    protected: str | None,
    seen: dict[tuple[object, ...], int],
    spared: dict[str, rollup.Partition],
    upstream: dict[str, set[str]] | None = None,
    weekly: tuple[rollup.Partition, str] | None = None,
) -> int:
    """Adds to `new` (the cells to merge, per movable partition) cells of each leak's certificate,
    the published rows that combine to the small atom: what is subtracted to leave the atom is what
    must change. The movable rows of the certificate are taken in this order: those alongside the
    atom (derivable.Derivable.alongside: the same sku's weeks in the same window block), else any
    but the atom's own rows, else its own; outside the `protected` partition first; a `spared`
    partition's top row last (merging it withholds its lines: `_spare_top_rows`); the all row of the
    weekly table's newest week (`weekly`: the partition and that week's Monday) last as well: it is
    the week's first copy, the twelve copies after it may not be finer, and the summary's 7-day
    window is that week added up, so merging it withholds the rest of the week in both tables for
    thirteen weeks, where a product line's row of an older week merged instead moves its lines into
    that week's all row, still shown (on the 20,000-order shop of seed 7, the one night in 18 under
    95%, its 7-day window at 88.0%, went to 100%; bench_sales_sundays); the coarsest first (merging
    a region's row into its sku's row leaves the sku's week whole); then the fewest lines. Another
    combination can remain, such as a sku's 91-day total minus its weeks in one window block when
    the merged week lay in the other, so a leak found again (the same atom in the rows this build
    cannot move) merges twice as many as the time before, all outside the `protected` partition
    while it has any: a certificate with one such row (a 7-day row, after last week's 28-day row
    minus this week's) took the 28-day total with it the second time, where moving the 7-day row
    further up closes the leak (on the 50k shop's week turn, 71.8% of the top-80% skus' 28-day
    totals exact instead of 69.0%).

    A certificate with no movable row that holds a row of the earlier tables (publications.py)
    places those tables' rows over today's lines: after a late order in their weeks they derive a
    cell by themselves that the copy a reader kept does not (it still holds the order), and
    another combination, through tonight's rows, may derive it for real. So tonight's rows that
    hold the cell move up, as if they were the certificate, until none is left; then the cell is
    counted (returned) and tonight's tables are published, since it is in none of their rows.
    Without such a row nothing is published.

    A certificate with no movable row that holds a row of an `upstream` partition (the weekly build:
    tonight's summary, fixed here) is the summary's to break: its row outside the 28-day window
    first, the coarsest, goes into `upstream` for the summary to be rebuilt with it merged; so does
    a summary row that holds the cell, where the certificate's fixed rows are last week's. And when
    the rows a leak would take include a week's all row while its certificate holds a row of
    tonight's summary (or, as above, a summary row holds the cell), that summary row goes into
    `upstream` instead and the all row stays: on the nights a 28-day block ends, a cell inside a
    week's all row is derived through the block's all row and stays derivable until one of them
    goes. The block's all row withholds leftovers of four weeks in one window for the four Sundays
    it is shown (the 28-day window at 97.3% on the 20,000-order shop of seed 1); a week's, a tenth
    of the week for the thirteen, and of the 7-day window too when it is the newest (that shop's
    7-day window at 91.9% and 90.3% on two such nights, an older week at 91.7% for twelve Sundays;
    100% with the summary's row instead; bench_sales_sundays).
    The summary's own exact audit searches unions of three atoms within bounds
    (derivable.TRIPLE_REST) that depend on the rows it reduces: on a 5,000-order shop's week turn
    it missed a triple through its windows and last week's copies that the weekly build's larger
    system found, and the weekly build, unable to move a row of it, counted it as given away
    before (the guard failed the night)."""
    alone = 0
    week, monday = weekly if weekly is not None else (None, None)
    for leak in leaks:
        own = {row for atom in leak.atoms for row in atom.rows()}
        movable = [(row, lines) for row, lines in leak.certificate if parts[row[0]] in new]
        earlier = any(is_earlier(parts[row[0]]) for row, _ in leak.certificate)
        theirs = [row for row, _ in leak.certificate if parts[row[0]] in (upstream or {})]
        if not theirs and earlier:  # as below: tonight's rows that hold the cell instead
            theirs = [row for row in own if parts[row[0]] in (upstream or {})]
        if not movable and theirs and upstream is not None:  # tonight's summary must move
            part, key = _summary_row_to_merge(parts, theirs)
            upstream[part].add(key)
            continue
        if not movable and earlier:  # tonight's rows that hold the cell instead
            movable = [(row, 0) for row in own if parts[row[0]] in new]
        beside = [(row, lines) for row, lines in movable if row in leak.alongside]
        others = [(row, lines) for row, lines in movable if row not in own]
        movable = sorted(
            (
                parts[row[0]] != protected,
                parts[row[0]] not in spared or not _top_row(spared[parts[row[0]]], row[1]),
                not (week is not None and _is_newest_all_row(week, monday, parts[row[0]], row[1])),
                row[1].count(rollup.OTHER),
                -lines,
                parts[row[0]],
                row[1],
            )
            for row, lines in beside or others or movable
        )
        if not movable and earlier:
            alone += 1
            continue
        if not movable:
            raise SalesError(
                "a sales cell under k customers is derivable from tables this build cannot "
                "change; nothing was published (run `lifecycle guard` to see which)"
            )
        fixed = tuple(key for n, key in enumerate(leak.atom.keys) if parts[n] not in new)
        identity = (fixed, leak.customers)
        times = seen.get(identity, 0)
        seen[identity] = times + 1
        unprotected = [cell for cell in movable if cell[0]]
        taken = (unprotected or movable)[-(2**times) :]
        weeks_all = [c for c in taken if week and c[-2] == week.name and _top_row(week, c[-1])]
        if weeks_all and theirs and upstream is not None:
            part, key = _summary_row_to_merge(parts, theirs)  # the weeks' all rows stay
            upstream[part].add(key)
            taken = [cell for cell in taken if cell not in weeks_all]
        for *_, part, key in reversed(taken):
            new[part].add(key)
    return alone


def _summary_row_to_merge(parts: list[str], rows: list[derivable.Row]) -> tuple[str, str]:
    """(partition, key) of the summary row a derivable cell's certificate gives up when the
    weekly build cannot, or should not, move one of its own (`_break_derivations`): outside the
    28-day window first (the window a planner sums per sku), then the coarsest."""
    *_, part, key = max(
        (parts[n] != window_part(28), key.count(rollup.OTHER), parts[n], key) for n, key in rows
    )
    return part, key


# Each week's units in a partition's span, and those a published row of it holds (every span is
# made of whole ISO weeks). The span names only columns of sales_lines.
_UNITS_PER_WEEK = """
    SELECT l.week_start, sum(l.units) AS total,
           coalesce(sum(l.units) FILTER (WHERE a.line_id IS NOT NULL), 0) AS published
    FROM pg_temp.sales_lines l
    LEFT JOIN pg_temp.sales_assign a ON a.part = :p AND a.line_id = l.line_id
    WHERE {span}
    GROUP BY l.week_start
"""


def _units(conn: Connection, part: rollup.Partition) -> tuple[int, int]:
    """(units, published units) of `part`'s span."""
    weeks = _units_per_week(conn, part).values()
    return sum(total for total, _ in weeks), sum(published for _, published in weeks)


def _units_per_week(conn: Connection, part: rollup.Partition) -> dict[date, tuple[int, int]]:
    sql = sa.text(_UNITS_PER_WEEK.format(span=part.span))
    rows = conn.execute(sql, {"p": part.name})
    return {week: (int(total), int(published)) for week, total, published in rows}


def _levels(conn: Connection, table: str) -> dict[str, int]:
    rows = conn.execute(sa.text(f"SELECT level, count(*) FROM {table} GROUP BY level ORDER BY 1"))
    return {level: n for level, n in rows}


def _lock(
    conn: Connection, policy: Policy, day: date, table: str, upstream: str | None = None
) -> tuple[str | None, bool]:
    """Takes the sales lock; returns the hash of what `table` would be built from, and whether
    the table already shows exactly that (lifecycle/sales/freshness.py)."""
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    first, _ = lines_span(day)
    signature = freshness.source_signature(conn, policy, first, day, upstream)
    return signature, freshness.is_current(conn, table, day, signature)


def _unchanged(conn: Connection, build: PlanningBuild, started: float) -> PlanningBuild:
    build.mode = "unchanged"
    build.rows = conn.execute(sa.text(f"SELECT count(*) FROM {build.table}")).scalar_one()
    build.seconds = time.perf_counter() - started
    return build


def _begin(conn: Connection, policy: Policy, day: date, *builds: PlanningBuild) -> Source:
    """Reads the span's sales lines and maps them to the daily table and to the planning tables
    published for an earlier Sunday (with the lines of their span); tells `builds` which lines of
    the span no table counts, which sold skus the catalogue does not list, and which publication
    they are audited against."""
    src = Source(policy)
    conn.execute(sa.text("SET LOCAL work_mem = '64MB'"))
    first, after = lines_span(day)
    earlier = publications.earlier_publication(conn, day, first)
    reach = publications.earliest_line(conn, earlier, first)
    rollup.load_lines(conn, src, policy.raw.catalogue, reach, after)
    rollup.assign_daily(conn)
    before = assign_earlier_tables(conn, day, earlier, reach)
    uncounted = uncounted_lines(conn, src, [(first, after)])
    not_listed = skus_not_listed(conn, policy.raw.catalogue, f"count under {UNLISTED}", first)
    for build in builds:
        build.uncounted, build.not_in_catalogue = uncounted, not_listed
        build.audited_against, build.earlier_parts = earlier, before
    return src


# The rows of a table that would hold a line below the level of its row in its week's or block's
# first copy: for each line the first copy showed, its keys at the levels under that row's.
_FINER_THAN_FIRST = """
SELECT DISTINCT v.key FROM (
    SELECT l.*, f.level AS first_level
    FROM pg_temp.sales_lines l
    JOIN pg_temp.sales_assign f ON f.part = :earlier AND f.line_id = l.line_id
    WHERE {span}
) x CROSS JOIN LATERAL (VALUES {keys}) v(level, key)
WHERE x.first_level > v.level
"""


def _rows_finer_than_first_copies(
    conn: Connection, part: rollup.Partition, earlier: str, earlier_parts: list[str]
) -> set[str]:
    """The rows of `part` not to publish from the first round: those that would show a line of a
    week or block shown before finer than its first copy (`earlier`, assign_earlier_tables) did;
    none when no copy of it was published before (`earlier_parts`). A later copy must be the
    first one or coarser, and carrying the first copy's merges is not enough: a row under k then
    can reach k tonight (a late sale, or other merges moving lines up into it), and a line the
    first copy held in its product line's or its period's all row then sits in that finer row.
    The first copy's row minus tonight's rows inside it is then the rest of that row, and the
    build closed that by merging the period's all row (on the 8,000-order shop a week fell to
    79.8% of its units for eleven Sundays). Forbidding every row at a level under a line's
    first-copy row keeps each line at that level or above, and each row shown holds every line its
    labels match, as the guard reads it (holding a line up without forbidding the row made the
    guard fail: the row's figures left out a line it places there)."""
    if earlier not in earlier_parts:
        return set()
    keys = ", ".join(f"({n}, {part.key(level)})" for n, level in enumerate(part.levels[:-1]))
    sql = _FINER_THAN_FIRST.format(span=part.span, keys=keys)
    return {key for (key,) in conn.execute(sa.text(sql), {"earlier": earlier})}


# The sku rows (region OTHER) of the weeks in which the daily table withheld lines of fewer than k
# customers (guests, whose orders name no customer, count for none).
_THIN_WEEKS = """
SELECT concat_ws('|', l.week_start, {line}, {sku}, '{other}')
FROM pg_temp.sales_lines l
LEFT JOIN pg_temp.sales_assign d ON d.part = :daily AND d.line_id = l.line_id
WHERE {span}
GROUP BY l.week_start, l.product_line, l.sku
HAVING bool_or(d.line_id IS NULL)
   AND {withheld_customers} < :k
"""


def _weeks_thin_beside_daily(conn: Connection, part: rollup.Partition, k: int) -> set[str]:
    """The weekly sku rows not to publish from the first round: a sku's week shown whole (its
    regions' rows and its OTHER row) minus its days in the daily table is exactly the lines the
    daily table withheld, so where those have 1..k-1 customers the sku's OTHER row goes up to its
    line and the week is not whole at sku level (its regions' rows stay, each audited against the
    days). The sums audit (`_rows_to_merge_for_sums`) would find each such week and merge the
    same row, a round at a time; deciding it before the first round saves those rounds. It only
    ever forbids, so it cannot open a remainder the audits would then miss."""
    sql = _THIN_WEEKS.format(
        span=part.span,
        line=rollup.key_label("l.product_line"),
        sku=rollup.key_label("l.sku"),
        other=rollup.OTHER,
        withheld_customers=counted_customers("l.customer_id", "l.units", "d.line_id IS NULL"),
    )
    return {key for (key,) in conn.execute(sa.text(sql), {"daily": rollup.DAILY, "k": k})}


def build_planning_tables(
    engine: Engine, policy: Policy, as_of: datetime
) -> tuple[PlanningBuild, PlanningBuild]:
    """Rebuilds both planning tables in one transaction, the summary first and the weekly table
    merged against it; returns (summary, weekly).

    Why one transaction: the weekly table is merged against the summary it is published beside,
    so the two are safe only as a pair. Built apart, a summary rebuilt after a late order sat
    beside a weekly table merged against the summary before it until the weekly build ran (or
    for good, had that build failed), and no audit had checked that pair. Together they change
    at once or not at all. The span's lines are read, and the daily table mapped, once; and the
    weekly build audits against the summary's own assignment of the lines, which is the published
    summary (every line in its finest published row), instead of reading the summary back
    (`assign_published_summary`: 4.3 s of a 1M-order shop's 82 s). Each table is still skipped
    when nothing it depends on moved (lifecycle/sales/freshness.py). Where the weekly build finds
    a cell under k that only the summary's rows derive (`_break_derivations`), the summary is
    built again with a row of it merged, then the weekly table, up to SUMMARY_REBUILDS times."""
    started = time.perf_counter()
    day = window_end(last_complete_day(engine, policy, as_of))
    summary = PlanningBuild(table=SUMMARY_TABLE, as_of_date=day)
    weekly = PlanningBuild(table=WEEKLY_TABLE, as_of_date=day)
    with build_transaction(engine) as conn:
        signature, current = _lock(conn, policy, day, SUMMARY_TABLE)
        summary.catalogue = weekly.catalogue = ambiguous_skus(conn, policy.raw.catalogue)
        src = None
        if current:
            _unchanged(conn, summary, started)
        else:
            src = _begin(conn, policy, day, summary, weekly)
            _summary(conn, src, day, summary, signature)
            summary.seconds = time.perf_counter() - started
        between = time.perf_counter()
        weekly_signature, current = _lock(conn, policy, day, WEEKLY_TABLE, upstream=SUMMARY_TABLE)
        if current:
            _unchanged(conn, weekly, between)
        elif src is None:  # the summary is as published: its lines' rows are read back
            src = _begin(conn, policy, day, weekly)
            windows = assign_published_summary(conn, day, BLOCK_WINDOWS)
            _weekly(conn, src, day, weekly, weekly_signature, windows)
        else:  # the summary just built: its assignment is what it published
            windows = [window_part(days) for days in BLOCK_WINDOWS]
            extra: set[str] = set()
            for attempt in range(SUMMARY_REBUILDS + 1):
                upstream = {w: set() for w in windows} if attempt < SUMMARY_REBUILDS else None
                _weekly(conn, src, day, weekly, weekly_signature, windows, upstream)
                found = set().union(*upstream.values()) if upstream else set()
                if not found:
                    break
                if found <= extra:  # merged already and named again: counted, as with none
                    _weekly(conn, src, day, weekly, weekly_signature, windows)
                    break
                extra |= found  # the summary again, with them merged, then the weekly table
                _summary(conn, src, day, summary, signature, frozenset(extra))
        if summary.mode == "rebuilt" or weekly.mode == "rebuilt":
            _write_week_window(conn, day, summary)
    weekly.seconds = time.perf_counter() - between
    return summary, weekly


def build_weekly_demand(engine: Engine, policy: Policy, as_of: datetime) -> PlanningBuild:
    """Rebuilds analytics.weekly_demand alone, merged against the product-line summary as
    published (the nightly builds both together: `build_planning_tables`)."""
    started = time.perf_counter()
    day = window_end(last_complete_day(engine, policy, as_of))
    build = PlanningBuild(table=WEEKLY_TABLE, as_of_date=day)
    with build_transaction(engine) as conn:
        signature, current = _lock(conn, policy, day, WEEKLY_TABLE, upstream=SUMMARY_TABLE)
        build.catalogue = ambiguous_skus(conn, policy.raw.catalogue)
        if current:
            return _unchanged(conn, build, started)
        src = _begin(conn, policy, day, build)
        windows = assign_published_summary(conn, day, BLOCK_WINDOWS)
        _weekly(conn, src, day, build, signature, windows)
        _write_week_window(conn, day, None)
    build.seconds = time.perf_counter() - started
    return build


def build_product_line_summary(engine: Engine, policy: Policy, as_of: datetime) -> PlanningBuild:
    """Rebuilds analytics.product_line_summary alone (the nightly builds both together:
    `build_planning_tables`, since the weekly table is merged against the summary); its 7-day
    window from the weekly table as published, when that is for the same Sunday."""
    started = time.perf_counter()
    day = window_end(last_complete_day(engine, policy, as_of))
    build = PlanningBuild(table=SUMMARY_TABLE, as_of_date=day)
    with build_transaction(engine) as conn:
        signature, current = _lock(conn, policy, day, SUMMARY_TABLE)
        build.catalogue = ambiguous_skus(conn, policy.raw.catalogue)
        if current:
            return _unchanged(conn, build, started)
        _summary(conn, _begin(conn, policy, day, build), day, build, signature)
        _write_week_window(conn, day, build)
    build.seconds = time.perf_counter() - started
    return build


def _weekly(
    conn: Connection,
    src: Source,
    day: date,
    build: PlanningBuild,
    signature: str | None,
    windows: list[str],
    upstream: dict[str, set[str]] | None = None,
) -> None:
    """analytics.weekly_demand for the 13 complete weeks up to `day`, from pg_temp.sales_lines,
    rolled up and merged against the daily table and the summary's 28- and 84-day `windows` (as
    assigned); `upstream`: see `_suppress`.

    Once its rows settle, the summary's 7-day window is derived from its newest week
    (lifecycle/sales/week_window.py) and what a reader derives from that window is audited
    against every table; each remainder found moves a weekly row of the newest week up, and the
    rows settle again, until none is found."""
    part = weekly_partition(day)
    _clear_week_window(conn)
    differences = assign_window_differences(conn, day, BLOCK_WINDOWS)
    held = _weeks_thin_beside_daily(conn, part, src.k)  # rows never shown tonight
    held |= _rows_finer_than_first_copies(conn, part, earlier_part(None), build.earlier_parts)
    rules = freshness.merge_rules(src)
    carried = _weekly_merges_to_start_from(conn, day, build.audited_against, rules)
    summed = [name for name in assign_summary_sums(conn) if name not in _WEEK_WINDOW_SUMS]
    fixed = [rollup.DAILY, *windows, *differences, *build.earlier_parts]
    merged, build.rounds = carried - held, 0
    for _ in range(MAX_ROUNDS):
        merged, rounds, build.given_away_before = _suppress(
            conn,
            [part],
            fixed,
            src.k,
            sums=True,
            forbidden_at_start=held,
            carried=merged,
            summed=summed,
            upstream=upstream,
            first_copy=weekly_span(day)[1].isoformat(),
        )
        build.rounds += rounds
        derived = _assign_week_window(conn, day)
        everything = [*derived, WEEKLY, *fixed, *summed]
        found = rollup.audit(conn, everything, src.k, involving=set(derived))
        if not found:
            break
        moved = _week_window_rows_to_move(conn, day, found, src.k) - merged
        if not moved:
            raise SalesError(
                "a figure of the 7-day window leaves a remainder under k that no weekly row can "
                "close; nothing was published (run `lifecycle guard` to see which)"
            )
        merged |= moved
        _clear_week_window(conn)
    else:
        raise SalesError(
            f"secondary suppression did not settle in {MAX_ROUNDS} rounds; nothing was published"
        )
    build.cells_merged, build.cells_carried = len(merged), len(carried - held)
    conn.execute(sa.text("DELETE FROM analytics.weekly_demand"))
    build.rows = conn.execute(
        sa.text(f"""
        INSERT INTO analytics.weekly_demand (week_start, level, product_line, sku, region,
            orders, units, revenue, customers)
        SELECT week_start, level, product_line, sku, region, orders, units, revenue, customers
        FROM ({_published_rows(part)}) r ORDER BY week_start, product_line, sku, region
    """)
    ).rowcount
    build.units_total, build.units_published = _units(conn, part)
    build.units_per_week = _units_per_week(conn, part)
    build.rows_per_level = _levels(conn, "analytics.weekly_demand")
    build.utility = measure_utility(conn, day, weekly=part.name, summary=None, k=src.k)
    freshness.record(conn, WEEKLY_TABLE, day, signature, merged, rules)
    publications.record_weekly(conn, day, lines_span(day)[0])


def _merges_to_start_from(
    conn: Connection,
    table: str,
    day: date,
    earlier: date | None,
    rules: str,
    still_shown: Callable[[str], bool],
) -> set[str]:
    """The cells a build of `table` starts merged: those of this Sunday's last build; on a later
    Sunday, those the last earlier build merged in the periods tonight's table still shows
    (`still_shown`, over a key's first part: its week or window). A later copy of a week or block
    then shows it as its first copy did or coarser (for the weekly table, with the rows held by
    `_rows_finer_than_first_copies`), so the first copy is the finest a reader holds: what the
    audits against first copies rely on (publications.py). It also saves the rounds that would
    find those merges again."""
    carried = freshness.carried_merges(conn, table, day, rules)
    if carried or earlier is None:
        return carried
    kept = freshness.carried_merges(conn, table, earlier, rules)
    return {key for key in kept if still_shown(key.split("|", 1)[0])}


def _weekly_merges_to_start_from(
    conn: Connection, day: date, earlier: date | None, rules: str
) -> set[str]:
    """The weekly build's (`_merges_to_start_from`): last week's in the twelve weeks both tables
    show."""
    first = weekly_span(day)[0].isoformat()
    return _merges_to_start_from(
        conn, WEEKLY_TABLE, day, earlier, rules, lambda week: week >= first
    )


def _summary_merges_to_start_from(
    conn: Connection, day: date, earlier: date | None, rules: str
) -> set[str]:
    """The summary build's (`_merges_to_start_from`): last week's in the windows whose block it
    still shows (a 28-day block is shown four Sundays running, an 84-day one twelve)."""
    same = {
        str(days)
        for days in WINDOWS
        if blocks.block_end(earlier or day, days) == blocks.block_end(day, days)
    }
    return _merges_to_start_from(
        conn, SUMMARY_TABLE, day, earlier, rules, lambda window: window in same
    )


def _summary(
    conn: Connection,
    src: Source,
    day: date,
    build: PlanningBuild,
    signature: str | None,
    extra: frozenset[str] = frozenset(),
) -> None:
    """analytics.product_line_summary's 28- and 84-day windows (the last complete blocks of those
    lengths per sku and product line up to `day`, the end of the last complete ISO week) from
    pg_temp.sales_lines, merged so that they open no subtraction against the daily table, between
    them or against the earlier copies; their assignment stays in pg_temp.sales_assign for the
    weekly table to be merged against. The 7-day window is written after the weekly table
    (`_write_week_window`). `extra`: cells to merge from the start beside those carried (what the
    weekly build found the summary must move)."""
    _clear_week_window(conn)
    parts = [window_partition(day, days) for days in BLOCK_WINDOWS]
    rules = freshness.merge_rules(src)
    held = set().union(  # rows never shown tonight
        *(
            _rows_finer_than_first_copies(conn, part, earlier_part(days), build.earlier_parts)
            for days, part in zip(BLOCK_WINDOWS, parts, strict=True)
        )
    )
    carried = _summary_merges_to_start_from(conn, day, build.audited_against, rules) | extra
    carried -= held
    build.rows = 0
    fixed = [rollup.DAILY, *build.earlier_parts]
    window_names = [part.name for part in parts]
    settle = partial(
        _suppress, conn, parts, fixed, src.k, protected=window_part(28), forbidden_at_start=held
    )
    merged, build.rounds, build.given_away_before = settle(carried=carried)
    for _ in range(MAX_ROUNDS):  # what a reader derives from its rows, against the rest
        derived = [
            *assign_summary_sums(conn),
            *assign_window_differences(conn, day, BLOCK_WINDOWS),
        ]
        everything = [*derived, *window_names, *fixed]
        found = rollup.audit(conn, everything, src.k, involving=set(derived))
        if not found:
            break
        topped: dict[str, set[str]] = {part.name: set() for part in parts}
        found = _top_up_for_totals(conn, parts, found, topped, src.k)
        merged |= set().union(*topped.values()) | _rows_to_merge_for_derived(conn, found, src.k)
        merged, rounds, build.given_away_before = settle(carried=merged)
        build.rounds += rounds
    else:
        raise SalesError(
            f"secondary suppression did not settle in {MAX_ROUNDS} rounds; nothing was published"
        )
    build.cells_merged, build.cells_carried = len(merged), len(carried)
    conn.execute(sa.text("DELETE FROM analytics.product_line_summary"))
    build.units_per_window = {}
    for days, part in zip(BLOCK_WINDOWS, parts, strict=True):
        build.rows += _insert_window(conn, day, days, part)
        build.units_per_window[days] = _units(conn, part)
    build.units_total, build.units_published = _window_showing_least(build.units_per_window)
    build.rows_per_level = _levels(conn, "analytics.product_line_summary")
    build.utility = measure_utility(conn, day, weekly=None, summary=window_part(28), k=src.k)
    freshness.record(conn, SUMMARY_TABLE, day, signature, merged, rules)
    publications.record_summary(conn, day, lines_span(day)[0])


def _insert_window(conn: Connection, day: date, days: int, part: rollup.Partition) -> int:
    """Publishes one window of the summary from its assignment; returns the rows written."""
    first, last = blocks.block_bounds(day, days)
    return conn.execute(
        sa.text(f"""
        INSERT INTO analytics.product_line_summary (as_of_date, window_days, window_start,
            window_end, level, product_line, sku, orders, units, revenue, units_share_pct,
            customers)
        SELECT :day, :days, :first, :last, level, product_line, sku, orders, units, revenue,
               CASE WHEN sum(units) OVER () > 0
                    THEN round(100.0 * units / sum(units) OVER (), 2) END, customers
        FROM ({_published_rows(part)}) r ORDER BY product_line, sku
    """),
        {"day": day, "days": days, "first": first, "last": last},
    ).rowcount


def _clear_week_window(conn: Connection) -> None:
    """Drops the 7-day window's assignment and what was derived from it: the summary and the
    weekly table are merged against the windows they build, and the 7-day one is only derived
    once the weekly rows settle (`_weekly`)."""
    names = [window_part(WEEK_WINDOW), *_WEEK_WINDOW_SUMS, WINDOW_DIFFERENCES[0]]
    conn.execute(
        sa.text("DELETE FROM pg_temp.sales_assign WHERE part = ANY(CAST(:p AS text[]))"),
        {"p": names},
    )


def _assign_week_window(conn: Connection, day: date) -> list[str]:
    """Derives the 7-day window from the weekly rows as assigned (week_window.derive), with what a
    reader derives from it: its sums and, where it ends a 28-day block, that block minus it.
    Returns the partition names."""
    week = window_end(day) - timedelta(days=WEEK_WINDOW - 1)
    week_window.derive(conn, window_partition(day, WEEK_WINDOW), WEEKLY, week)
    assign_summary_sums(conn)
    return [
        window_part(WEEK_WINDOW),
        *_WEEK_WINDOW_SUMS,
        *assign_window_differences(conn, day, WINDOWS[:2]),
    ]


def _week_window_rows_to_move(
    conn: Connection, day: date, found: list[rollup.Remainder], k: int
) -> set[str]:
    """The weekly rows of the newest week to merge for the remainders that a figure derived from
    the 7-day window leaves: the weekly row itself where it is one side of the pair (the outer
    row moves up, or the partners inside it), else a weekly row under each derived row that has
    to change (week_window.rows_to_change). A 28-day block minus the 7-day rows inside it changes
    with the 7-day rows over its lines of the week, so its row is looked up in the 28-day window."""
    merged: set[str] = set()
    to_change: list[tuple[str, str]] = []
    derived = {window_part(WEEK_WINDOW), *_WEEK_WINDOW_SUMS, WINDOW_DIFFERENCES[0]}
    for r in found:
        if r.outer == WEEKLY:
            merged.add(r.outer_key)
        elif r.inner == WEEKLY:
            merged.update(r.partners_to_merge(k))
        elif r.outer in derived:
            to_change.append((r.outer, r.outer_key))
        else:
            to_change.extend((r.inner, key) for key in r.partners_to_merge(k))
    lookup = {WINDOW_DIFFERENCES[0]: window_part(WINDOWS[1])}
    rows = [(lookup.get(part, part), key) for part, key in to_change]
    week = window_end(day) - timedelta(days=WEEK_WINDOW - 1)
    return merged | week_window.rows_to_change(conn, WEEKLY, week, rows)


def _write_week_window(conn: Connection, day: date, summary: PlanningBuild | None) -> None:
    """Publishes the 7-day window derived from the weekly rows in the summary, when both tables
    are built for `day` (a table built alone beside the other's copy of another Sunday leaves the
    summary without it), and records the summary's rows again."""
    if {freshness.built_for(conn, t) for t in (SUMMARY_TABLE, WEEKLY_TABLE)} != {day}:
        return
    part = window_partition(day, WEEK_WINDOW)
    if not conn.execute(
        sa.text("SELECT EXISTS (SELECT FROM pg_temp.sales_assign WHERE part = :p)"),
        {"p": part.name},
    ).scalar():  # not derived tonight: from the weekly rows as published
        assign_published_weekly(conn, day)
        _assign_week_window(conn, day)
    conn.execute(
        sa.text("DELETE FROM analytics.product_line_summary WHERE window_days = :days"),
        {"days": WEEK_WINDOW},
    )
    rows = _insert_window(conn, day, WEEK_WINDOW, part)
    publications.record_summary(conn, day, lines_span(day)[0])
    if summary is not None and summary.mode == "rebuilt":
        summary.rows += rows
        summary.units_per_window[WEEK_WINDOW] = _units(conn, part)
        summary.units_total, summary.units_published = _window_showing_least(
            summary.units_per_window
        )
        summary.rows_per_level = _levels(conn, SUMMARY_TABLE)


def assign_published_weekly(conn: Connection, day: date) -> None:
    """Maps the lines to the rows analytics.weekly_demand publishes (its finest matching row)."""
    rollup.assign_published(conn, weekly_partition(day), "analytics.weekly_demand")


# Sums a reader adds up from the weekly table's rows: a sku's week (its regions' rows and its OTHER
# row), a product line's week (with its OTHER row) and the whole week. Each is a set of lines whose
# figures are published, though no single row shows them.
WEEKLY_SUMS = {
    f"{WEEKLY}_{name}": (weekly_sums.SUM_KEYS[level], level)
    for name, level in (("sku", 1), ("line", 2), ("week", 3))
}


def assign_weekly_sums(conn: Connection) -> list[str]:
    """Adds the weekly table's sums (WEEKLY_SUMS) as partitions beside its rows, from the lines'
    published weekly rows: a sum holds the lines of its rows up to its level."""
    for name, (key, level) in WEEKLY_SUMS.items():
        conn.execute(sa.text("DELETE FROM pg_temp.sales_assign WHERE part = :p"), {"p": name})
        conn.execute(
            sa.text(f"""
            INSERT INTO pg_temp.sales_assign (part, line_id, row_key, level)
            SELECT :p, a.line_id, {key}, a.level
            FROM pg_temp.sales_assign a JOIN pg_temp.sales_lines l USING (line_id)
            WHERE a.part = :weekly AND a.level <= :level
            """),
            {"p": name, "weekly": WEEKLY, "level": level},
        )
    return list(WEEKLY_SUMS)


# Sums a reader adds up from each window of the summary: a product line's rows (its skus' rows and
# its OTHER row) and the whole window (every row). Like the weekly table's sums, each is a set of
# lines whose figures are published though no single row shows them: a product line's 91-day rows
# added up, minus its weekly rows inside them, left 4 buyers on the 20,000-order shop of the tests
# (k = 5), a union of more atoms than the exact audit searches.
SUMMARY_SUMS = {
    f"{window_part(days)}_{name}": (days, level)
    for days in WINDOWS
    for name, level in (("line", 1), ("all", 2))
}


_WEEK_WINDOW_SUMS = [name for name, (days, _) in SUMMARY_SUMS.items() if days == WEEK_WINDOW]


def _summary_sum_key(days: int, level: int) -> str:
    """SQL over a sales line: the key of its sum in a window of the summary (SUMMARY_SUMS)."""
    if level == 1:
        return f"concat_ws('|', '{days}', {rollup.key_label('l.product_line')})"
    return f"'{days}'"


def assign_summary_sums(conn: Connection) -> list[str]:
    """Adds the summary's sums (SUMMARY_SUMS) as partitions beside its windows, from the lines'
    assignment to the windows' rows: a sum holds the lines of its rows up to its level."""
    for name, (days, level) in SUMMARY_SUMS.items():
        conn.execute(sa.text("DELETE FROM pg_temp.sales_assign WHERE part = :p"), {"p": name})
        conn.execute(
            sa.text(f"""
            INSERT INTO pg_temp.sales_assign (part, line_id, row_key, level)
            SELECT :p, a.line_id, {_summary_sum_key(days, level)}, a.level
            FROM pg_temp.sales_assign a JOIN pg_temp.sales_lines l USING (line_id)
            WHERE a.part = :window AND a.level <= :level
            """),
            {"p": name, "window": window_part(days), "level": level},
        )
    return list(SUMMARY_SUMS)


# What a reader subtracts between the summary's windows: a row of the longer window minus the
# rows of the shorter one inside it (a sku's 84 days minus its 28 days: its first 56 days).
_WINDOW_DIFFERENCE = sa.text("""
WITH inside AS (
    SELECT b.row_key FROM pg_temp.sales_assign b
    LEFT JOIN pg_temp.sales_assign a ON a.part = :outer AND a.line_id = b.line_id
    WHERE b.part = :inner
    GROUP BY b.row_key HAVING count(a.row_key) = count(*) AND min(a.row_key) = max(a.row_key)
)
INSERT INTO pg_temp.sales_assign (part, line_id, row_key, level)
SELECT :p, a.line_id, a.row_key, a.level
FROM pg_temp.sales_assign a
LEFT JOIN pg_temp.sales_assign b ON b.part = :inner AND b.line_id = a.line_id
LEFT JOIN inside i ON i.row_key = b.row_key
WHERE a.part = :outer AND i.row_key IS NULL
""")


def _difference_part(shorter: int, longer: int) -> str:
    return f"{window_part(longer)}_minus_{shorter}d"


WINDOW_DIFFERENCES = [  # 28 - 7, 84 - 28
    _difference_part(shorter, longer) for shorter, longer in zip(WINDOWS, WINDOWS[1:], strict=False)
]


def assign_window_differences(
    conn: Connection, day: date, windows: tuple[int, ...] = WINDOWS
) -> list[str]:
    """Adds, as partitions, each window of the summary built for `day` minus the rows of the next
    shorter one inside its rows (from the windows' assignments): figures a reader derives by one
    subtraction, which a third table (the weekly one) can then be subtracted from. The weekly
    build merges against them as against a published table, so a week merged up is not left
    alone between a sku's 84- and 28-day totals and its other weeks. Only where the shorter
    window lies inside the longer (it ends the longer block); otherwise the two share no day and
    the difference would be the longer window again. `windows`: the windows whose consecutive
    pairs to add (the builds leave out the 7-day window until it is derived). Returns the names
    added."""
    names = []
    for shorter, longer in zip(windows, windows[1:], strict=False):
        name = _difference_part(shorter, longer)
        conn.execute(sa.text("DELETE FROM pg_temp.sales_assign WHERE part = :p"), {"p": name})
        if blocks.block_end(day, shorter) != blocks.block_end(day, longer):
            continue
        params = {"p": name, "outer": window_part(longer), "inner": window_part(shorter)}
        conn.execute(_WINDOW_DIFFERENCE, params)
        names.append(name)
    return names


def assign_earlier_tables(
    conn: Connection, day: date, earlier: date | None, first: date
) -> list[str]:
    """Maps the lines from `first` to the rows the tables published for earlier Sundays showed
    (lifecycle/sales/publications.py), as a reader who kept every copy places them; returns the
    partition names (none on a first build).

    The summary's windows are blocks that never overlap from one copy to the next, and a copy of
    a week or a block shows it with at most the merges of its first copy, so a reader who kept
    every copy knows exactly what each week's and each block's first copy says: one partition per
    table and window holds those, a block or week beside the other. The summary published for
    `earlier` (the last earlier Sunday) may be from before the windows were blocks: its windows
    that are not blocks (all ending on its Sunday, one of 91 days) are placed over the days they
    covered, as before."""
    if earlier is None:
        return []
    span = f"sales_date >= DATE '{first.isoformat()}' AND sales_date <= DATE '{day.isoformat()}'"
    names = [earlier_part(None)]
    rollup.assign_published(
        conn,
        rollup.Partition(names[0], "week_start", span, rollup.WEEKLY_LEVELS),
        publications.first_copies_of_weeks(day, first),
    )
    for days in WINDOWS:
        part = rollup.Partition(
            earlier_part(days), blocks.block_end_sql("week_start", days), span, rollup.WINDOW_LEVELS
        )
        rollup.assign_published(conn, part, publications.first_copies_of_blocks(days, day, first))
        names.append(part.name)
    kept = f"as_of_date = DATE '{earlier.isoformat()}'"
    for days, last in publications.kept_windows(conn, earlier):
        if days in WINDOWS and blocks.is_block(last, days):
            continue
        rollup.assign_published(
            conn,
            window_partition(earlier, days, f"{window_part(days)}_sliding_earlier", last),
            f"(SELECT * FROM lifecycle.published_summary_rows WHERE window_days = {days} "
            f"AND {kept})",
        )
        names.append(f"{window_part(days)}_sliding_earlier")
    return names


def assign_published_summary(
    conn: Connection, day: date, windows: tuple[int, ...] = WINDOWS
) -> list[str]:
    """Maps the lines to the rows analytics.product_line_summary publishes, one partition per
    window of `windows`; returns the partition names."""
    names = []
    for days in windows:
        part = window_partition(day, days)
        rollup.assign_published(
            conn,
            part,
            f"(SELECT * FROM analytics.product_line_summary WHERE window_days = {days} "
            f"AND as_of_date = DATE '{day.isoformat()}')",
        )
        names.append(part.name)
    return names
