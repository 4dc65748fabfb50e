"""No differencing: no figure derivable by subtracting published sales rows covers 1..k−1 buyers.

The guard's view, independent of how the tables were built: it reads what analytics publishes,
places every sales line of the planning span in the finest published row of each table that
matches it (the daily table, the weekly table, each window of the product-line summary), and
recomputes, for every ordered pair of them, each row minus the rows of the other table that lie
wholly inside it. A remainder with lines behind it and fewer than k customers is a leak.

Two audits: containment between two tables, the subtraction a reader does by hand ("the national
week minus its published regions"), whose remainders may be unions of many cells, also for the
figures a reader adds up or subtracts first (the weekly sums, each summary window minus the next
shorter one, a product line's and a whole window's summary rows added up); and the exact
audit of every atom (lifecycle.sales.derivable): a set of lines that sit in the same row of every
table, whose figures some combination of published rows of any number of tables derives (an 84-day
sku total minus its 28-day total minus the weeks shown leaves the week merged up).

Beside tonight's tables, both audits place the lines in the rows earlier Sundays' planning tables
first showed of each week and block in the span, as kept (lifecycle/sales/publications.py): a
reader who kept those copies subtracts them from tonight's (an 84-day row minus the 28-day rows
of its first two blocks, published four and eight weeks ago, is its third block). Only pairs and
cells that involve tonight's tables count; what the earlier copies and the daily table derive
alone is counted in the scan.

In the nightly (lifecycle.guard.changes.incremental) the audit is skipped when nothing it reads
changed since its last clean pass: the two planning tables (their signatures, as the other zone
scans keep them), the rows of the daily table inside the span (the refresh rewrites its newest day
every night, so the whole table's signature would never match; only the rows of the span can hold
a line) and the sales lines of the span (lifecycle.sales.freshness.source_signature: the daily
table's per-day build times, which a late or changed order moves, and a digest of the last day),
under the same protection (rollup.PROTECTION: a clean pass of an earlier audit vouches for
nothing this one checks). A pass with findings stores nothing, so the audit runs again the next night; the whole audit runs
once `guard.full_scan_every_days` has passed. `lifecycle guard` and direct calls always audit.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lifecycle.checks import CheckResult, Finding
from lifecycle.guard import changes, positions
from lifecycle.guard.scan import scan
from lifecycle.policy import Policy
from lifecycle.sales import derivable, freshness, planning, publications, rollup
from lifecycle.sales.source import Source

_PLANNING_DAY = sa.text("""
    SELECT coalesce((SELECT max(as_of_date) FROM analytics.product_line_summary),
                    (SELECT max(week_start) + 6 FROM analytics.weekly_demand),
                    (SELECT max(sales_date) FROM analytics.sales_volume_daily))
""")
SCAN = "differencing"  # its positions (lifecycle.guard.changes)
# The relations whose zone signature must be unchanged for the audit to be skipped (names in the
# zone, without the schema); the daily table is compared through its rows in the span instead.
_PLANNING_TABLES = [
    t.removeprefix("analytics.") for t in (planning.WEEKLY_TABLE, planning.SUMMARY_TABLE)
]
_DAILY_KEYS = sa.text("""
    SELECT md5(coalesce(string_agg(concat_ws('|', sales_date, sku, region), ','
                                   ORDER BY sales_date, sku, region), ''))
    FROM analytics.sales_volume_daily WHERE sales_date >= :first AND sales_date < :after
""")
_TABLES = {
    rollup.DAILY: "analytics.sales_volume_daily",
    planning.WEEKLY: "analytics.weekly_demand",
    **{
        planning.window_part(d): f"analytics.product_line_summary ({d} days)"
        for d in planning.WINDOWS
    },
    f"{planning.WEEKLY}_sku": "analytics.weekly_demand (a sku's week: its rows added up)",
    f"{planning.WEEKLY}_line": "analytics.weekly_demand (a product line's week: its rows added up)",
    f"{planning.WEEKLY}_week": "analytics.weekly_demand (a week: its rows added up)",
    **{
        f"{planning.window_part(a)}_minus_{b}d": (
            f"analytics.product_line_summary ({a} days minus the {b}-day rows inside)"
        )
        for b, a in zip(planning.WINDOWS, planning.WINDOWS[1:], strict=False)
    },
    **{
        planning.earlier_part(d): f"analytics.product_line_summary ({d}-day blocks, each as first "
        "published)"
        for d in planning.WINDOWS
    },
    planning.earlier_part(None): "analytics.weekly_demand (each week as first published)",
    **{
        name: f"analytics.product_line_summary ({days} days: "
        + ("a product line's rows added up)" if level == 1 else "its rows added up)")
        for name, (days, level) in planning.SUMMARY_SUMS.items()
    },
}


def _named(part: str) -> str:
    """The table a partition stands for, as a reader knows it; a window of the last copy kept from
    before the summary's windows were blocks (one of 91 days among them) included."""
    if part in _TABLES:
        return _TABLES[part]
    days = part.removeprefix("product_line_summary_").removesuffix("d_sliding_earlier")
    return f"analytics.product_line_summary ({days} days to its Sunday, as published before)"


