"""The published daily table, analytics.sales_volume_daily: built, refreshed nightly, backfilled.

An order line counts when its order is paid, shipped or delivered and the line names a sku, a
quantity in whole units other than zero and a unit price (lifecycle/sales/uncounted.py, and
`Source.sold` for the zero), dated by placed_at in the
policy's time zone (`analytics.timezone`). A (date, sku, region) cell with fewer than k distinct
customers (`min_customers_per_cell`) folds into region OTHER for that date and sku; an OTHER row
still under k is withheld. Nothing in `analytics` carries a customer id, an order id or a personal
column. The nightly refresh rebuilds yesterday plus the days whose orders changed (capture.py);
what each day published and what the protection cost is kept in `lifecycle.sales_days`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lifecycle.db import describe_db_error
from lifecycle.policy import Policy
from lifecycle.sales.capture import (
    capture_signature,
    ensure_capture_within_lock_timeout,
    naive_zone,
)
from lifecycle.sales.source import Source, counted_customers
from lifecycle.sales.uncounted import UncountedLines, uncounted_lines

OTHER = "OTHER"
# The build's sorts and hashes stay in memory (1M orders: about 1.5x faster than with 4MB).
WORK_MEM = "64MB"
LOCK_KEY = 4_711_020_004  # pg_advisory_xact_lock: one sales build at a time
SAMPLE_DATES = 10
# The capture signature recorded when capture could not be installed: no real one equals it.
CAPTURE_UNAVAILABLE = "unavailable"
CAPTURE_UNAVAILABLE_REASON = (
    "change capture could not be installed: another transaction held a lock on {orders} or "
    "{items} past the wait allowed; every day was rebuilt and capture is tried again next build"
)


class SalesError(RuntimeError):
    """The build could not run; the published tables were left as they were."""


@contextmanager
def build_transaction(engine: Engine) -> Iterator[Connection]:
    """One sales build's transaction. On a database error it rolls back, so every published
    table stays as it was, and raises `SalesError` naming the error's class and the constraint:
    never the driver's text, which can quote a row, or the statement."""
    try:
        with engine.begin() as conn:
            yield conn
    except sa.exc.DBAPIError as exc:
        raise SalesError(
            f"sales build rolled back, published figures unchanged: {describe_db_error(exc)}"
        ) from None


@dataclass(frozen=True)
class DayStats:
    """What one sales date published and what the small-cell protection cost it: counts only."""

    sales_date: date
    source_lines: int
    units_total: int
    units_published: int
    units_folded: int
    units_withheld: int
    rows_published: int
    cells_folded: int
    rows_withheld: int

    def metadata(self) -> dict[str, object]:
        """The day's figures for its partition's materialization in the UI."""
        return {
            "sales_date": self.sales_date.isoformat(),
            "rows": self.rows_published,
            "source_lines": self.source_lines,
            "units_total": self.units_total,
            "units_published": self.units_published,
            "units_folded": self.units_folded,
            "units_withheld": self.units_withheld,
            "cells_folded": self.cells_folded,
            "rows_withheld": self.rows_withheld,
        }


# Why a nightly refresh rebuilds the days it does, unless everything must be rebuilt.
REGULAR_REASON = "yesterday, changed days and missed days"


def build_summary(mode: str, days: int, reason: str) -> str:
    """A build's one line for the run's log."""
    return f"{mode} build of {days} day(s): {reason}"


# What a regular night's refresh writes to the run log besides its counts and dates: its line,
# and its mode and reason as metadata. The guard's run-history check compares them on any night
# (lifecycle/guard/raw_values.py), so the first regular night after a first build meets none of
# them new.
REGULAR_TEXTS = ("incremental", REGULAR_REASON, build_summary("incremental", 0, REGULAR_REASON))


