"""Published sales volume: units per day, sku and region that no one can single a buyer out of.

The one analytical use the privacy statement allows ("count platform commodity sales volume,
optimize product inventory allocation and adjust product line layout"), built in the database:
  - an order line counts when its order is paid, shipped or delivered, dated by placed_at in the
    policy's time zone (`analytics.timezone`);
  - a (date, sku, region) cell with fewer than k distinct customers (`min_customers_per_cell`)
    folds into region OTHER for that date and sku; an OTHER row still under k is withheld;
  - nothing in `analytics` carries a customer id, an order id or a personal column.

Change capture: triggers on the raw tables append the UTC hours whose sales rows changed to
`lifecycle.sales_changes`; the nightly refresh rebuilds yesterday plus the days those hours fall
on, so it reads about one day of orders, not the table. docs/sales.md explains the design.
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lifecycle.db import describe_db_error
from lifecycle.policy import Policy

SALES_STATUSES = ("paid", "shipped", "delivered")
OTHER = "OTHER"
# Bump when the build's rules change, so every published day is rebuilt under the new ones.
BUILD_VERSION = 1
# The build's sorts and hashes stay in memory instead of spilling (1M orders: ~1.5x faster than 4MB).
WORK_MEM = "64MB"
LOCK_KEY = 4_711_020_004  # pg_advisory_xact_lock: one sales build at a time
PREVIEW_ROWS = 10
CHART_DAYS = 28
SAMPLE_DATES = 10
CAPTURE_TRIGGER_PREFIX = "lifecycle_sales_"


class SalesError(RuntimeError):
    """The build could not run; the published tables were left as they were."""


# ---------------------------------------------------------------- the source, as the policy maps it

class _Source:
    """Quoted names of the raw tables and the columns the build reads, from the validated policy."""

    def __init__(self, policy: Policy):
        o, i = policy.raw.orders, policy.raw.order_items
        self.orders_table, self.items_table = o.table, i.table
        self.orders, self.items = o.sql, i.sql
        self.o = {role: o.col(role) for role in o.columns}
        self.i = {role: i.col(role) for role in i.columns}
        self.statuses = ", ".join(f"'{s}'" for s in SALES_STATUSES)
        self.tz = policy.analytics.timezone
        self.k = policy.analytics.min_customers_per_cell
        used_o = ("order_id", "customer_id", "status", "placed_at", "ship_region")
        used_i = ("order_id", "sku", "quantity", "unit_price")
        self.signature = (
            f"v{BUILD_VERSION} tz={self.tz} k={self.k} statuses={','.join(SALES_STATUSES)} "
            f"orders={o.table}({','.join(o.columns[r] for r in used_o)}) "
            f"items={i.table}({','.join(i.columns[r] for r in used_i)})"
        )


# ---------------------------------------------------------------- change capture

def _capture_ddl(src: _Source) -> list[str]:
    """Trigger functions and triggers that record which UTC hours of placed_at changed.

    INSERT and DELETE are statement-level with transition tables (one insert per statement, so a
    bulk load costs one DISTINCT, not a trigger call per row). UPDATE is row-level, limited to the
    columns the figures read and filtered by WHEN, so the purge (which updates personal columns
    and purged_at only) never fires it. TRUNCATE marks everything stale.
    """
    o, i, s = src.o, src.i, src.statuses
    hour = "date_trunc('hour', {}, 'UTC')"
    header = "RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$ BEGIN"
    in_sales = "{row}." + o["status"] + f" IN ({s})"
    order_changed = " OR ".join(f"OLD.{o[c]} IS DISTINCT FROM NEW.{o[c]}" for c in ("placed_at", "customer_id", "ship_region"))
    item_changed = " OR ".join(f"OLD.{i[c]} IS DISTINCT FROM NEW.{i[c]}" for c in ("order_id", "sku", "quantity", "unit_price"))
    orders_when = (
        f"(({in_sales.format(row='OLD')}) IS DISTINCT FROM ({in_sales.format(row='NEW')})) OR "
        f"(({in_sales.format(row='OLD')} OR {in_sales.format(row='NEW')}) AND ({order_changed}))"
    )
    order_cols = ", ".join(o[c] for c in ("status", "placed_at", "customer_id", "ship_region"))
    item_cols = ", ".join(i[c] for c in ("order_id", "sku", "quantity", "unit_price"))
    p = CAPTURE_TRIGGER_PREFIX
    return [
        f"""CREATE OR REPLACE FUNCTION lifecycle.sales_capture_orders_rows() {header}
            INSERT INTO lifecycle.sales_changes (hour)
            SELECT DISTINCT {hour.format('c.' + o['placed_at'])} FROM changed_rows c
            WHERE c.{o['status']} IN ({s}) AND c.{o['placed_at']} IS NOT NULL ORDER BY 1;
            RETURN NULL; END $fn$""",
        f"""CREATE OR REPLACE FUNCTION lifecycle.sales_capture_orders_update() {header}
            INSERT INTO lifecycle.sales_changes (hour)
            SELECT DISTINCT {hour.format('t')} FROM (VALUES (OLD.{o['placed_at']}), (NEW.{o['placed_at']})) v(t)
            WHERE t IS NOT NULL;
            RETURN NULL; END $fn$""",
        f"""CREATE OR REPLACE FUNCTION lifecycle.sales_capture_items_rows() {header}
            INSERT INTO lifecycle.sales_changes (hour)
            SELECT DISTINCT {hour.format('o.' + o['placed_at'])}
            FROM (SELECT DISTINCT {i['order_id']} AS order_id FROM changed_rows) c
            JOIN {src.orders} o ON o.{o['order_id']} = c.order_id
            WHERE o.{o['status']} IN ({s}) AND o.{o['placed_at']} IS NOT NULL ORDER BY 1;
            RETURN NULL; END $fn$""",
        f"""CREATE OR REPLACE FUNCTION lifecycle.sales_capture_items_update() {header}
            INSERT INTO lifecycle.sales_changes (hour)
            SELECT DISTINCT {hour.format('o.' + o['placed_at'])} FROM {src.orders} o
            WHERE o.{o['order_id']} IN (OLD.{i['order_id']}, NEW.{i['order_id']})
              AND o.{o['status']} IN ({s}) AND o.{o['placed_at']} IS NOT NULL;
            RETURN NULL; END $fn$""",
        f"""CREATE OR REPLACE FUNCTION lifecycle.sales_capture_truncate() {header}
            INSERT INTO lifecycle.sales_changes (hour) VALUES (NULL);
            RETURN NULL; END $fn$""",
        f"""CREATE TRIGGER {p}orders_insert AFTER INSERT ON {src.orders}
            REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT
            EXECUTE FUNCTION lifecycle.sales_capture_orders_rows()""",
        f"""CREATE TRIGGER {p}orders_delete AFTER DELETE ON {src.orders}
            REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT
            EXECUTE FUNCTION lifecycle.sales_capture_orders_rows()""",
        f"""CREATE TRIGGER {p}orders_update AFTER UPDATE OF {order_cols} ON {src.orders}
            FOR EACH ROW WHEN ({orders_when}) EXECUTE FUNCTION lifecycle.sales_capture_orders_update()""",
        f"""CREATE TRIGGER {p}orders_truncate AFTER TRUNCATE ON {src.orders}
            FOR EACH STATEMENT EXECUTE FUNCTION lifecycle.sales_capture_truncate()""",
        f"""CREATE TRIGGER {p}items_insert AFTER INSERT ON {src.items}
            REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT
            EXECUTE FUNCTION lifecycle.sales_capture_items_rows()""",
        f"""CREATE TRIGGER {p}items_delete AFTER DELETE ON {src.items}
            REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT
            EXECUTE FUNCTION lifecycle.sales_capture_items_rows()""",
        f"""CREATE TRIGGER {p}items_update AFTER UPDATE OF {item_cols} ON {src.items}
            FOR EACH ROW WHEN ({item_changed}) EXECUTE FUNCTION lifecycle.sales_capture_items_update()""",
        f"""CREATE TRIGGER {p}items_truncate AFTER TRUNCATE ON {src.items}
            FOR EACH STATEMENT EXECUTE FUNCTION lifecycle.sales_capture_truncate()""",
    ]


_CAPTURE_TRIGGERS = ("orders_insert", "orders_delete", "orders_update", "orders_truncate",
                     "items_insert", "items_delete", "items_update", "items_truncate")

_INSTALLED_TRIGGERS = sa.text(r"""
    SELECT t.tgname, t.tgrelid = to_regclass(:orders) OR t.tgrelid = to_regclass(:items) AS on_source,
           t.tgenabled = 'O' AS enabled,
           obj_description(to_regprocedure('lifecycle.sales_capture_orders_rows()'), 'pg_proc') AS signature
    FROM pg_trigger t WHERE t.tgname LIKE 'lifecycle\_sales\_%' AND NOT t.tgisinternal