def _tonight(
    engine: Engine, conn: Connection, policy: Policy, k: int, first: date, after: date
) -> tuple[changes.Plan, bool]:
    """Tonight's plan, and whether a clean pass may be stored: not when a recorded change to the
    span is not yet in the daily table (then the lines cannot be vouched for)."""
    if changes.night() is None:
        return changes.plan(engine, SCAN, ""), False
    lines = freshness.source_signature(conn, policy, first, after - timedelta(days=1))
    daily = conn.execute(_DAILY_KEYS, {"first": first, "after": after}).scalar_one()
    tonight = changes.plan(
        engine,
        SCAN,
        f"k={k}|protection={rollup.PROTECTION}|lines={lines}|daily={daily}|{first}..{after}",
    )
    if lines is None:
        return tonight.everything(), False
    return tonight, True


def _tonights(
    found: list[derivable.Derivable], parts: list[str], published: set[str]
) -> tuple[list[derivable.Derivable], int]:
    """The derivable cells that a row of tonight's planning tables holds or derives, and how many
    others the daily table and last week's copies derive alone: placed over today's lines after a
    late order in their weeks, last week's rows can derive a cell the copies a reader kept do not,
    and the builds hide such a cell from every row of tonight's tables
    (planning._break_derivations, which counts them the same way)."""

    def needs_tonight(leak: derivable.Derivable) -> bool:
        rows = [row for row, _ in leak.certificate]
        rows += [row for atom in leak.atoms for row in atom.rows()]
        return any(parts[row[0]] in published for row in rows)

    kept = [leak for leak in found if needs_tonight(leak)]
    return kept, len(found) - len(kept)


@scan
def differencing_remainders(engine: Engine, policy: Policy) -> CheckResult:
    """Fails on any remainder of one published sales table minus another under k customers."""
    k = policy.analytics.min_customers_per_cell
    with engine.connect() as conn, conn.begin():
        day: date | None = conn.execute(_PLANNING_DAY).scalar()
        if day is None:
            return CheckResult(scanned={"lines": 0, "k": k})
        day = planning.window_end(day)  # a Sunday already, unless only the daily table is built
        first, after = planning.lines_span(day)
        tonight, storable = _tonight(engine, conn, policy, k, first, after)
        if tonight.night and not tonight.full and set(_PLANNING_TABLES) <= tonight.unchanged:
            return CheckResult(scanned={"lines": 0, "k": k, **tonight.metadata(0)})
        earlier = publications.earlier_publication(conn, day, first)
        reach = publications.earliest_line(conn, earlier, first)
        lines = rollup.load_lines(conn, Source(policy), policy.raw.catalogue, reach, after)
        rollup.assign_daily(conn)
        planning.assign_published_weekly(conn, day)
        published = [planning.WEEKLY, *planning.assign_published_summary(conn, day)]
        differences = planning.assign_window_differences(conn, day)
        before = planning.assign_earlier_tables(conn, day, earlier, reach)
        parts = [rollup.DAILY, *published, *before]
        sums = planning.assign_weekly_sums(conn)
        summary_sums = planning.assign_summary_sums(conn)
        current = set(published) | set(differences)  # last week's pairs: audited last week
        found = rollup.audit(conn, [*parts, *differences], k, involving=current)
        found += rollup.audit(conn, [*sums, rollup.DAILY], k, involving=set(sums))
        found += rollup.audit(conn, [*summary_sums, *parts], k, involving=set(summary_sums))
        exact = derivable.audit_groups(conn, parts, k)  # the sums are in the rows' span already
        conn.rollback()
    derived, before_alone = _tonights(exact.found, parts, set(published))
    leaked = bool(found or derived)
    if storable:
        tonight.save(engine, _PLANNING_TABLES, _PLANNING_TABLES if leaked else [])
    elif leaked and tonight.night:  # whatever was stored before, audit again the next night
        positions.forget(engine, SCAN, [changes.RELATION + t for t in _PLANNING_TABLES])
    pairs = Counter((r.outer, r.inner) for r in found)
    detail = (
        f"a row minus the rows of the other table inside it leaves fewer than k={k} customers; "
        "rebuild the planning tables (they merge such cells) or stop publishing the other table"
    )
    findings = [
        Finding(_named(outer), f"minus {_named(inner)}", "differencing", n, detail=detail)
        for (outer, inner), n in sorted(pairs.items())
    ]
    if derived:
        findings.append(
            Finding(
                "analytics sales tables",
                "a combination of their published rows",
                "differencing",
                len(derived),
                detail=(
                    f"adding and subtracting published rows of several tables gives the figures "
                    f"of sales lines of fewer than k={k} customers; rebuild the planning tables "
                    "(they merge a cell of each such chain)"
                ),
            )
        )
    return CheckResult(
        findings=findings,
        scanned={
            "lines": lines,
            "tables": len(parts),
            "derived": len(differences) + len(sums) + len(summary_sums),
            "atoms": exact.atoms,
            "k": k,
            "audited_against_summary_of": earlier.isoformat() if earlier else None,
            "derivable_from_earlier_tables_alone": before_alone,
            **tonight.metadata(len(_PLANNING_TABLES) + 1),
        },
    )
