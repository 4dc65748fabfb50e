"""Per-statement profile of the planning builds: where the time goes, per round.

Seeds a synthetic shop (embedded server by default), refreshes the daily table, then builds both
planning tables once (in one transaction, as the nightly does) with every SQL statement timed (a SQLAlchemy cursor event), and prints the
totals per statement kind and the number of suppression rounds next to a hand-written CTAS.
With --late it then cancels 20 orders of the span and times the rebuild twice: starting from the
week's merges, as the nightly does, and cold on the same data. With --turn the shop runs a week
longer and, after the builds, the week turns: both tables are built for the next Sunday, audited
against the week before's copies as the nightly does (lifecycle/sales/publications.py), then
again on the same data as a first build (no copy kept, nothing carried).

    .venv/bin/python bench/profile_sales_planning.py --orders 50000 [--reuse] [--attempts 1] \
        [--no-guard] [--late] [--turn]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402

from bench.bench_sales_planning import AS_OF, FORGET_BUILDS, dba_build  # noqa: E402
from bench.harness import fresh_database, run_sql, vacuum_analyze  # noqa: E402
from lifecycle import db, synthetic  # noqa: E402
from lifecycle.policy import load_policy  # noqa: E402
from lifecycle.sales import daily, planning  # noqa: E402
from lifecycle.sales.differencing import differencing_remainders  # noqa: E402
from lifecycle.settings import PROJECT_DIR, Settings  # noqa: E402
from tests.db.test_sales_planning_carry import CANCEL_IN_SPAN  # noqa: E402

# What a planner gets from each build, printed after it (metadata: counts and shares only).
UTILITY = (
    "units_published_pct",
    "sku_28d_top80_exact_pct",
    "sku_28d_top80_with_k_buyers_exact_pct",
    "cells_derivable_from_earlier_tables_alone",
)


def kind(statement: str) -> str:
    """A short label for a statement (its first distinctive words), nothing of its parameters."""
    s = " ".join(statement.split())
    for pattern, label in (
        (r"CREATE TEMP TABLE sales_lines", "load lines"),
        (r"CREATE TEMP TABLE sales_cells", "cells"),
        (
            r"INSERT INTO pg_temp.sales_assign \(part, line_id, row_key, level\) SELECT 'sales_volume_daily'",
            "assign daily",
        ),
        (r"^WITH r0 AS", "assign partition"),
        (r"^WITH cov AS", "audit: one partition against its pairs"),
        (r"CREATE TEMP TABLE sales_inside", "audit: rows inside"),
        (r"CREATE TEMP TABLE sales_wide", "audit: wide table"),
        (r"^WITH ab AS", "audit: one pair"),
        (r"INSERT INTO analytics", "publish rows"),
        (r"^WITH per AS", "utility"),
        (r"pg_advisory_xact_lock|planning_builds|sales_changes|md5", "freshness"),
        (r"INSERT INTO pg_temp.sales_assign", "assign published"),
        (r"ANALYZE", "analyze"),
    ):
        if re.search(pattern, s):
            return label
    return s[:60]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=50000)
    parser.add_argument("--reuse", action="store_true", help="reuse the seeded database")
    parser.add_argument("--attempts", type=int, default=2, help="full builds to time")
    parser.add_argument("--no-guard", action="store_true", help="skip timing the guard's audit")
    parser.add_argument(
        "--late",
        action="store_true",
        help="then cancel 20 orders in the span and time the rebuild, warm and cold",
    )
    parser.add_argument(
        "--turn",
        action="store_true",
        help="then turn the week: build for the next Sunday against the kept copies, then cold",
    )
    args = parser.parse_args()
    policy = load_policy(PROJECT_DIR / "policy.yaml")
    name = f"lane_plan_profile_{args.orders}"
    if args.reuse:
        settings = Settings.from_env()
        admin = db.normalise_url(
            settings.database_url or db.start_embedded_server(settings.embedded_data_dir)
        )
        engine = db.create_engine(admin.set(database=name))
    else:
        engine = fresh_database(name)
        t = time.perf_counter()
        as_of = AS_OF + timedelta(days=7) if args.turn else AS_OF
        synthetic.seed_shop(engine, orders=args.orders, seed=7, as_of=as_of)
        vacuum_analyze(engine, "shop.orders", "shop.order_items", "shop.products")
        daily.refresh(engine, policy, run_id="bench", as_of=AS_OF)
        print(f"seeded and refreshed in {time.perf_counter() - t:.1f} s")
    day = planning.window_end(daily.last_complete_day(engine, policy, AS_OF))
    times: dict[str, list[float]] = defaultdict(list)
    current: list[float] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):
        current.append(time.perf_counter())

    @sa.event.listens_for(engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):
        label = kind(statement)
        if label == "assign partition" and isinstance(parameters, dict):
            label += f" {parameters.get('p')}"
        times[label].append(time.perf_counter() - current.pop())

    def both_builds(title: str, ctas: float, as_of=AS_OF) -> None:
        times.clear()
        t = time.perf_counter()
        both = planning.build_planning_tables(engine, policy, as_of)  # as the nightly builds them
        total = time.perf_counter() - t
        builds = {b.table: (b.seconds, b.rounds, b.cells_merged, b.cells_carried) for b in both}
        print(f"\n== {title}: CTAS {ctas:.2f} s; builds {total:.2f} s = {total / ctas:.1f}x")
        for table, (s, rounds, merged, carried) in builds.items():
            print(f"  {table}: {s:.2f} s, {rounds} rounds, {merged} merged ({carried} carried)")
        for b in both:  # what a planner gets from it: counts and shares only
            shown = b.metadata()
            print(
                f"  {b.table}: "
                + ", ".join(f"{key} {shown[key]}" for key in UTILITY if key in shown)
            )
        for label, ts in sorted(times.items(), key=lambda kv: -sum(kv[1])):
            print(f"  {sum(ts):7.2f} s  {len(ts):4d}x  {label}")

    ctas = 0.0
    for attempt in range(1, args.attempts + 1):
        run_sql(engine, FORGET_BUILDS)
        t = time.perf_counter()
        dba_build(engine, day)
        ctas = time.perf_counter() - t
        both_builds(f"attempt {attempt}", ctas)
    if args.late:  # a late correction in the span: the same week's merges carried, then not
        with engine.begin() as conn:
            cancelled = conn.execute(sa.text(CANCEL_IN_SPAN), {"day": day}).rowcount
        daily.refresh(engine, policy, run_id="late", as_of=AS_OF)
        both_builds(f"{cancelled} orders cancelled in the span, merges carried", ctas)
        run_sql(engine, FORGET_BUILDS)
        both_builds("the same data, cold (nothing carried)", ctas)
    if args.turn:  # the next Sunday: audited against this one's copies, then as a first build
        turn = AS_OF + timedelta(days=7)
        daily.refresh(engine, policy, run_id="turn", as_of=turn)
        both_builds("the week turned, against last week's copies", ctas, turn)
        run_sql(engine, FORGET_BUILDS)
        for table in ("published_summary_rows", "published_weekly_rows"):
            sql = f"DELETE FROM lifecycle.{table} WHERE as_of_date <= :d"
            run_sql(engine, sql, {"d": day})  # the week before's copies: none kept
        both_builds("the same data, as a first build (no copy kept)", ctas, turn)
    if args.no_guard:
        return
    times.clear()
    t = time.perf_counter()
    check = differencing_remainders(engine, policy)
    print(
        f"\nguard check: {'passed' if check.passed else 'FAILED'} {time.perf_counter() - t:.2f} s"
    )
    for label, ts in sorted(times.items(), key=lambda kv: -sum(kv[1])):
        print(f"  {sum(ts):7.2f} s  {len(ts):4d}x  {label}")
    run_sql(engine, "DROP TABLE IF EXISTS public.dba_planning")


if __name__ == "__main__":
    main()
