"""Sales volume at scale: building every day vs one hand-written CREATE TABLE … AS, and the nightly refresh.

On a deterministic 1M-order shop: the DBA's single `CREATE TABLE … AS SELECT … GROUP BY` (no
small-cell protection, no key, no bookkeeping) against the project's full build (k rule with
folding and withholding, a keyed table, per-day protection cost), alternated, best of each; then
the nightly refresh after one day changed, which must read about one day of orders; then the
planning tables; then what the change-capture triggers cost a bulk load of new orders.

    .venv/bin/python bench/bench_sales.py [--orders 1000000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import Bench, fresh_database, run_sql, vacuum_analyze  # noqa: E402
from lifecycle import synthetic  # noqa: E402
from lifecycle.policy import load_policy  # noqa: E402
from lifecycle.sales import daily, planning  # noqa: E402
from lifecycle.settings import PROJECT_DIR  # noqa: E402

AS_OF = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)

# What a DBA would write by hand for the same figures, without the k rule.
DBA_CTAS = """
CREATE TABLE public.dba_sales_volume AS
SELECT (o.placed_at AT TIME ZONE 'UTC')::date AS sales_date, i.sku, o.ship_region AS region,
       count(DISTINCT o.order_id) AS orders, sum(i.quantity) AS units, sum(i.quantity * i.unit_price) AS revenue
FROM shop.orders o JOIN shop.order_items i ON i.order_id = o.order_id
WHERE o.status IN ('paid', 'shipped', 'delivered')
GROUP BY 1, 2, 3
"""
FORGET_BUILD = (
    "DELETE FROM lifecycle.sales_state",
    "TRUNCATE analytics.sales_volume_daily, lifecycle.sales_days",
)
CHANGE_ONE_DAY = """
UPDATE shop.orders SET status = 'cancelled', cancelled_at = :as_of
WHERE order_id IN (SELECT order_id FROM shop.orders WHERE status = 'delivered'
                   AND placed_at >= :day AND placed_at < :day + interval '1 day' ORDER BY order_id LIMIT 3)