""")
# Triggers of an earlier mapping (another table) are dropped before the current ones are created.
_DROP_CAPTURE_TRIGGERS = r"""
DO $$ DECLARE t record; BEGIN
    FOR t IN SELECT tgname, tgrelid::regclass AS rel FROM pg_trigger
             WHERE tgname LIKE 'lifecycle\_sales\_%' AND NOT tgisinternal LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, t.rel);
    END LOOP;
END $$"""


def capture_signature(policy: Policy) -> str:
    """A short hash of the capture triggers this policy needs; stored with the published days."""
    return hashlib.sha256("\n".join(_capture_ddl(_Source(policy))).encode()).hexdigest()[:16]


# Concatenates the customer ids of the cells that fold into one OTHER row, so each OTHER row counts
# its distinct customers over its own few ids instead of one sort of every folded id.
_ARRAY_CONCAT = sa.text("""
    CREATE AGGREGATE lifecycle.array_concat(anycompatiblearray) (SFUNC = array_cat, STYPE = anycompatiblearray)
""")
_HAS_ARRAY_CONCAT = sa.text("SELECT to_regprocedure('lifecycle.array_concat(anycompatiblearray)') IS NOT NULL")


def _ensure_capture(conn: Connection, src: _Source, signature: str) -> bool:
    """Installs the change-capture triggers unless exactly these are in place; True if it had to."""
    rows = conn.execute(_INSTALLED_TRIGGERS, {"orders": src.orders_table, "items": src.items_table}).all()
    present = {name for name, on_source, enabled, _ in rows if on_source and enabled}
    stored = {sig for *_, sig in rows}
    expected = {CAPTURE_TRIGGER_PREFIX + name for name in _CAPTURE_TRIGGERS}
    if present == expected and len(rows) == len(expected) and stored == {signature}:
        return False
    conn.execute(sa.text(_DROP_CAPTURE_TRIGGERS))
    for statement in _capture_ddl(src):
        conn.execute(sa.text(statement))
    conn.execute(sa.text(f"COMMENT ON FUNCTION lifecycle.sales_capture_orders_rows() IS '{signature}'"))
    return True


# ---------------------------------------------------------------- the build

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
            "min_customers_per_cell": self.k,
            "timezone": self.timezone,
            "seconds": round(self.seconds, 3),
        }


def _local_midnight(day_param: str) -> str:
    return f"(CAST(:{day_param} AS date)::timestamp AT TIME ZONE :tz)"


def _cells_sql(src: _Source, ranges: int) -> str:
    # One row per (date, sku, region) cell, with the cell's customer ids only where it will fold.
    # Parallel-safe CREATE TABLE AS: PostgreSQL may use several workers, an INSERT could not.
    o, i = src.o, src.i
    placed = f"o.{o['placed_at']}"
    within = " OR ".join(
        f"({placed} >= {_local_midnight(f'lo{n}')} AND {placed} < {_local_midnight(f'hi{n}')})" for n in range(ranges)
    )
    # Codes compare byte-wise (COLLATE "C"): the sort by sku and region is the build's largest cost.
    return f"""
    CREATE TEMP TABLE sales_cells ON COMMIT DROP AS
    SELECT sales_date, sku, region,
           count(*) AS lines,
           count(DISTINCT order_id) AS orders,
           sum(quantity) AS units,
           sum(amount) AS revenue,
           count(DISTINCT customer_id) AS customers,
           CASE WHEN count(DISTINCT customer_id) < :k OR region = '{OTHER}'
                THEN array_agg(customer_id) END AS fold_ids
    FROM (
        SELECT ({placed} AT TIME ZONE :tz)::date AS sales_date,
               CAST(i.{i['sku']} AS text) COLLATE "C" AS sku,
               coalesce(nullif(CAST(o.{o['ship_region']} AS text), ''), '{OTHER}') COLLATE "C" AS region,
               o.{o['order_id']} AS order_id, o.{o['customer_id']} AS customer_id,
               i.{i['quantity']} AS quantity, i.{i['quantity']} * i.{i['unit_price']} AS amount
        FROM {src.orders} o
        JOIN {src.items} i ON i.{i['order_id']} = o.{o['order_id']}
        WHERE o.{o['status']} IN ({src.statuses}) AND ({within})
    ) line
    GROUP BY sales_date, sku, region
    """


# Folds small cells into OTHER (a customer counted once across them), publishes rows of at least
# k customers, and records per day what the protection cost, in one statement.
_PUBLISH_SQL = sa.text(f"""
WITH folded AS (
    -- A customer in two folded cells is one customer: distinct over the cells' ids, per OTHER row.
    SELECT sales_date, sku, sum(lines) AS lines, sum(orders) AS orders, sum(units) AS units,
           sum(revenue) AS revenue, count(*) AS cells,
           (SELECT count(DISTINCT id) FROM unnest(lifecycle.array_concat(fold_ids)) AS id) AS customers
    FROM pg_temp.sales_cells WHERE fold_ids IS NOT NULL
    GROUP BY sales_date, sku
), result AS (
    SELECT sales_date, sku, region, lines, orders, units, revenue, customers, 0 AS cells_folded
    FROM pg_temp.sales_cells WHERE fold_ids IS NULL
    UNION ALL
    SELECT sales_date, sku, '{OTHER}', lines, orders, units, revenue, customers, cells
    FROM folded
), published AS (
    INSERT INTO analytics.sales_volume_daily (sales_date, sku, region, orders, units, revenue, customers)
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
_DELETE_DAYS = sa.text("DELETE FROM analytics.sales_volume_daily WHERE sales_date = ANY(CAST(:days AS date[]))")
_DELETE_ALL = (sa.text("DELETE FROM analytics.sales_volume_daily"), sa.text("DELETE FROM lifecycle.sales_days"))


def _ranges(days: list[date]) -> list[tuple[date, date]]:
    """Contiguous runs of sorted days as half-open [first, after_last) pairs."""
    runs: list[tuple[date, date]] = []
    for day in days:
        if runs and runs[-1][1] == day:
            runs[-1] = (runs[-1][0], day + timedelta(days=1))
        else:
            runs.append((day, day + timedelta(days=1)))
    return runs


def _build_days(conn: Connection, src: _Source, days: list[date], run_id: str) -> list[DayStats]:
    """Replaces the published rows of `days` (sorted, distinct) with a fresh build of them."""
    if not days:
        return []
    runs = _ranges(days)
    params: dict[str, object] = {"tz": src.tz, "k": src.k}
    for n, (lo, hi) in enumerate(runs):
        params[f"lo{n}"], params[f"hi{n}"] = lo, hi
    conn.execute(sa.text(_cells_sql(src, len(runs))), params)
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
_HOUR_DAYS = """
    LEFT JOIN LATERAL (VALUES ((g.hour AT TIME ZONE :tz)::date),
                              (((g.hour + interval '1 hour' - interval '1 microsecond') AT TIME ZONE :tz)::date)) v(day)
           ON g.hour IS NOT NULL"""
# Consumed first, then built from a later snapshot: a change committed before this DELETE is in
# the build; one committed after it keeps its row for the next run. No row is ever lost.
_CONSUME_BEFORE = sa.text(f"""
    WITH gone AS (
        DELETE FROM lifecycle.sales_changes
        WHERE hour IS NULL OR hour < {_local_midnight('before')} RETURNING hour
    )
    SELECT count(*), coalesce(bool_or(g.hour IS NULL), false),
           coalesce(array_agg(DISTINCT v.day) FILTER (WHERE v.day IS NOT NULL), '{{}}')
    FROM gone g {_HOUR_DAYS}
""")
_CONSUME_WITHIN = sa.text(f"""
    DELETE FROM lifecycle.sales_changes
    WHERE hour >= {_local_midnight('first')} AND hour + interval '1 hour' <= {_local_midnight('after')}
""")
_FIRST_SALES_DAY = """
    SELECT (min(o.{placed}) AT TIME ZONE :tz)::date FROM {orders} o WHERE o.{status} IN ({statuses})
"""


def _check_timezone(conn: Connection, policy: Policy) -> None:
    try:
        with conn.begin_nested():
            conn.execute(sa.text("SELECT now() AT TIME ZONE :tz"), {"tz": policy.analytics.timezone})
    except sa.exc.DBAPIError as exc:
        raise SalesError(
            f"{policy.path.name}: analytics.timezone: '{policy.analytics.timezone}' is not known to the "
            f"PostgreSQL server ({describe_db_error(exc)}); use a zone listed in pg_timezone_names"
        ) from None


def _prepare(engine: Engine, policy: Policy) -> tuple[_Source, str, bool]:
    """Checks the time zone, installs change capture (and the fold's aggregate) in a short transaction.

    Kept apart from the build so the trigger DDL's lock on the raw tables lasts milliseconds,
    not the length of a full rebuild.
    """
    src = _Source(policy)
    signature = capture_signature(policy)
    with engine.begin() as conn:
        _check_timezone(conn, policy)
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        installed = _ensure_capture(conn, src, signature)
        if not conn.execute(_HAS_ARRAY_CONCAT).scalar():
            conn.execute(_ARRAY_CONCAT)
    return src, signature, installed


def _begin_build(conn: Connection) -> None:
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    conn.execute(sa.text(f"SET LOCAL work_mem = '{WORK_MEM}'"))


def _full_rebuild_reason(conn: Connection, src: _Source, capture: str, installed: bool, truncated: bool) -> str | None:
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


def _rebuild_everything(conn: Connection, src: _Source, last: date) -> list[date]:
    """Empties the published days and returns every day from the first sale to `last`."""
    first = conn.execute(sa.text(_FIRST_SALES_DAY.format(
        placed=src.o["placed_at"], orders=src.orders, status=src.o["status"], statuses=src.statuses)),
        {"tz": src.tz}).scalar()
    for statement in _DELETE_ALL:
        conn.execute(statement)
    if first is None or first > last:
        return []
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def refresh(engine: Engine, policy: Policy, run_id: str, as_of: datetime) -> SalesBuild:
    """The nightly build: yesterday, every earlier day whose source rows changed, and any day missed.

    Everything is rebuilt instead when the rules (time zone, k, mapping) changed, capture was
    just installed, or a raw table was truncated. One transaction: readers see the old figures
    or the new ones, never a mix.
    """
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    started = time.perf_counter()
    src, capture, installed = _prepare(engine, policy)
    try:
        with engine.begin() as conn:
            _begin_build(conn)
            last = conn.execute(_LAST_COMPLETE_DAY, {"as_of": as_of, "tz": src.tz}).scalar_one()
            _, truncated, marked = conn.execute(
                _CONSUME_BEFORE, {"before": last + timedelta(days=1), "tz": src.tz}).one()
            reason = _full_rebuild_reason(conn, src, capture, installed, truncated)
            build = SalesBuild(run_id=run_id, mode="full" if reason else "incremental",
                               reason=reason or "yesterday, changed days and missed days",
                               last_complete_day=last, timezone=src.tz, k=src.k)
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
            build.stats = _build_days(conn, src, build.days, run_id)
            conn.execute(_WRITE_STATE, {"build": src.signature, "capture": capture})
            build.table_rows = conn.execute(_TABLE_ROWS).scalar_one()
    except sa.exc.DBAPIError as exc:
        raise SalesError(f"sales build rolled back, published figures unchanged: {describe_db_error(exc)}") from None
    build.seconds = time.perf_counter() - started
    return build


def build_range(engine: Engine, policy: Policy, first: date, last: date, run_id: str, as_of: datetime) -> SalesBuild:
    """Rebuilds exactly the days first..last (a backfill), skipping days not yet complete.

    If the published days were built under other rules, everything is rebuilt first, so the
    table never mixes two time zones or two values of k.
    """
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    if last < first:
        raise ValueError(f"empty range: {first.isoformat()} is after {last.isoformat()}")
    started = time.perf_counter()
    src, capture, installed = _prepare(engine, policy)
    try:
        with engine.begin() as conn:
            _begin_build(conn)
            complete = conn.execute(_LAST_COMPLETE_DAY, {"as_of": as_of, "tz": src.tz}).scalar_one()
            wanted = [first + timedelta(days=n) for n in range((last - first).days + 1)]
            days = [d for d in wanted if d <= complete]
            reason = _full_rebuild_reason(conn, src, capture, installed, truncated=False)
            build = SalesBuild(run_id=run_id, mode="range", reason=f"backfill {first}..{last}",
                               last_complete_day=complete, timezone=src.tz, k=src.k,
                               skipped_incomplete=[d for d in wanted if d > complete])
            if reason:
                build.mode, build.reason = "full", f"{reason}; backfill {first}..{last} included"
                conn.execute(_CONSUME_BEFORE, {"before": complete + timedelta(days=1), "tz": src.tz})
                days = sorted(set(_rebuild_everything(conn, src, complete)) | set(days))
            elif days:
                conn.execute(_CONSUME_WITHIN, {"first": days[0], "after": days[-1] + timedelta(days=1), "tz": src.tz})
            build.days = days
            build.stats = _build_days(conn, src, days, run_id)
            conn.execute(_WRITE_STATE, {"build": src.signature, "capture": capture})
            build.table_rows = conn.execute(_TABLE_ROWS).scalar_one()
    except sa.exc.DBAPIError as exc:
        raise SalesError(f"sales build rolled back, published figures unchanged: {describe_db_error(exc)}") from None
    build.seconds = time.perf_counter() - started
    return build


def last_complete_day(engine: Engine, policy: Policy, as_of: datetime) -> date:
    """The newest sales date that has ended in the shop's time zone at `as_of`."""
    with engine.connect() as conn:
        return conn.execute(_LAST_COMPLETE_DAY, {"as_of": as_of, "tz": policy.analytics.timezone}).scalar_one()


_PENDING_DAYS = sa.text(f"""
    SELECT DISTINCT v.day FROM lifecycle.sales_changes g {_HOUR_DAYS} WHERE v.day IS NOT NULL ORDER BY 1
""")


def pending_days(engine: Engine, policy: Policy) -> list[date]:
    """Sales dates whose source rows changed since they were built (none right after a refresh)."""
    with engine.connect() as conn:
        return list(conn.execute(_PENDING_DAYS, {"tz": policy.analytics.timezone}).scalars())


# ---------------------------------------------------------------- planning tables

@dataclass
class PlanningBuild:
    """One rebuilt planning table: its size and the day it is current to."""

    table: str
    as_of_date: date
    rows: int
    seconds: float

    def metadata(self) -> dict[str, object]:
        """Table, size and currency for the planning asset's materialization."""
        return {"table": self.table, "as_of_date": self.as_of_date.isoformat(), "rows": self.rows,
                "seconds": round(self.seconds, 3)}


# Weeks are ISO weeks (Monday first), in plain date arithmetic so no session time zone enters.
# The grid gives every (sku, region) a row for each week since it first sold, so weeks without
# sales count as zero in the trailing average; rows are kept while that average is above zero.
_WEEKLY_SQL = sa.text("""
WITH weekly AS (
    SELECT sales_date - (extract(isodow FROM sales_date)::int - 1) AS week_start, sku, region,
           sum(units) AS units, sum(orders) AS orders, sum(revenue) AS revenue,
           count(*) AS days_with_sales, max(customers) AS customers
    FROM analytics.sales_volume_daily WHERE sales_date <= :as_of_date
    GROUP BY 1, 2, 3
), span AS (
    SELECT sku, region, min(week_start) AS first_week FROM weekly GROUP BY sku, region
), grid AS (
    SELECT s.sku, s.region, s.first_week + 7 * n AS week_start
    FROM span s, generate_series(0, (:this_week - s.first_week) / 7) AS n
), dense AS (
    SELECT g.week_start, g.sku, g.region,
           coalesce(w.units, 0) AS units, coalesce(w.orders, 0) AS orders,
           coalesce(w.revenue, 0) AS revenue, coalesce(w.days_with_sales, 0) AS days_with_sales,
           coalesce(w.customers, 0) AS customers,
           avg(coalesce(w.units, 0)) OVER last_4_weeks AS units_avg_4w,
           lag(coalesce(w.units, 0)) OVER series AS previous_units
    FROM grid g LEFT JOIN weekly w USING (week_start, sku, region)
    WINDOW series AS (PARTITION BY g.sku, g.region ORDER BY g.week_start),
           last_4_weeks AS (series ROWS BETWEEN 3 PRECEDING AND CURRENT ROW)
)
INSERT INTO analytics.weekly_demand (week_start, sku, region, week_complete, units, orders, revenue,
    days_with_sales, units_avg_4w, units_change_wow, units_change_wow_pct, customers)
SELECT week_start, sku, region, week_start + 6 <= :as_of_date, units, orders, revenue, days_with_sales,
       round(units_avg_4w, 2), units - previous_units,
       CASE WHEN previous_units > 0 THEN round(100.0 * (units - previous_units) / previous_units, 1) END,
       customers
FROM dense WHERE units > 0 OR units_avg_4w > 0
ORDER BY week_start, sku, region
""")

_SUMMARY_SQL = sa.text("""
WITH per_sku AS (
    SELECT sku,
           coalesce(sum(units) FILTER (WHERE sales_date > :as_of_date - 7), 0) AS units_7d,
           coalesce(sum(units) FILTER (WHERE sales_date > :as_of_date - 28), 0) AS units_28d,
           coalesce(sum(units) FILTER (WHERE sales_date > :as_of_date - 91), 0) AS units_91d,
           coalesce(sum(units) FILTER (WHERE sales_date > :as_of_date - 56
                                         AND sales_date <= :as_of_date - 28), 0) AS units_prior_28d,
           coalesce(sum(revenue) FILTER (WHERE sales_date > :as_of_date - 7), 0) AS revenue_7d,
           coalesce(sum(revenue) FILTER (WHERE sales_date > :as_of_date - 28), 0) AS revenue_28d,
           coalesce(sum(revenue) FILTER (WHERE sales_date > :as_of_date - 91), 0) AS revenue_91d,
           max(customers) FILTER (WHERE sales_date > :as_of_date - 91) AS customers
    FROM analytics.sales_volume_daily
    WHERE sales_date > :as_of_date - 91 AND sales_date <= :as_of_date
    GROUP BY sku
), shares AS (
    SELECT p.*,
           sum(units_7d) OVER () AS all_units_7d, sum(units_28d) OVER () AS all_units_28d,
           sum(units_91d) OVER () AS all_units_91d, sum(revenue_7d) OVER () AS all_revenue_7d,
           sum(revenue_28d) OVER () AS all_revenue_28d, sum(revenue_91d) OVER () AS all_revenue_91d,
           rank() OVER (ORDER BY revenue_91d DESC) AS revenue_rank_91d,
           coalesce(sum(revenue_91d) OVER (ORDER BY revenue_91d DESC, sku
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS revenue_before
    FROM per_sku p WHERE units_91d > 0
)
INSERT INTO analytics.product_line_summary (as_of_date, sku, units_7d, units_28d, units_91d,
    revenue_7d, revenue_28d, revenue_91d, units_share_7d_pct, units_share_28d_pct, units_share_91d_pct,
    revenue_share_7d_pct, revenue_share_28d_pct, revenue_share_91d_pct, units_change_28d_pct,
    revenue_rank_91d, abc_class, customers)
SELECT :as_of_date, sku, units_7d, units_28d, units_91d, revenue_7d, revenue_28d, revenue_91d,
       coalesce(round(100.0 * units_7d / nullif(all_units_7d, 0), 2), 0),
       coalesce(round(100.0 * units_28d / nullif(all_units_28d, 0), 2), 0),
       coalesce(round(100.0 * units_91d / nullif(all_units_91d, 0), 2), 0),
       coalesce(round(100.0 * revenue_7d / nullif(all_revenue_7d, 0), 2), 0),
       coalesce(round(100.0 * revenue_28d / nullif(all_revenue_28d, 0), 2), 0),
       coalesce(round(100.0 * revenue_91d / nullif(all_revenue_91d, 0), 2), 0),
       CASE WHEN units_prior_28d > 0 THEN round(100.0 * (units_28d - units_prior_28d) / units_prior_28d, 1) END,
       revenue_rank_91d,
       CASE WHEN revenue_before < 0.80 * all_revenue_91d THEN 'A'
            WHEN revenue_before < 0.95 * all_revenue_91d THEN 'B' ELSE 'C' END,
       customers
FROM shares ORDER BY sku
""")


def _rebuild_table(engine: Engine, table: str, statement: sa.TextClause, as_of_date: date, **params) -> PlanningBuild:
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        conn.execute(sa.text(f"DELETE FROM {table}"))
        rows = conn.execute(statement, {"as_of_date": as_of_date, **params}).rowcount
    return PlanningBuild(table=table, as_of_date=as_of_date, rows=rows, seconds=time.perf_counter() - started)


def build_weekly_demand(engine: Engine, policy: Policy, as_of: datetime) -> PlanningBuild:
    """Rebuilds analytics.weekly_demand from the daily table, current to the last complete day."""
    day = last_complete_day(engine, policy, as_of)
    this_week = day - timedelta(days=day.weekday())
    return _rebuild_table(engine, "analytics.weekly_demand", _WEEKLY_SQL, day, this_week=this_week)


def build_product_line_summary(engine: Engine, policy: Policy, as_of: datetime) -> PlanningBuild:
    """Rebuilds analytics.product_line_summary (7/28/91-day shares per sku) from the daily table."""
    day = last_complete_day(engine, policy, as_of)
    return _rebuild_table(engine, "analytics.product_line_summary", _SUMMARY_SQL, day)


# ---------------------------------------------------------------- what a person looks at

def _markdown_table(header: list[str], rows: list[list[object]], right: set[int]) -> str:
    def cell(value: object) -> str:
        return f"{value:,}" if isinstance(value, int) else str(value)
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if n in right else "---" for n in range(len(header))) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