@dataclass
class SalesBuild:
    """What one build rebuilt and why; counts and dates, never a customer or an order."""

    run_id: str
    mode: str  # full | incremental | range
    reason: str
    last_complete_day: date
    timezone: str
    k: int
    days: list[date] = field(default_factory=list)
    changed_days: int = 0
    catch_up_days: int = 0
    skipped_incomplete: list[date] = field(default_factory=list)
    stats: list[DayStats] = field(default_factory=list)
    table_rows: int = 0
    seconds: float = 0.0
    uncounted: UncountedLines = UncountedLines(table="")  # lines of its days no table counts
    capture_unavailable: bool = False  # rebuilt everything: capture could not get its locks

    def summary(self) -> str:
        """One line for the run's log: how the days were built, how many, and why."""
        return build_summary(self.mode, len(self.days), self.reason)

    def capture_warning(self) -> str | None:
        """The reason, as a warning, when capture could not be installed; None otherwise."""
        return self.reason if self.capture_unavailable else None

    def total(self, name: str) -> int:
        """One DayStats figure summed over the rebuilt days."""
        return sum(getattr(s, name) for s in self.stats)

    def metadata(self) -> dict[str, object]:
        """Counts, dates and the policy's parameters, for the run's materialization."""
        dates = [d.isoformat() for d in self.days]
        if len(dates) > 2 * SAMPLE_DATES:
            dates = dates[:SAMPLE_DATES] + ["…"] + dates[-SAMPLE_DATES:]
        return {
            "mode": self.mode,
            "reason": self.reason,
            "days_rebuilt": len(self.days),
            "dates_rebuilt": dates,
            "changed_days": self.changed_days,
            "catch_up_days": self.catch_up_days,
            "skipped_incomplete_dates": [d.isoformat() for d in self.skipped_incomplete],
            "last_complete_day": self.last_complete_day.isoformat(),
            "rows_written": self.total("rows_published"),
            "source_lines": self.total("source_lines"),
            "units_total": self.total("units_total"),
            "units_published": self.total("units_published"),
            "units_folded": self.total("units_folded"),
            "units_withheld": self.total("units_withheld"),
            "cells_folded": self.total("cells_folded"),
            "rows_withheld": self.total("rows_withheld"),
            "table_rows": self.table_rows,
            **self.uncounted.metadata(),
            "min_customers_per_cell": self.k,
            "timezone": self.timezone,
            "seconds": round(self.seconds, 3),
        }


def _local_midnight(day_param: str) -> str:
    return f"(CAST(:{day_param} AS date)::timestamp AT TIME ZONE :tz)"


def _cells_sql(src: Source, ranges: int) -> str:
    # One row per (date, sku, region) cell, with the cell's customer ids only where it will fold
    # (and, apart, those of its sales and of its returns: a customer with both in the OTHER row
    # counts toward none of its k, source.counted_customers).
    # Parallel-safe CREATE TABLE AS: PostgreSQL may use several workers, an INSERT could not.
    o, i = src.o, src.i
    # Codes compare byte-wise (COLLATE "C"): the sort by sku and region is the build's largest cost.
    return f"""
    CREATE TEMP TABLE sales_cells ON COMMIT DROP AS
    SELECT sales_date, sku, region,
           count(*) AS lines,
           count(DISTINCT order_id) AS orders,
           sum(quantity) AS units,
           sum(amount) AS revenue,
           {counted_customers("customer_id", "quantity")} AS customers,
           CASE WHEN {counted_customers("customer_id", "quantity")} < :k OR region = '{OTHER}'
                THEN array_agg(customer_id) END AS fold_ids,
           CASE WHEN {counted_customers("customer_id", "quantity")} < :k OR region = '{OTHER}'
                THEN array_agg(customer_id) FILTER (WHERE quantity > 0) END AS fold_sales,
           CASE WHEN {counted_customers("customer_id", "quantity")} < :k OR region = '{OTHER}'
                THEN array_agg(customer_id) FILTER (WHERE quantity < 0) END AS fold_returns
    FROM (
        SELECT {src.local_date()} AS sales_date,
               CAST(i.{i["sku"]} AS text) COLLATE "C" AS sku,
               coalesce(nullif(CAST(o.{o["ship_region"]} AS text), ''), '{OTHER}') COLLATE "C"
                   AS region,
               o.{o["order_id"]} AS order_id, o.{o["customer_id"]} AS customer_id,
               i.{i["quantity"]} AS quantity, i.{i["quantity"]} * i.{i["unit_price"]} AS amount,
               ({src.countable()}) AS countable
        FROM {src.orders} o
        JOIN {src.items} i ON i.{i["order_id"]} = o.{o["order_id"]}
        WHERE o.{o["status"]} IN ({src.statuses}) AND ({src.placed_on(ranges)}) AND {src.sold()}
        OFFSET 0  -- countable filtered outside: see rollup._LINES_SELECT
    ) line
    WHERE countable
    GROUP BY sales_date, sku, region
    """