"""
# A bulk load of new orders (copies of existing ones under new ids), to price the capture triggers.
LOAD_ORDERS = """
INSERT INTO shop.orders (order_id, customer_id, status, placed_at, paid_at, ship_region)
SELECT order_id + :offset, customer_id, 'paid', :as_of, :as_of, ship_region FROM shop.orders WHERE order_id <= :n
"""
LOAD_ITEMS = """
INSERT INTO shop.order_items (order_id, line_no, sku, quantity, unit_price)
SELECT order_id + :offset, line_no, sku, quantity, unit_price FROM shop.order_items WHERE order_id <= :n
"""
UNLOAD = (
    "DELETE FROM shop.order_items WHERE order_id > :offset",
    "DELETE FROM shop.orders WHERE order_id > :offset",
)


COUNT_LINES = """
SELECT count(*) FROM shop.orders o JOIN shop.order_items i ON i.order_id = o.order_id
WHERE o.status IN ('paid', 'shipped', 'delivered')
"""


def run_sql_scalar(engine, sql: str) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql(sql).scalar_one()


def dba_build(engine) -> int:
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS public.dba_sales_volume")
        conn.exec_driver_sql(
            f"SET LOCAL work_mem = '{daily.WORK_MEM}'"
        )  # the same memory as the build
        return conn.exec_driver_sql(DBA_CTAS).rowcount


def load(engine, n: int, offset: int) -> int:
    params = {"n": n, "offset": offset, "as_of": AS_OF}
    return run_sql(engine, LOAD_ORDERS, params) + run_sql(engine, LOAD_ITEMS, params)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument(
        "--repeat", type=int, default=2, help="runs of each contender; the best counts"
    )
    args = parser.parse_args()
    policy = load_policy(PROJECT_DIR / "policy.yaml")
    size = f"{args.orders:,}"
    bench = Bench(
        "sales", f"python bench/bench_sales.py --orders {args.orders} --repeat {args.repeat}"
    )
    load_at_start = os.getloadavg()[0]
    engine = fresh_database("bench_sales")
    print(f"seeding {size} orders")
    synthetic.seed_shop(engine, orders=args.orders, seed=7, as_of=AS_OF)
    vacuum_analyze(engine, "shop.orders", "shop.order_items")

    lines = run_sql_scalar(engine, COUNT_LINES)
    reference = f"{size}: hand-written CREATE TABLE … AS SELECT … GROUP BY (reference)"
    ours = f"{size}: lifecycle build of every day (k rule, keyed table, per-day cost)"
    for attempt in range(1, args.repeat + 1):
        with bench.measure(f"{reference} #{attempt}", rows=lines):
            cells = dba_build(engine)
        for statement in FORGET_BUILD:
            run_sql(engine, statement)
        with bench.measure(f"{ours} #{attempt}", rows=lines):
            full = daily.refresh(engine, policy, run_id=f"bench-full-{attempt}", as_of=AS_OF)
    ratio = bench.best(ours) / bench.best(reference)
    bench.notes.append(
        f"{size} orders ({lines:,} sales lines, {len(full.days)} days): every day built / hand-written CTAS = "
        f"**{ratio:.2f}×** (best of {args.repeat} each, both at work_mem {daily.WORK_MEM}; target ≤ 1.5×). "
        f"The CTAS writes {cells:,} unprotected cells into an unkeyed table; the build publishes "
        f"{full.table_rows:,} rows (units folded {full.total('units_folded'):,}, withheld "
        f"{full.total('units_withheld'):,} of {full.total('units_total'):,})."
    )

    changed_day = full.last_complete_day - timedelta(days=100)
    with bench.measure(f"{size}: nightly refresh, nothing changed (yesterday only)") as box:
        quiet = daily.refresh(engine, policy, run_id="bench-quiet", as_of=AS_OF)
        box["rows"] = quiet.total("source_lines")
    run_sql(
        engine,
        CHANGE_ONE_DAY,
        {"as_of": AS_OF, "day": datetime.combine(changed_day, datetime.min.time(), UTC)},
    )
    label = (
        f"{size}: nightly refresh after cancellations on {changed_day} (yesterday + 1 changed day)"
    )
    with bench.measure(label) as box:
        nightly = daily.refresh(engine, policy, run_id="bench-nightly", as_of=AS_OF)
        box["rows"] = nightly.total("source_lines")
    bench.notes.append(
        f"Nightly refresh after 3 cancellations on {changed_day}: rebuilt {[d.isoformat() for d in nightly.days]}, "
        f"read {nightly.total('source_lines'):,} of {lines:,} sales lines in {bench.seconds(label):.3f} s, "
        f"{bench.seconds(label) / bench.best(ours):.1%} of a full build "
        f"({bench.seconds(label) / bench.best(reference):.1%} of the DBA's nightly CTAS of everything)."
    )

    with bench.measure(f"{size}: analytics.weekly_demand (dense weeks, trailing average)") as box:
        box["rows"] = planning.build_weekly_demand(engine, policy, AS_OF).rows
    with bench.measure(f"{size}: analytics.product_line_summary (7/28/84-day blocks, ABC)") as box:
        box["rows"] = planning.build_product_line_summary(engine, policy, AS_OF).rows

    bulk, offset = args.orders // 10, 10 * args.orders
    with bench.measure(
        f"{size}: bulk load of {bulk:,} orders with their lines, change capture on"
    ) as box:
        box["rows"] = load(engine, bulk, offset)
    for statement in UNLOAD:
        run_sql(engine, statement, {"offset": offset})
    run_sql(engine, "ALTER TABLE shop.orders DISABLE TRIGGER USER")
    run_sql(engine, "ALTER TABLE shop.order_items DISABLE TRIGGER USER")
    with bench.measure(f"{size}: the same bulk load, triggers disabled (reference)") as box:
        box["rows"] = load(engine, bulk, offset)
    run_sql(engine, "ALTER TABLE shop.orders ENABLE TRIGGER USER")
    run_sql(engine, "ALTER TABLE shop.order_items ENABLE TRIGGER USER")
    bench.notes.append(
        f"Change capture on a bulk load of {bulk:,} orders: "
        f"{bench.ratio(f'{size}: bulk load of {bulk:,} orders with their lines, change capture on', f'{size}: the same bulk load, triggers disabled (reference)'):.2f}× "
        "the load without triggers (statement-level triggers: one DISTINCT over the transition table per "
        "statement). The purge's UPDATE touches none of the captured columns and fires nothing."
    )
    bench.notes.append(
        "Python peak MB is tracemalloc's peak during the step: it stays flat because no row "
        "leaves the database except the per-day counts."
    )
    bench.notes.append(
        f"Load average {load_at_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, on "
        f"{os.cpu_count()} cores shared with other work: single timings move by tens of percent, "
        "so the contenders alternate and each one's best counts."
    )
    bench.write(engine)


if __name__ == "__main__":
    main()