_PREVIEW_DAY = sa.text("SELECT max(sales_date) FROM analytics.sales_volume_daily WHERE sales_date <= :day")
_PREVIEW = sa.text("""
    SELECT sku, region, orders, units, revenue, customers FROM analytics.sales_volume_daily
    WHERE sales_date = :day ORDER BY units DESC, sku, region LIMIT :n
""")


def preview_markdown(engine: Engine, day: date, limit: int = PREVIEW_ROWS) -> str:
    """The largest published rows of `day`, or of the latest day before it that has any, as markdown."""
    with engine.connect() as conn:
        shown = conn.execute(_PREVIEW_DAY, {"day": day}).scalar()
        rows = [list(r) for r in conn.execute(_PREVIEW, {"day": shown, "n": limit})] if shown else []
    if not rows:
        return f"No published rows up to {day.isoformat()}."
    note = "" if shown == day else f" (nothing published on {day.isoformat()})"
    return f"**{shown.isoformat()}**{note}, top {len(rows)} rows by units\n\n" + _markdown_table(
        ["sku", "region", "orders", "units", "revenue", "customers"], rows, right={2, 3, 4, 5})


_WEEKLY_PREVIEW = sa.text("""
    SELECT week_start, sku, region, units, units_avg_4w, units_change_wow, units_change_wow_pct
    FROM analytics.weekly_demand
    WHERE week_start = (SELECT max(week_start) FROM analytics.weekly_demand WHERE week_complete)
    ORDER BY units DESC, sku, region LIMIT :n
""")
_PRODUCT_LINE_PREVIEW = sa.text("""
    SELECT sku, abc_class, units_28d, revenue_28d, revenue_share_28d_pct, units_change_28d_pct, revenue_rank_91d
    FROM analytics.product_line_summary ORDER BY revenue_rank_91d, sku LIMIT :n
""")