# Concatenates the customer ids of the cells that fold into one OTHER row, so each OTHER row counts
# its distinct customers over its own few ids instead of one sort of every folded id.
_ARRAY_CONCAT = sa.text("""
    CREATE AGGREGATE lifecycle.array_concat(anycompatiblearray)
        (SFUNC = array_cat, STYPE = anycompatiblearray)
""")
_HAS_ARRAY_CONCAT = sa.text(
    "SELECT to_regprocedure('lifecycle.array_concat(anycompatiblearray)') IS NOT NULL"
)

# Folds small cells into OTHER (a customer counted once across them), publishes rows of at least
# k customers, and records per day what the protection cost, in one statement.
_PUBLISH_SQL = sa.text(f"""
WITH folded AS (
    -- A customer in two folded cells is one customer: distinct over the cells' ids, per OTHER row;
    -- one with a sale and a return among them counts for none (source.counted_customers).
    SELECT sales_date, sku, sum(lines) AS lines, sum(orders) AS orders, sum(units) AS units,
           sum(revenue) AS revenue, count(*) AS cells,
           2 * (SELECT count(DISTINCT id) FROM unnest(lifecycle.array_concat(fold_ids)) AS id)
           - (SELECT count(DISTINCT id) FROM unnest(lifecycle.array_concat(fold_sales)) AS id)
           - (SELECT count(DISTINCT id) FROM unnest(lifecycle.array_concat(fold_returns)) AS id)
               AS customers
    FROM pg_temp.sales_cells WHERE fold_ids IS NOT NULL
    GROUP BY sales_date, sku
), result AS (
    SELECT sales_date, sku, region, lines, orders, units, revenue, customers, 0 AS cells_folded
    FROM pg_temp.sales_cells WHERE fold_ids IS NULL
    UNION ALL
    SELECT sales_date, sku, '{OTHER}', lines, orders, units, revenue, customers, cells
    FROM folded
), published AS (
    INSERT INTO analytics.sales_volume_daily
        (sales_date, sku, region, orders, units, revenue, customers)
    SELECT sales_date, sku, region, orders, units, revenue, customers
    FROM result WHERE customers >= :k ORDER BY sales_date, sku, region
), per_day AS (
    SELECT sales_date,
           sum(lines) AS source_lines,
           sum(units) AS units_total,
           sum(units) FILTER (WHERE customers >= :k) AS units_published,
           sum(units) FILTER (WHERE customers >= :k AND region = '{OTHER}') AS units_folded,
           sum(units) FILTER (WHERE customers < :k) AS units_withheld,
           count(*) FILTER (WHERE customers >= :k) AS rows_published,
           sum(cells_folded) AS cells_folded,
           count(*) FILTER (WHERE customers < :k) AS rows_withheld
    FROM result GROUP BY sales_date
)
INSERT INTO lifecycle.sales_days AS s (sales_date, built_at, run_id, source_lines, units_total,
    units_published, units_folded, units_withheld, rows_published, cells_folded, rows_withheld)
SELECT d.day, now(), :run_id, coalesce(p.source_lines, 0), coalesce(p.units_total, 0),
       coalesce(p.units_published, 0), coalesce(p.units_folded, 0), coalesce(p.units_withheld, 0),
       coalesce(p.rows_published, 0), coalesce(p.cells_folded, 0), coalesce(p.rows_withheld, 0)
FROM unnest(CAST(:days AS date[])) AS d(day) LEFT JOIN per_day p ON p.sales_date = d.day
ON CONFLICT (sales_date) DO UPDATE SET
    built_at = EXCLUDED.built_at, run_id = EXCLUDED.run_id, source_lines = EXCLUDED.source_lines,
    units_total = EXCLUDED.units_total, units_published = EXCLUDED.units_published,
    units_folded = EXCLUDED.units_folded, units_withheld = EXCLUDED.units_withheld,
    rows_published = EXCLUDED.rows_published, cells_folded = EXCLUDED.cells_folded,
    rows_withheld = EXCLUDED.rows_withheld
RETURNING s.sales_date, s.source_lines, s.units_total, s.units_published, s.units_folded,
          s.units_withheld, s.rows_published, s.cells_folded, s.rows_withheld
""")
_DELETE_DAYS = sa.text(
    "DELETE FROM analytics.sales_volume_daily WHERE sales_date = ANY(CAST(:days AS date[]))"
)
_DELETE_ALL = (
    sa.text("DELETE FROM analytics.sales_volume_daily"),
    sa.text("DELETE FROM lifecycle.sales_days"),
)


