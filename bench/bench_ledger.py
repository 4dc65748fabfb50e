"""The hash-chained audit trail at scale: what the chain costs the purge, and what verifying costs.

The synthetic shop is seeded and purged with the chain's triggers on and off (alternating, best
of --repeat each), then a ledger of --ledger-rows rows written in 50,000-row statements (one link
each, as the purge writes them) is verified and compared with one sequential scan of it.

    .venv/bin/python bench/bench_ledger.py [--orders 250000] [--ledger-rows 1000000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import Bench, fresh_database, run_sql, vacuum_analyze  # noqa: E402
from lifecycle import synthetic  # noqa: E402
from lifecycle.ledger.chain import heads, verify  # noqa: E402
from lifecycle.policy import load_policy  # noqa: E402
from lifecycle.retention import purge  # noqa: E402
from lifecycle.settings import PROJECT_DIR  # noqa: E402

AS_OF = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=10)
TRIGGERS = "ALTER TABLE lifecycle.purge_ledger {} TRIGGER ledger_lock, {} TRIGGER ledger_link"
LEDGER_ROWS = """
    INSERT INTO lifecycle.purge_ledger (run_id, order_id, purged_at, action, reason, policy_version,
                                        policy_hash, cleared_columns)
    SELECT 'bench-' || (g / 50000), g, now(), 'purge', 'after_sales_window', '2026.11-1', repeat('a', 64),
           ARRAY['receiver_name', 'receiver_phone', 'receiver_email', 'receiver_address',
                 'receiver_postcode', 'payment_ref']
    FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) g
"""


def set_chain(engine, on: bool) -> None:
    word = "ENABLE" if on else "DISABLE"
    run_sql(
        engine, TRIGGERS.format(word, word).replace(", ", "; ALTER TABLE lifecycle.purge_ledger ")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=250_000)
    parser.add_argument("--ledger-rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    bench = Bench(
        "ledger",
        f"python bench/bench_ledger.py --orders {args.orders} --ledger-rows {args.ledger_rows} "
        f"--repeat {args.repeat}",
    )
    policy = load_policy(PROJECT_DIR / "policy.yaml")
    engine = fresh_database("ledger_bench")
    purged = 0
    for attempt in range(1, args.repeat + 1):
        for on in (False, True):
            synthetic.seed_shop(engine, orders=args.orders, seed=7, as_of=AS_OF)
            run_sql(engine, "DELETE FROM lifecycle.ledger_links")
            set_chain(engine, on)
            vacuum_analyze(
                engine, "shop.orders", "shop.after_sales_cases", "lifecycle.purge_ledger"
            )
            label = f"{args.orders:,} orders: purge, chain {'on' if on else 'off'} #{attempt}"
            with bench.measure(label) as box:
                report = purge.run_purge(engine, policy, run_id=f"bench-{attempt}", as_of=AS_OF)
                box["rows"] = purged = report.purged
    set_chain(engine, True)
    slow = bench.best(f"{args.orders:,} orders: purge, chain on") / bench.best(
        f"{args.orders:,} orders: purge, chain off"
    )
    bench.notes.append(
        f"{args.orders:,} orders ({purged:,} purged in 50,000-order batches): purge with the chain / "
        f"without = **{slow:.2f}×** (best of {args.repeat}; target ≤ 1.10×)"
    )

    run_sql(engine, "TRUNCATE lifecycle.purge_ledger, lifecycle.ledger_links RESTART IDENTITY")
    n = args.ledger_rows
    with bench.measure(f"{n:,} ledger rows written, 50,000 per statement", rows=n):
        for first in range(1, n + 1, 50_000):
            run_sql(engine, LEDGER_ROWS, {"first": first, "last": min(first + 49_999, n)})
    vacuum_analyze(engine, "lifecycle.purge_ledger", "lifecycle.ledger_links")
    anchors = heads(engine)
    for attempt in range(1, args.repeat + 1):
        with bench.measure(f"{n:,} rows: sequential scan (reference) #{attempt}", rows=n):
            run_sql(engine, "SELECT count(*) FROM lifecycle.purge_ledger")
        with bench.measure(f"{n:,} rows: every column read (reference) #{attempt}", rows=n):
            run_sql(engine, "SELECT sum(length(CAST(t AS text))) FROM lifecycle.purge_ledger t")
        with bench.measure(f"{n:,} rows: lifecycle ledger verify #{attempt}", rows=n):
            result = verify(engine, anchors)
    assert result.intact, result.summary()
    scan = bench.best(f"{n:,} rows: sequential scan")
    read = bench.best(f"{n:,} rows: every column read")
    ours = bench.best(f"{n:,} rows: lifecycle ledger verify")
    bench.notes.append(
        f"{n:,} ledger rows: verify / one sequential scan (count) = **{ours / scan:.1f}×**, "
        f"verify / one scan reading every column as text = **{ours / read:.2f}×** "
        f"(best of {args.repeat}; target ≤ 2× one sequential scan)"
    )
    bench.write(engine)


if __name__ == "__main__":
    main()
