"""The hash-chained audit trail at scale: what the chain costs the purge, and what verifying costs.

The synthetic shop is seeded and purged with the chain's triggers on and off (alternating, best
of --repeat each): first its backlog (most of the shop is due), then what a night purges (the
orders that became due in the next 36 hours). Then a ledger of --ledger-rows rows written in 50,000-row statements (one link
each, as the purge writes them) is verified three ways: the full recompute (two connections, as
`lifecycle ledger verify --full` runs it, and one), and the sealed verification of the same,
untouched ledger after a seal (what the nightly and `lifecycle ledger verify` do). Each is compared
with two references: one in-server sequential scan that reads every column, and reading the table
out to the client (`COPY … TO STDOUT`); and with building every row's binary form and a
hand-written SHA-256 of every row.

    .venv/bin/python bench/bench_ledger.py [--orders 250000] [--ledger-rows 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import Bench, fresh_database, run_sql, vacuum_analyze  # noqa: E402
from lifecycle import synthetic  # noqa: E402
from lifecycle.ledger import chain, seals  # noqa: E402
from lifecycle.ledger.chain import heads, verify  # noqa: E402
from lifecycle.policy import load_policy  # noqa: E402
from lifecycle.retention import purge  # noqa: E402
from lifecycle.settings import PROJECT_DIR  # noqa: E402

AS_OF = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=10)
NIGHT = timedelta(hours=36)  # a nightly increment: what became due in the next 36 hours
TRIGGERS = "ALTER TABLE lifecycle.purge_ledger {} TRIGGER ledger_lock, {} TRIGGER ledger_link"
# Rows as a retention purge writes them: the reasons interleaved by order id as the purge of the
# synthetic shop mixes them (about a third of the rows differ from the row before in their reason),
# and one order in 20 with an after-sales case, whose note is cleared too.
LEDGER_ROWS = """
    INSERT INTO lifecycle.purge_ledger (run_id, order_id, purged_at, action, reason, policy_version,
                                        policy_hash, cleared_columns)
    SELECT 'bench-' || (g / 50000), g, now(), 'retention_purge',
           (ARRAY['abandoned_unpaid', 'cancelled_retention_elapsed', 'after_sales_window_closed',
                  'after_sales_window_closed', 'after_sales_window_closed', 'after_sales_window_closed',
                  'after_sales_window_closed', 'after_sales_window_closed'])[1 + (hashint8(g) & 7)],
           '2026.11-1', repeat('a', 64),
           ARRAY['receiver_name', 'receiver_phone', 'receiver_email', 'receiver_address',
                 'receiver_postcode', 'payment_ref']
           || CASE WHEN hashint8(g + 1) % 20 = 0 THEN ARRAY['note'] ELSE ARRAY[]::text[] END
    FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) g
"""
# The chain's trigger functions' own time, summed over every backend (track_functions = 'pl').
_TRIGGER_SECONDS = """
    SELECT coalesce(sum(total_time), 0) / 1000 FROM pg_stat_user_functions
    WHERE schemaname = 'lifecycle' AND funcname IN ('ledger_link', 'ledger_lock')