def _ranges(days: list[date]) -> list[tuple[date, date]]:
    """Contiguous runs of sorted days as half-open [first, after_last) pairs."""
    runs: list[tuple[date, date]] = []
    for day in days:
        if runs and runs[-1][1] == day:
            runs[-1] = (runs[-1][0], day + timedelta(days=1))
        else:
            runs.append((day, day + timedelta(days=1)))
    return runs


def _build_days(conn: Connection, src: Source, days: list[date], run_id: str) -> list[DayStats]:
    """Replaces the published rows of `days` (sorted, distinct) with a fresh build of them."""
    if not days:
        return []
    runs = _ranges(days)
    conn.execute(sa.text(_cells_sql(src, len(runs))), src.range_params(runs) | {"k": src.k})
    conn.execute(_DELETE_DAYS, {"days": days})
    rows = conn.execute(_PUBLISH_SQL, {"k": src.k, "days": days, "run_id": run_id}).all()
    conn.execute(sa.text("DROP TABLE pg_temp.sales_cells"))
    return sorted((DayStats(*row) for row in rows), key=lambda s: s.sales_date)


# ---------------------------------------------------------------- what to rebuild

_LAST_COMPLETE_DAY = sa.text("SELECT (CAST(:as_of AS timestamptz) AT TIME ZONE :tz)::date - 1")
_STATE = sa.text("SELECT build_signature, capture_signature FROM lifecycle.sales_state")
_WRITE_STATE = sa.text("""
    INSERT INTO lifecycle.sales_state (id, build_signature, capture_signature, updated_at)
    VALUES (true, :build, :capture, now())
    ON CONFLICT (id) DO UPDATE SET build_signature = EXCLUDED.build_signature,
        capture_signature = EXCLUDED.capture_signature, updated_at = EXCLUDED.updated_at
""")
_LAST_BUILT = sa.text("SELECT max(sales_date) FROM lifecycle.sales_days")
_TABLE_ROWS = sa.text("SELECT count(*) FROM analytics.sales_volume_daily")
HOUR_DAYS = """
    LEFT JOIN LATERAL (
        VALUES ((g.hour AT TIME ZONE :tz)::date),
               (((g.hour + interval '1 hour' - interval '1 microsecond') AT TIME ZONE :tz)::date)
    ) v(day) ON g.hour IS NOT NULL"""
# Consumed first, then built from a later snapshot: a change committed before this DELETE is in
# the build; one committed after it keeps its row for the next run. No row is ever lost.
_CONSUME_BEFORE = sa.text(f"""
    WITH gone AS (
        DELETE FROM lifecycle.sales_changes
        WHERE hour IS NULL OR hour < {_local_midnight("before")} RETURNING hour
    )
    SELECT count(*), coalesce(bool_or(g.hour IS NULL), false),
           coalesce(array_agg(DISTINCT v.day) FILTER (WHERE v.day IS NOT NULL), '{{}}')
    FROM gone g {HOUR_DAYS}
""")
_CONSUME_WITHIN = sa.text(f"""
    DELETE FROM lifecycle.sales_changes
    WHERE hour >= {_local_midnight("first")}
      AND hour + interval '1 hour' <= {_local_midnight("after")}
""")
_FIRST_SALES_DAY = """
    SELECT (CAST(min(o.{placed}) AS timestamptz) AT TIME ZONE :tz)::date
    FROM {orders} o WHERE o.{status} IN ({statuses})
"""


def _check_timezone(conn: Connection, policy: Policy) -> None:
    zone = policy.analytics.timezone
    try:
        with conn.begin_nested():
            conn.execute(sa.text("SELECT now() AT TIME ZONE :tz"), {"tz": zone})
    except sa.exc.DBAPIError as exc:
        raise SalesError(
            f"{policy.path.name}: analytics.timezone: '{zone}' is not known to the PostgreSQL "
            f"server ({describe_db_error(exc)}); use a zone listed in pg_timezone_names"
        ) from None