def _preview(engine: Engine, statement: sa.TextClause, header: list[str], right: set[int], empty: str) -> str:
    with engine.connect() as conn:
        rows = [["" if v is None else v for v in row] for row in conn.execute(statement, {"n": PREVIEW_ROWS})]
    return _markdown_table(header, rows, right) if rows else empty


def weekly_demand_preview(engine: Engine) -> str:
    """The last complete week's largest rows of analytics.weekly_demand, as markdown."""
    return _preview(engine, _WEEKLY_PREVIEW,
                    ["week", "sku", "region", "units", "4-week avg", "change", "change %"], {3, 4, 5, 6},
                    "No complete week published yet.")


def product_line_preview(engine: Engine) -> str:
    """The top skus of analytics.product_line_summary by 91-day revenue, as markdown."""
    return _preview(engine, _PRODUCT_LINE_PREVIEW,
                    ["sku", "class", "units 28 d", "revenue 28 d", "revenue share 28 d %", "units change 28 d %",
                     "rank (91 d revenue)"], {2, 3, 4, 5, 6}, "No sales published in the last 91 days.")


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
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{cols * width}" height="{rows * height + 22}" '
             'font-family="sans-serif" font-size="11">',
             f'<text x="4" y="14" fill="#333">Daily units per region, {first.isoformat()} to {last.isoformat()}'
             ' (each panel on its own scale)</text>']
    for n, (region, values) in enumerate(series.items()):
        x0, y0 = (n % cols) * width, 22 + (n // cols) * height
        top = max(values) or 1
        step = (width - 2 * pad) / max(len(values) - 1, 1)
        points = " ".join(f"{x0 + pad + k * step:.1f},{y0 + height - pad - (v / top) * (height - 24):.1f}"
                          for k, v in enumerate(values))
        parts += [f'<rect x="{x0 + 1}" y="{y0 + 1}" width="{width - 2}" height="{height - 2}" fill="#fafafa" stroke="#ddd"/>',
                  f'<text x="{x0 + pad}" y="{y0 + 13}" fill="#333">{region}: {sum(values):,} units, max {top:,}/day</text>',
                  f'<polyline points="{points}" fill="none" stroke="#4f6bed" stroke-width="1.5"/>']
    parts.append("</svg>")
    return "".join(parts)


def units_per_region_markdown(engine: Engine, last: date, days: int = CHART_DAYS) -> str:
    """Daily published units per region over `days` days up to `last`: a chart and a sparkline table."""
    first = last - timedelta(days=days - 1)
    calendar = [first + timedelta(days=n) for n in range(days)]
    with engine.connect() as conn:
        rows = conn.execute(_UNITS_BY_REGION, {"last": last, "days": days}).all()
    if not rows:
        return f"No published sales between {first.isoformat()} and {last.isoformat()}."
    by_region: dict[str, dict[date, int]] = {}
    for region, day, units in rows:
        by_region.setdefault(region, {})[day] = int(units)
    series = {region: [per_day.get(d, 0) for d in calendar]
              for region, per_day in sorted(by_region.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))}
    svg = base64.b64encode(_svg_small_multiples(series, first, last).encode()).decode()
    table = _markdown_table(
        ["region", f"units ({days} d)", f"daily units {first.isoformat()} → {last.isoformat()}", "last day"],
        [[region, sum(values), _sparkline(values), values[-1]] for region, values in series.items()],
        right={1, 3})
    return f"![Daily units per region](data:image/svg+xml;base64,{svg})\n\n{table}"


def day_stats(engine: Engine, days: list[date]) -> list[DayStats]:
    """The recorded protection cost of each of `days` that has been built."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("""
            SELECT sales_date, source_lines, units_total, units_published, units_folded, units_withheld,
                   rows_published, cells_folded, rows_withheld
            FROM lifecycle.sales_days WHERE sales_date = ANY(CAST(:days AS date[])) ORDER BY sales_date
        """), {"days": days}).all()
    return [DayStats(*row) for row in rows]