"""


def set_chain(engine, on: bool) -> None:
    word = "ENABLE" if on else "DISABLE"
    run_sql(
        engine, TRIGGERS.format(word, word).replace(", ", "; ALTER TABLE lifecycle.purge_ledger ")
    )


def trigger_seconds(engine) -> float:
    """The chain's trigger functions' time so far. The pool's backends are closed first: a backend
    reports its function statistics when it exits, and each measured statement ran on one."""
    engine.dispose()
    seen, settled = -1.0, 0
    while settled < 3:  # an exiting backend's report can lag its disconnect by a moment
        time.sleep(0.2)
        with engine.connect() as conn:
            now = float(conn.execute(sa.text(_TRIGGER_SECONDS)).scalar())
        settled = settled + 1 if now == seen else 0
        seen = now
    return seen


def write_ledger(engine, rows: int) -> None:
    """An emptied ledger, then `rows` rows in 50,000-row statements: one link each, as the purge."""
    run_sql(engine, "TRUNCATE lifecycle.purge_ledger, lifecycle.ledger_links RESTART IDENTITY")
    for first in range(1, rows + 1, 50_000):
        run_sql(engine, LEDGER_ROWS, {"first": first, "last": min(first + 49_999, rows)})


def read_out(engine) -> None:
    """Reads the whole ledger table out to a client, as an outside verifier would: psql (a C
    client, so the reference is the server's and the socket's cost, not Python's per-row loop)."""
    with engine.connect() as conn:
        params = conn.connection.driver_connection.info.get_parameters()
    dsn = " ".join(f"{k}={params[k]}" for k in ("host", "port", "user", "dbname") if k in params)
    subprocess.run(
        ["psql", dsn, "-X", "-q", "-c", "COPY lifecycle.purge_ledger TO STDOUT (FORMAT binary)"],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=250_000)
    parser.add_argument("--ledger-rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--section",
        default="ledger",
        help="the section of bench/RESULTS.md to write, e.g. ledger-server for a run against "
        "LIFECYCLE_DATABASE_URL, so it does not replace the embedded server's figures",
    )
    args = parser.parse_args()
    bench = Bench(
        args.section,
        f"python bench/bench_ledger.py --orders {args.orders} --ledger-rows {args.ledger_rows} "
        f"--repeat {args.repeat}"
        + (f" --section {args.section}" if args.section != "ledger" else ""),
    )
    policy = load_policy(PROJECT_DIR / "policy.yaml")
    engine = fresh_database("lane_ledger_bench")
    run_sql(engine, "ALTER DATABASE lane_ledger_bench SET track_functions = 'pl'")
    purged = 0
    inside: list[tuple[float, float]] = []  # per chain-on purge: (triggers' seconds, purge's)
    inside_night: list[tuple[float, float]] = []  # the same for the nightly increments
    nightly = 0
    for attempt in range(1, args.repeat + 1):
        for on in (False, True):
            synthetic.seed_shop(engine, orders=args.orders, seed=7, as_of=AS_OF)
            run_sql(engine, "DELETE FROM lifecycle.ledger_links")
            set_chain(engine, on)
            vacuum_analyze(
                engine, "shop.orders", "shop.after_sales_cases", "lifecycle.purge_ledger"
            )
            label = f"{args.orders:,} orders: purge, chain {'on' if on else 'off'} #{attempt}"
            before = trigger_seconds(engine)
            with bench.measure(label) as box:
                report = purge.run_purge(engine, policy, run_id=f"bench-{attempt}", as_of=AS_OF)
                box["rows"] = purged = report.purged
            if on:
                inside.append((trigger_seconds(engine) - before, bench.seconds(label)))
            # What a night purges: the orders that became due in the next 36 hours, on the table
            # the backlog purge above just left (bench_purge.py's increment).
            label = f"{args.orders:,} orders: nightly increment, chain {'on' if on else 'off'} #{attempt}"
            before = trigger_seconds(engine)
            with bench.measure(label) as box:
                box["rows"] = nightly = purge.run_purge(
                    engine, policy, run_id=f"bench-night-{attempt}", as_of=AS_OF + NIGHT
                ).purged
            if on:
                inside_night.append((trigger_seconds(engine) - before, bench.seconds(label)))
    # The same ledger statements alone, chain off and on: the triggers' own seconds, which the
    # purge's run-to-run noise on a shared machine (±20 %) would otherwise hide.
    for attempt in range(1, args.repeat + 1):
        for on in (False, True):
            set_chain(engine, on)
            label = (
                f"{purged:,} ledger rows as the purge writes them, chain {'on' if on else 'off'}"
            )
            with bench.measure(f"{label} #{attempt}", rows=purged):
                write_ledger(engine, purged)
    set_chain(engine, True)
    off = bench.best(f"{args.orders:,} orders: purge, chain off")
    slow = bench.best(f"{args.orders:,} orders: purge, chain on") / off
    added = bench.best(f"{purged:,} ledger rows as the purge writes them, chain on") - bench.best(
        f"{purged:,} ledger rows as the purge writes them, chain off"
    )
    spread = [m.seconds for m in bench.measurements if "purge, chain off" in m.label]
    # Each chain-on purge ran right after its chain-off twin: the ratio of a pair cancels the
    # machine's drift between pairs, and the median of the pairs is robust to one noisy pair.
    paired = sorted(
        bench.seconds(f"{args.orders:,} orders: purge, chain on #{i}")
        / bench.seconds(f"{args.orders:,} orders: purge, chain off #{i}")
        for i in range(1, args.repeat + 1)
    )
    bench.notes.append(
        f"The machine was shared with other sessions: the same purge without the chain took "
        f"{min(spread):.1f} to {max(spread):.1f} s across the repeats, so compare ratios of one run."
    )
    bench.notes.append(
        f"{args.orders:,} orders ({purged:,} purged in 50,000-order batches): purge with the chain / "
        f"without = **{slow:.2f}×** (best of {args.repeat}; target ≤ 1.10×), **{paired[len(paired) // 2]:.2f}×** "
        f"the median of the {args.repeat} back-to-back pairs ({paired[0]:.2f} to {paired[-1]:.2f}); the chain's triggers "
        f"on the same {purged:,} ledger rows add {added:.3f} s = **{1 + added / off:.3f}×** the "
        f"purge without the chain"
    )
    # What the chain adds inside the purge itself, timed by the server: the machine's noise moves
    # both purges by more than the chain costs, but not the triggers' share of one purge.
    shares = sorted(t / (p - t) for t, p in inside)
    bench.notes.append(
        f"Inside the {args.repeat} purges with the chain, its trigger functions ran "
        f"{min(t for t, _ in inside):.3f} to {max(t for t, _ in inside):.3f} s "
        f"(`pg_stat_user_functions`): **{shares[len(shares) // 2]:.3f}×** the rest of the purge "
        f"(median; {shares[0]:.3f} to {shares[-1]:.3f}). Since migration 0170 the chain keeps no "
        f"transition table, so nothing it costs happens outside those functions."
    )

    night_pairs = sorted(
        bench.seconds(f"{args.orders:,} orders: nightly increment, chain on #{i}")
        / bench.seconds(f"{args.orders:,} orders: nightly increment, chain off #{i}")
        for i in range(1, args.repeat + 1)
    )
    night_shares = sorted(t / (p - t) for t, p in inside_night)
    bench.notes.append(
        f"A nightly increment ({nightly:,} orders that became due in the next 36 hours, on the "
        f"purged table): with the chain / without = {night_pairs[len(night_pairs) // 2]:.2f}× "
        f"(median of the {args.repeat} pairs, {night_pairs[0]:.2f} to {night_pairs[-1]:.2f}); "
        f"its trigger functions' own time = **{night_shares[len(night_shares) // 2]:.3f}×** the "
        f"rest of that purge (median; {night_shares[0]:.3f} to {night_shares[-1]:.3f})."
    )

    n = args.ledger_rows
    with bench.measure(f"{n:,} ledger rows written, 50,000 per statement", rows=n):
        write_ledger(engine, n)
    vacuum_analyze(engine, "lifecycle.purge_ledger", "lifecycle.ledger_links")
    anchors = heads(engine)
    # The target's reference is a sequential scan that reads every column of every row (a row
    # test forces each column to be deformed; count(*) alone reads no column and is shown apart);
    # the second reference reads the table out to the client, as an outside verifier would.
    # The hand-written hash is the least any re-hashing costs: every row's binary form, in heap
    # order (no index, no order kept), through one SHA-256.
    references = {
        "count(*), no column read": "SELECT count(*) FROM lifecycle.purge_ledger",
        "sequential scan reading every column": (
            "SELECT count(*) FROM lifecycle.purge_ledger t WHERE t IS NOT NULL"
        ),
        "every row's binary form built, no hash": (
            "SELECT sum(length(record_send(t))) FROM lifecycle.purge_ledger t"
        ),
        "hand-written SHA-256 of every row's binary form": (
            "SELECT sum(length(sha256(record_send(t)))) FROM lifecycle.purge_ledger t"
        ),
    }
    copy = f"{n:,} rows: COPY lifecycle.purge_ledger TO STDOUT, read by psql (reference)"
    full2 = f"{n:,} rows: lifecycle ledger verify --full (2 connections)"
    full1 = f"{n:,} rows: full recompute on 1 connection"
    sealed = f"{n:,} rows: lifecycle ledger verify (sealed, untouched)"
    first = verify(engine, anchors, seal=True)
    assert first.intact, first.summary()
    seal_anchors = seals.save(engine, first.new_seals)
    split = chain.SPLIT_ROWS
    for attempt in range(1, args.repeat + 1):
        for name, sql in references.items():
            with bench.measure(f"{n:,} rows: {name} (reference) #{attempt}", rows=n):
                run_sql(engine, sql)
        with bench.measure(f"{copy} #{attempt}", rows=n):
            read_out(engine)
        with bench.measure(f"{full2} #{attempt}", rows=n):
            result = verify(engine, anchors, seal_anchors=seal_anchors, full=True)
        assert result.intact, result.summary()
        chain.SPLIT_ROWS = n * 10
        with bench.measure(f"{full1} #{attempt}", rows=n):
            result = verify(engine, anchors, seal_anchors=seal_anchors, full=True)
        chain.SPLIT_ROWS = split
        assert result.intact, result.summary()
        with bench.measure(f"{sealed} #{attempt}", rows=n):
            result = verify(engine, anchors, seal_anchors=seal_anchors)
        assert result.intact and result.rehashed == 0, result.summary()
    count, scan, built, hashed = (bench.best(f"{n:,} rows: {name}") for name in references)
    out = bench.best(copy)
    f2, f1, sl = bench.best(full2), bench.best(full1), bench.best(sealed)
    bench.notes.append(
        f"{n:,} untouched ledger rows (best of {args.repeat}; target ≤ 2× one sequential scan): "
        f"sealed verify = **{sl / scan:.2f}×** the in-server scan reading every column, "
        f"**{sl / out:.2f}×** reading it out to a client (COPY to psql); full recompute on 2 connections "
        f"= **{f2 / scan:.2f}×** / **{f2 / out:.2f}×**; on 1 connection = {f1 / scan:.2f}× / "
        f"{f1 / out:.2f}×. Building every row's binary form alone = {built / scan:.2f}× the scan, a "
        f"hand-written SHA-256 of every row = {hashed / scan:.2f}×; count(*) = {count / scan:.2f}×."
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    bench.notes.append(
        f"Load average when written: {load} on {os.cpu_count()} CPUs; the two connections of the "
        "full recompute share those cores with whatever else runs."
    )
    bench.write(engine)


if __name__ == "__main__":
    main()