def _prepare(engine: Engine, policy: Policy) -> tuple[Source, str, bool | None]:
    """Checks the time zone, installs change capture and the fold's aggregate: a short transaction.

    Kept apart from the build so the trigger DDL's lock on the raw tables lasts milliseconds,
    not the length of a full rebuild. Returns the source, the capture's signature and whether
    capture was installed (None: it could not get its locks, see
    `ensure_capture_within_lock_timeout`).
    """
    src = Source(policy)
    with build_transaction(engine) as conn:
        _check_timezone(conn, policy)
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        zone = naive_zone(conn, src)
        signature = capture_signature(policy, zone)
        installed = ensure_capture_within_lock_timeout(conn, src, signature, zone)
        if installed is None:  # recorded so, the next build rebuilds everything again
            signature = CAPTURE_UNAVAILABLE
        if not conn.execute(_HAS_ARRAY_CONCAT).scalar():
            conn.execute(_ARRAY_CONCAT)
    return src, signature, installed


def _begin_build(conn: Connection) -> None:
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    conn.execute(sa.text(f"SET LOCAL work_mem = '{WORK_MEM}'"))


def _full_rebuild_reason(
    conn: Connection, src: Source, capture: str, installed: bool | None, truncated: bool
) -> str | None:
    if installed is None:
        return CAPTURE_UNAVAILABLE_REASON.format(orders=src.orders_table, items=src.items_table)
    state = conn.execute(_STATE).first()
    if state is None:
        return "first build"
    if state.build_signature != src.signature:
        return f"build rules changed ({state.build_signature} -> {src.signature})"
    if installed or state.capture_signature != capture:
        return "change capture was (re)installed, so earlier changes may be unrecorded"
    if truncated:
        return "a raw table was truncated"
    return None


def _rebuild_everything(conn: Connection, src: Source, last: date) -> list[date]:
    """Empties the published days and returns every day from the first sale to `last`."""
    statement = _FIRST_SALES_DAY.format(
        placed=src.o["placed_at"], orders=src.orders, status=src.o["status"], statuses=src.statuses
    )
    first = conn.execute(sa.text(statement), {"tz": src.tz}).scalar()
    for delete in _DELETE_ALL:
        conn.execute(delete)
    if first is None or first > last:
        return []
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


# What a build asks before choosing its days: why everything must be rebuilt (None if nothing),
# given whether a raw table was truncated.
_RebuildReason = Callable[[bool], str | None]


def _build(
    engine: Engine,
    policy: Policy,
    run_id: str,
    as_of: datetime,
    plan: Callable[[Connection, Source, date, _RebuildReason], SalesBuild],
) -> SalesBuild:
    """Runs one build in one transaction: `plan` chooses the days, which are then rebuilt.

    `plan` gets the last complete day and the full-rebuild reason. One build at a time; readers
    see the old figures or the new ones, never a mix; on a database error nothing changes.
    """
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    started = time.perf_counter()
    src, capture, installed = _prepare(engine, policy)
    with build_transaction(engine) as conn:
        _begin_build(conn)
        last = conn.execute(_LAST_COMPLETE_DAY, {"as_of": as_of, "tz": src.tz}).scalar_one()
        build = plan(
            conn,
            src,
            last,
            lambda truncated: _full_rebuild_reason(conn, src, capture, installed, truncated),
        )
        build.capture_unavailable = installed is None
        build.stats = _build_days(conn, src, build.days, run_id)
        build.uncounted = uncounted_lines(conn, src, _ranges(build.days))
        conn.execute(_WRITE_STATE, {"build": src.signature, "capture": capture})
        build.table_rows = conn.execute(_TABLE_ROWS).scalar_one()
    build.seconds = time.perf_counter() - started
    return build


def refresh(engine: Engine, policy: Policy, run_id: str, as_of: datetime) -> SalesBuild:
    """The nightly build: yesterday, every earlier day whose source rows changed, any day missed.

    Everything is rebuilt instead when the rules (time zone, k, mapping) changed, capture was
    just installed, or a raw table was truncated. One transaction: readers see the old figures
    or the new ones, never a mix.
    """

    def plan(
        conn: Connection, src: Source, last: date, rebuild_reason: _RebuildReason
    ) -> SalesBuild:
        consumed = {"before": last + timedelta(days=1), "tz": src.tz}
        _, truncated, marked = conn.execute(_CONSUME_BEFORE, consumed).one()
        reason = rebuild_reason(truncated)
        build = SalesBuild(
            run_id=run_id,
            mode="full" if reason else "incremental",
            reason=reason or REGULAR_REASON,
            last_complete_day=last,
            timezone=src.tz,
            k=src.k,
        )
        if reason:
            build.days = _rebuild_everything(conn, src, last)
        else:
            changed = {d for d in marked if d <= last}
            built = conn.execute(_LAST_BUILT).scalar()
            start = built + timedelta(days=1) if built is not None else last
            missed = {start + timedelta(days=n) for n in range((last - start).days + 1)}
            build.changed_days = len(changed - missed - {last})
            build.catch_up_days = len(missed - {last})
            build.days = sorted(changed | missed | {last})
        return build

    return _build(engine, policy, run_id, as_of, plan)


def build_range(
    engine: Engine, policy: Policy, first: date, last: date, run_id: str, as_of: datetime
) -> SalesBuild:
    """Rebuilds exactly the days first..last (a backfill), skipping days not yet complete.

    If the published days were built under other rules, everything is rebuilt first, so the
    table never mixes two time zones or two values of k.
    """
    if last < first:
        raise ValueError(f"empty range: {first.isoformat()} is after {last.isoformat()}")

    def plan(
        conn: Connection, src: Source, complete: date, rebuild_reason: _RebuildReason
    ) -> SalesBuild:
        wanted = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        days = [d for d in wanted if d <= complete]
        reason = rebuild_reason(False)
        build = SalesBuild(
            run_id=run_id,
            mode="range",
            reason=f"backfill {first}..{last}",
            last_complete_day=complete,
            timezone=src.tz,
            k=src.k,
            skipped_incomplete=[d for d in wanted if d > complete],
        )
        if reason:
            build.mode, build.reason = "full", f"{reason}; backfill {first}..{last} included"
            conn.execute(_CONSUME_BEFORE, {"before": complete + timedelta(days=1), "tz": src.tz})
            days = sorted(set(_rebuild_everything(conn, src, complete)) | set(days))
        elif days:
            conn.execute(
                _CONSUME_WITHIN,
                {"first": days[0], "after": days[-1] + timedelta(days=1), "tz": src.tz},
            )
        build.days = days
        return build

    return _build(engine, policy, run_id, as_of, plan)


def last_complete_day(engine: Engine, policy: Policy, as_of: datetime) -> date:
    """The newest sales date that has ended in the shop's time zone at `as_of`."""
    with engine.connect() as conn:
        params = {"as_of": as_of, "tz": policy.analytics.timezone}
        return conn.execute(_LAST_COMPLETE_DAY, params).scalar_one()


_PENDING_DAYS = sa.text(f"""
    SELECT DISTINCT v.day FROM lifecycle.sales_changes g {HOUR_DAYS}
    WHERE v.day IS NOT NULL ORDER BY 1
""")


def pending_days(engine: Engine, policy: Policy) -> list[date]:
    """Sales dates whose source rows changed since they were built (none right after a refresh)."""
    with engine.connect() as conn:
        return list(conn.execute(_PENDING_DAYS, {"tz": policy.analytics.timezone}).scalars())


def day_stats(engine: Engine, days: list[date]) -> list[DayStats]:
    """The recorded protection cost of each of `days` that has been built."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("""
            SELECT sales_date, source_lines, units_total, units_published, units_folded,
                   units_withheld, rows_published, cells_folded, rows_withheld
            FROM lifecycle.sales_days WHERE sales_date = ANY(CAST(:days AS date[]))
            ORDER BY sales_date
        """),
            {"days": days},
        ).all()
    return [DayStats(*row) for row in rows]


_BUILT_DAYS = sa.text("SELECT sales_date FROM lifecycle.sales_days ORDER BY sales_date")


def built_days(engine: Engine) -> list[date]:
    """Every sales date built so far, from the shop's first sale to the last complete day, in order."""
    with engine.connect() as conn:
        return list(conn.execute(_BUILT_DAYS).scalars())
