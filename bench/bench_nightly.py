"""The whole nightly as an operator runs it (`lifecycle nightly`), against the hand-written
reference, with a checkout writer running beside it.

On a deterministic shop (250k orders by default), cloned so both contenders start from the same
files: the reference is what a DBA would run by hand (the purge `UPDATE`, `VACUUM FULL` of the
purged tables, the sales `CREATE TABLE … AS`); ours is `lifecycle nightly` in a process of its
own, as cron or a person starts it. Then a 3k-order increment the same two ways: orders sold and
delivered weeks ago, published by the first night, whose after-sales window closes between the
nights (as on a real shop: the purge changes no figure, so no sales day is rebuilt). During each, a "checkout" process inserts an order and moves another one on every
few milliseconds and records its latencies, and a sampler reads pg_locks every 10 ms for the
longest ACCESS EXCLUSIVE lock held on shop.orders. Where the fixed cost outside the steps goes is
measured by starting the interpreter and importing each layer in fresh processes.

    .venv/bin/python bench/bench_nightly.py [--orders 250000] [--increment 3000]
        [--nights whole,unchanged,increment,snapshots] [--no-process-costs] [--section NAME]

An unchanged night (nothing new since the last one) shows the fixed cost and every step that
still reads all of the history; `--nights unchanged,increment` skips the comparison of the first
night (it still runs, to bring the shop to where a night leaves it). Where the server offers the
pg_repack extension it is created in the shop database, so the erasure rewrites online.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import Bench, Measurement, fresh_database, run_sql, vacuum_analyze  # noqa: E402
from lifecycle import db, schema, synthetic  # noqa: E402
from lifecycle.guard.checks import RAW_VALUES_CHECK  # noqa: E402
from lifecycle.policy import load_policy  # noqa: E402
from lifecycle.retention import rules  # noqa: E402
from lifecycle.retention.partitions import create_partitioned_shop  # noqa: E402
from lifecycle.settings import PROJECT_DIR  # noqa: E402

PYTHON = sys.executable
LIFECYCLE = str(Path(sys.executable).with_name("lifecycle"))
TABLES = ("shop.orders", "shop.order_items", "shop.after_sales_cases")
CHECKOUT_IDS = 900_000_000  # the checkout writer's orders, far above the seeded ids
INCREMENT_IDS = 800_000_000  # the increment's newly due orders (a second increment's below it)
SNAPSHOT_IDS = 850_000_000  # those of the night with snapshots open
BATCH_IDS = 50_000_000  # the width of each batch's id range
# The shop database's default name (--database): the machine's shared server holds other
# people's databases, so a run names its own.
DATABASE = "nightly_bench"

DBA_UPDATE = """
UPDATE shop.orders o
SET receiver_name = NULL, receiver_phone = NULL, receiver_email = NULL, receiver_address = NULL,
    receiver_postcode = NULL, payment_ref = NULL, purged_at = now()
WHERE o.purged_at IS NULL
  AND (   (o.status = 'delivered' AND o.delivered_at <= :d)
       OR (o.status = 'cancelled' AND o.cancelled_at <= :c)
       OR (o.status = 'placed' AND o.placed_at <= :a))
  AND NOT EXISTS (SELECT 1 FROM shop.after_sales_cases c WHERE c.order_id = o.order_id
                  AND (c.closed_at IS NULL OR c.closed_at > CASE o.status WHEN 'delivered' THEN :d
                                                                          WHEN 'cancelled' THEN :c ELSE :a END))
"""
DBA_SALES = """
DROP TABLE IF EXISTS public.dba_sales_volume;
CREATE TABLE public.dba_sales_volume AS
SELECT (o.placed_at AT TIME ZONE 'UTC')::date AS sales_date, i.sku, o.ship_region AS region,
       count(DISTINCT o.order_id) AS orders, sum(i.quantity) AS units, sum(i.quantity * i.unit_price) AS revenue
FROM shop.orders o JOIN shop.order_items i ON i.order_id = o.order_id
WHERE o.status IN ('paid', 'shipped', 'delivered')
GROUP BY 1, 2, 3
"""
# Newly due orders: copies of delivered orders under new ids, delivered just past the window.
ADD_DUE = """
INSERT INTO shop.orders (order_id, customer_id, status, placed_at, paid_at, shipped_at, delivered_at,
    ship_region, receiver_name, receiver_phone, receiver_email, receiver_address, receiver_postcode, payment_ref)
SELECT order_id + :offset, customer_id, 'delivered', :delivered - interval '5 days',
       :delivered - interval '4 days', :delivered - interval '3 days', :delivered, ship_region,
       'Bench Name', '13800000000', 'bench@example.com', '1 Bench Road', '100000', 'ref-bench'
FROM shop.orders WHERE status = 'delivered' ORDER BY order_id LIMIT :n
"""
# The seed follows the wall clock, so orders keep becoming due while the bench runs and the
# "unchanged" night would purge those that crossed their window during the first night. Moving
# the ones that would cross in the next few hours back by that much makes them due on the first
# night, and the unchanged night truly unchanged (the checkout writer still writes beside it).
QUIET_HOURS = 6
QUIET_ORDERS = """
UPDATE shop.orders o SET
    delivered_at = CASE WHEN o.status = 'delivered' AND o.delivered_at > :d
                        THEN o.delivered_at - :gap ELSE o.delivered_at END,
    cancelled_at = CASE WHEN o.status = 'cancelled' AND o.cancelled_at > :c
                        THEN o.cancelled_at - :gap ELSE o.cancelled_at END,
    placed_at = CASE WHEN o.status = 'placed' AND o.placed_at > :a
                     THEN o.placed_at - :gap ELSE o.placed_at END
WHERE o.order_id < :below
  AND (   (o.status = 'delivered' AND o.delivered_at > :d AND o.delivered_at <= :d + :gap)
       OR (o.status = 'cancelled' AND o.cancelled_at > :c AND o.cancelled_at <= :c + :gap)
       OR (o.status = 'placed' AND o.placed_at > :a AND o.placed_at <= :a + :gap))
"""
QUIET_CASES = """
UPDATE shop.after_sales_cases SET closed_at = closed_at - :gap,
    opened_at = least(opened_at, closed_at - :gap)
WHERE closed_at > least(:d, :c, :a) AND closed_at <= greatest(:d, :c, :a) + :gap
"""
DROP_DUE = "DELETE FROM shop.orders WHERE order_id >= :offset AND order_id < :offset + :width"
# shop.orders and its partitions, from pg_inherits: pg_partition_tree() returns no row at all for
# a table that is neither partitioned nor a partition, so from 1a16209 until this fix the sampler
# saw no lock on an unpartitioned shop (those runs' "0.00 s"; their checkout's longest wait is
# the bound they give).
LOCK_SAMPLE = """
WITH RECURSIVE tree(relid) AS (
    SELECT CAST(CAST('shop.orders' AS regclass) AS oid)
    UNION ALL
    SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.relid
)
SELECT pid FROM pg_locks
WHERE locktype = 'relation' AND mode = 'AccessExclusiveLock' AND granted
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND relation IN (SELECT relid FROM tree)
"""


# ------------------------------------------------------------------------ the checkout writer


def _checkout(url: str, ready, stop, results, interval: float) -> None:
    """Another process: places an order and pays the previous one every `interval` seconds."""
    engine = db.create_engine(url)
    latencies, order_id = [], CHECKOUT_IDS
    with engine.connect() as conn:
        ready.set()
        while not stop.is_set():
            started = time.perf_counter()
            with conn.begin():
                conn.execute(
                    sa.text(
                        "INSERT INTO shop.orders (order_id, customer_id, status, placed_at, ship_region) "
                        "VALUES (:id, 1, 'placed', now(), 'north')"
                    ),
                    {"id": order_id},
                )
                conn.execute(
                    sa.text(
                        "UPDATE shop.orders SET status = 'paid', paid_at = now() WHERE order_id = :id"
                    ),
                    {"id": order_id - 1},
                )
            latencies.append(time.perf_counter() - started)
            order_id += 1
            time.sleep(interval)
    engine.dispose()
    results.put(latencies)


class Checkout:
    """Runs the checkout writer and the lock sampler around a block; figures afterwards."""

    def __init__(self, url: str, interval: float = 0.005) -> None:
        self.url, self.interval = url, interval

    def __enter__(self) -> Checkout:
        ctx = multiprocessing.get_context("spawn")
        ready, self._stop, self._results = ctx.Event(), ctx.Event(), ctx.Queue()
        self._writer = ctx.Process(
            target=_checkout, args=(self.url, ready, self._stop, self._results, self.interval)
        )
        self._writer.start()
        if not ready.wait(timeout=120):
            sys.exit("the checkout writer did not start")
        self._sampling = threading.Event()
        self.longest_lock = 0.0
        self._sampler = threading.Thread(target=self._sample)
        self._sampler.start()
        return self

    def _sample(self) -> None:
        engine = db.create_engine(self.url)
        held_since: dict[int, float] = {}
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            while not self._sampling.is_set():
                now = time.perf_counter()
                pids = set(conn.execute(sa.text(LOCK_SAMPLE)).scalars())
                for pid in pids:
                    held_since.setdefault(pid, now)
                for pid in list(held_since):
                    if pid not in pids:
                        self.longest_lock = max(self.longest_lock, now - held_since.pop(pid))
                time.sleep(0.01)
            now = time.perf_counter()
            for since in held_since.values():
                self.longest_lock = max(self.longest_lock, now - since)
        engine.dispose()

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.latencies = self._results.get(timeout=120)
        self._writer.join(timeout=60)
        self._sampling.set()
        self._sampler.join(timeout=60)
        run_sql(
            db.create_engine(self.url),
            "DELETE FROM shop.orders WHERE order_id >= :o",
            {"o": CHECKOUT_IDS},
        )

    def figures(self) -> str:
        ms = sorted(x * 1000 for x in self.latencies)
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))] if ms else 0.0
        return (
            f"checkout: {len(ms):,} transactions, median {statistics.median(ms):.1f} ms, "
            f"p99 {p99:.1f} ms, max {ms[-1]:.0f} ms; longest ACCESS EXCLUSIVE on shop.orders "
            f"{self.longest_lock:.2f} s"
        )


# ------------------------------------------------------------------------ the two contenders


class Snapshots:
    """What a real server has open during the night: a REPEATABLE READ transaction in another
    database for the whole duration, and `pg_dump` of the shop database (one after another, to
    /dev/null), each holding a snapshot older than the night's purge."""

    def __init__(self, shop: sa.Engine) -> None:
        self.shop = shop
        self.other_name = f"{shop.url.database}_other"
        self.dumps = 0
        self._stop = threading.Event()

    def __enter__(self) -> Snapshots:
        db.drop_database(self.shop.url, self.other_name)
        db.ensure_database(self.shop.url, self.other_name)
        self._other = db.create_engine(self.shop.url.set(database=self.other_name))
        self._conn = self._other.connect()
        self._conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        self._conn.exec_driver_sql("SELECT count(*) FROM pg_class").scalar()  # takes the snapshot
        command, env = db.psql_command(self.shop.url)
        dump = [str(Path(command[0]).with_name("pg_dump")), *command[1:], "-f", os.devnull]
        self._dumper = threading.Thread(target=self._dump, args=(dump, env))
        self._dumper.start()
        time.sleep(1.0)  # the first dump has its snapshot before the night starts
        return self

    def _dump(self, command: list[str], env: dict[str, str]) -> None:
        while not self._stop.is_set():
            result = subprocess.run(command, env={**os.environ, **env}, capture_output=True)
            if result.returncode != 0:
                sys.exit(f"pg_dump failed: {result.stderr.decode()[-500:]}")
            self.dumps += 1

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._dumper.join(timeout=600)
        self._conn.rollback()
        self._conn.close()
        self._other.dispose()
        db.drop_database(self.shop.url, self.other_name)


def erasure_state(engine: sa.Engine, run_id: str) -> str:
    """When the night's cleared values left the files (erasure_runs) or what they wait for."""
    with engine.connect() as conn:
        done = conn.execute(
            sa.text(
                "SELECT mechanism, finished_at FROM lifecycle.erasure_runs "
                "WHERE run_id = :r ORDER BY finished_at"
            ),
            {"r": run_id},
        ).all()
        waits = conn.execute(
            sa.text(
                "SELECT relations, cleared_since, waiting_for FROM lifecycle.erasure_waits "
                "WHERE run_id = :r"
            ),
            {"r": run_id},
        ).all()
        # What the night's purge cleared: an "unchanged" night still purges the orders whose
        # window closed while the previous night ran (the seed is anchored at the wall clock:
        # 11 orders in the ~5 minutes of a first night at 1M), and their erasure is owed.
        purged = conn.execute(
            sa.text("SELECT count(*) FROM lifecycle.purge_ledger WHERE run_id = :r"), {"r": run_id}
        ).scalar()
    parts = [f"the night's purge cleared {purged:,} order(s)"]
    parts += [f"rewritten ({m}) at {t:%H:%M:%S}" for m, t in done]
    parts += [
        f"pending for {', '.join(rel)} (cleared since {since:%H:%M:%S}, waiting for "
        f"{len(waiting)} snapshot(s)/lock(s))"
        for rel, since, waiting in waits
    ]
    if not done and not waits:
        parts.append("no erasure recorded")
    return "; ".join(parts)


def reference_night(engine: sa.Engine, cut: rules.Cutoffs) -> None:
    """What a DBA would run by hand: one purge UPDATE, VACUUM FULL, the sales table."""
    run_sql(engine, DBA_UPDATE, {"d": cut.delivered, "c": cut.cancelled, "a": cut.abandoned})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in TABLES[0::2]:  # the tables the purge clears: orders and cases
            conn.execute(sa.text(f"VACUUM FULL {table}"))
    with engine.begin() as conn:
        conn.exec_driver_sql(DBA_SALES)


# The night's own peak RSS: a process of its own runs `lifecycle nightly` and reports its
# RUSAGE_CHILDREN maximum, which covers that one night (this process's would be the largest of
# every night so far, the first night's planning build hiding the later nights' peaks).
PEAK_MARK = "peak RSS of the night (KiB): "
_OWN_PEAK = (
    "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
    f"print({PEAK_MARK!r} + str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss), "
    "file=sys.stderr); sys.exit(code)"
)


def lifecycle_night(url: sa.URL, dagster_home: Path, storage_url: str) -> dict:
    """`lifecycle nightly` in its own process; its wall time, peak RSS and step times."""
    env = {
        **os.environ,
        "LIFECYCLE_DATABASE_URL": url.render_as_string(hide_password=False),
        "LIFECYCLE_DAGSTER_STORAGE_URL": storage_url,
        "DAGSTER_HOME": str(dagster_home),
    }
    started, before = time.perf_counter(), time.time()
    result = subprocess.run(
        [PYTHON, "-c", _OWN_PEAK, LIFECYCLE, "nightly"], env=env, capture_output=True, text=True
    )
    wall, after = time.perf_counter() - started, time.time()
    if "run " not in result.stdout:
        sys.exit(
            f"lifecycle nightly did not run:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    run_id = result.stdout.rsplit("run ", 1)[1].split(":", 1)[0]
    # A failed night is a result too (e.g. the erasure refusing while checkouts run): say which step.
    failed = [
        line.strip() for line in result.stdout.splitlines() if line.strip().startswith("step ")
    ]
    steps = step_seconds(dagster_home, storage_url, run_id)
    run_start = steps.pop("RUN_START")
    run_end = steps.pop("RUN_SUCCESS", None) or steps.pop("RUN_FAILURE")
    raw_pass = steps.pop("RAW_PASS", "not run")
    return {
        "raw_pass": raw_pass,
        "wall": wall,
        "status": "succeeded" if result.returncode == 0 else "FAILED (" + "; ".join(failed) + ")",
        "steps": steps,
        "run_id": run_id,
        # Outside the steps: before the run starts (process, imports, migrations check, instance,
        # policy), inside the run between steps (Dagster's events), after it ends (summary, exit).
        "before_run": run_start - before,
        "between_steps": (run_end - run_start) - sum(steps.values()),
        "after_run": after - run_end,
        "rss_mb": int(result.stderr.rsplit(PEAK_MARK, 1)[1].split()[0]) / 1024,
    }


def step_seconds(dagster_home: Path, storage_url: str, run_id: str) -> dict[str, float]:
    """Each step's time from the run's own STEP_START and STEP_SUCCESS/FAILURE events, and what
    the raw-value check read of the raw zone (`RAW_PASS`: its `raw_values` and how many tokens
    no clean pass had compared, which make it read the zone whole)."""
    code = f"""
import json, dagster as dg
with dg.DagsterInstance.from_config({str(dagster_home)!r}) as i:
    starts, out = {{}}, {{}}
    for e in i.all_logs({run_id!r}):
        ev = e.dagster_event
        run_events = (dg.DagsterEventType.RUN_START, dg.DagsterEventType.RUN_SUCCESS,
                      dg.DagsterEventType.RUN_FAILURE)
        if ev is not None and ev.event_type in run_events:
            out[ev.event_type.name] = e.timestamp
        if ev is None or not e.step_key:
            continue
        if ev.event_type_value == "STEP_START":
            starts[e.step_key] = e.timestamp
        elif ev.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and e.step_key in starts:
            out[e.step_key] = e.timestamp - starts[e.step_key]
        elif ev.event_type_value == "ASSET_CHECK_EVALUATION":
            check = ev.event_specific_data
            metadata = {{k: v.value for k, v in check.metadata.items()}}
            if check.check_name == {RAW_VALUES_CHECK!r} and "scanned_raw_values" in metadata:
                never = metadata.get("scanned_tokens_never_compared")
                out["RAW_PASS"] = f"{{metadata['scanned_raw_values']}} ({{never}} never compared)"
    print(json.dumps(out))
"""
    result = subprocess.run(
        [PYTHON, "-c", code],
        env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def import_seconds(statement: str) -> float:
    """Wall time of a fresh interpreter running `statement` (process start included)."""
    started = time.perf_counter()
    subprocess.run([PYTHON, "-c", statement], check=True, cwd=PROJECT_DIR, capture_output=True)
    return time.perf_counter() - started


def clone(engine: sa.Engine, name: str) -> sa.Engine:
    """A copy of `engine`'s database (CREATE DATABASE … TEMPLATE): the same files for both."""
    source = engine.url.database
    engine.dispose()
    admin = db.create_engine(engine.url.set(database="postgres")).execution_options(
        isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{source}"'))
    admin.dispose()
    return db.create_engine(engine.url.set(database=name))


MAKE_DUE = """
UPDATE shop.orders SET delivered_at = :delivered
WHERE order_id >= :offset AND order_id < :offset + :width
"""


def increment_ids(n: int) -> int:
    """Where the `n`-th increment's orders start (0: INCREMENT_IDS; the next ones below it)."""
    return INCREMENT_IDS - n * BATCH_IDS


def add_in_service(engine: sa.Engine, n: int, policy, offset: int = INCREMENT_IDS) -> int:
    """`n` delivered orders whose after-sales window closes QUIET_HOURS from now: sold weeks ago,
    so the first night already publishes them and, however long it takes (an hour at 10M orders),
    does not purge them; the increment night only finds them due (`make_due`)."""
    delivered = datetime.now(UTC) - timedelta(
        days=policy.retention.after_sales_window_days, hours=-QUIET_HOURS
    )
    run_sql(engine, DROP_DUE, {"offset": offset, "width": BATCH_IDS})
    return run_sql(engine, ADD_DUE, {"offset": offset, "delivered": delivered, "n": n})


def make_due(engine: sa.Engine, policy, offset: int = INCREMENT_IDS) -> int:
    """A real increment: the orders added in service have passed their window (their delivery
    moved an hour and a bit back; no column the sales tables read changes, so no day is rebuilt)."""
    delivered = datetime.now(UTC) - timedelta(
        days=policy.retention.after_sales_window_days, hours=1
    )
    params = {"offset": offset, "width": BATCH_IDS, "delivered": delivered}
    return run_sql(engine, MAKE_DUE, params)


def quiet_hours(engine: sa.Engine, policy) -> int:
    """No seeded order's window closes in the next QUIET_HOURS: those that would are moved back
    that much (due on the first night instead), so a night run in that time finds none newly due.
    Returns how many orders and cases moved."""
    cut = rules.Cutoffs.at(datetime.now(UTC), policy)
    params = {
        "d": cut.delivered,
        "c": cut.cancelled,
        "a": cut.abandoned,
        "gap": timedelta(hours=QUIET_HOURS),
        "below": INCREMENT_IDS,
    }
    return run_sql(engine, QUIET_ORDERS, params) + run_sql(engine, QUIET_CASES, params)


def fresh_shop(name: str, orders: int, partitions: int) -> sa.Engine:
    """A new, migrated shop database; with `partitions` > 1, shop.orders and
    shop.after_sales_cases are the reference schema's range partitions by order_id (equal ranges
    of the seeded ids; the increment's and the checkout writer's ids fall in the last one),
    created before the migrations as lifecycle/retention/partitions.py asks."""
    if partitions <= 1:
        return fresh_database(name)
    engine = fresh_database(name)  # resolves the server and creates the database, migrated
    url = engine.url
    engine.dispose()
    db.drop_database(url.set(database="postgres"), name)
    db.ensure_database(url.set(database="postgres"), name)
    engine = db.create_engine(url)
    step = orders // partitions
    create_partitioned_shop(engine, [step * i for i in range(1, partitions)])
    schema.upgrade(engine)
    return engine


def record(bench: Bench, label: str, seconds: float, rss_mb: float = 0.0) -> None:
    """A figure measured outside this process (a subprocess's wall time and peak RSS)."""
    bench.measurements.append(Measurement(label, seconds, 0.0, rss_mb))
    print(f"  {label:<58} {seconds:8.3f} s  peak RSS {rss_mb:6.0f} MB")


NIGHTS = ("whole", "unchanged", "increment", "snapshots")


def night_note(label: str, night: dict, reference_seconds: float | None) -> str:
    """One night's figures: the ratio to the reference, time in and outside the steps, and every
    step's time (slowest first) so the lead can attribute each to its area."""
    in_steps = sum(night["steps"].values())
    ratio = (
        f"lifecycle / reference = **{night['wall'] / reference_seconds:.2f}×**; "
        if reference_seconds
        else ""
    )
    steps = ", ".join(
        f"{k} {v:.2f}" for k, v in sorted(night["steps"].items(), key=lambda kv: -kv[1])
    )
    return (
        f"{label} ({night['status']}): {ratio}{night['wall']:.1f} s wall, {in_steps:.1f} s in steps, "
        f"{night['wall'] - in_steps:.1f} s outside them ({night['before_run']:.1f} s before the run "
        f"starts, {night['between_steps']:.1f} s between steps, {night['after_run']:.1f} s after it "
        f"ends); raw pass: {night['raw_pass']}; steps (s): {steps}"
    )


def enable_repack(engine: sa.Engine) -> str:
    """`CREATE EXTENSION pg_repack` in the shop database where the server offers it (the erasure
    then rewrites online); returns the mechanism the night will use."""
    with engine.begin() as conn:
        offered = conn.execute(
            sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_repack'")
        ).scalar()
        if offered:
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_repack"))
    return "pg_repack" if offered else "VACUUM FULL"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=250_000)
    parser.add_argument(
        "--increment",
        default="3000",
        help="orders newly due on each increment night; a list (3000,85,12000) gives the nights "
        "those sizes in turn, so their counts change digit groups as a real shop's do",
    )
    parser.add_argument(
        "--nights",
        default=",".join(NIGHTS),
        help="which nights to measure, of " + ", ".join(NIGHTS) + " (the first night always "
        "runs: without `whole` it only prepares the shop and is not compared)",
    )
    parser.add_argument("--no-process-costs", action="store_true", help="skip the import timings")
    parser.add_argument(
        "--section",
        default="nightly",
        help="the section of bench/RESULTS.md to write (e.g. nightly-increment for a run of some "
        "nights only, so it does not replace the full run's figures)",
    )
    parser.add_argument(
        "--database",
        default=DATABASE,
        help="the shop database's name (the reference, Dagster storage and snapshot databases "
        "are named after it)",
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=0,
        help="range-partition shop.orders and shop.after_sales_cases by order_id into this many "
        "partitions (the reference schema's partitioned form); the erasure then rewrites only "
        "the partitions holding cleared rows",
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.increment.split(",")]
    nights = [n.strip() for n in args.nights.split(",") if n.strip()]
    if unknown := set(nights) - set(NIGHTS):
        sys.exit(f"unknown night(s): {', '.join(sorted(unknown))}; choose from {', '.join(NIGHTS)}")
    policy = load_policy(PROJECT_DIR / "policy.yaml")
    bench = Bench(
        args.section,
        f"python bench/bench_nightly.py --orders {args.orders} --increment {args.increment} "
        f"--nights {','.join(nights)}"
        + (f" --partitions {args.partitions}" if args.partitions > 1 else "")
        + (f" --section {args.section}" if args.section != "nightly" else ""),
    )
    size = f"{args.orders:,}"

    if not args.no_process_costs:
        print("fixed cost of a process, fresh interpreter each")
        for label, statement in (
            ("interpreter start", "pass"),
            ("import dagster", "import dagster"),
            ("import cli (the `lifecycle` command)", "import cli"),
            ("import definitions (every asset, check, job)", "import definitions"),
            ("import great_expectations (only the guard's checks)", "import great_expectations"),
        ):
            record(bench, f"process: {label}", min(import_seconds(statement) for _ in range(2)))

    engine = fresh_shop(args.database, args.orders, args.partitions)
    mechanism = enable_repack(engine)
    seed_label = f"{size}: seed the shop (not compared)"
    with bench.measure(seed_label):
        synthetic.seed_shop(engine, orders=args.orders, seed=7)
        moved = quiet_hours(engine, policy)
        for n in range(nights.count("increment")):
            add_in_service(engine, sizes[n % len(sizes)], policy, increment_ids(n))
        if "snapshots" in nights:
            add_in_service(engine, sizes[0], policy, SNAPSHOT_IDS)
        vacuum_analyze(engine, *TABLES)
    bench.notes.append(
        f"Seeding (set-based SQL, lifecycle/synthetic.py): {args.orders / bench.seconds(seed_label):,.0f} "
        f"orders/s; {moved:,} orders and cases whose window would close in the next "
        f"{QUIET_HOURS} h moved back that much (due on the first night: the unchanged night "
        f"finds none newly due); the erasure rewrites with {mechanism}"
        + (
            f"; shop.orders and shop.after_sales_cases in {args.partitions} order_id range "
            "partitions"
            if args.partitions > 1
            else ""
        )
    )
    reference = clone(engine, f"{args.database}_reference")
    engine = db.create_engine(engine.url)
    url = engine.url.render_as_string(hide_password=False)
    reference_url = reference.url.render_as_string(hide_password=False)

    workdir = Path(tempfile.mkdtemp(prefix="bench_nightly_"))
    storage = engine.url.set(database=f"{args.database}_dagster")
    db.drop_database(engine.url, storage.database)
    db.ensure_database(engine.url, storage.database)
    storage_url = storage.set(drivername="postgresql+psycopg2").render_as_string(
        hide_password=False
    )

    def compare(label: str, with_writer: bool = True) -> dict:
        """The reference night then ours, each with the checkout writer beside it."""
        cut = rules.Cutoffs.at(datetime.now(UTC), policy)
        with Checkout(reference_url) as checkout:
            with bench.measure(f"{label}, hand-written (reference)"):
                reference_night(reference, cut)
        bench.notes.append(f"{label}, reference: {checkout.figures()}")
        with Checkout(url) as checkout:
            night = lifecycle_night(engine.url, workdir / "dagster", storage_url)
        record(bench, f"{label}, lifecycle nightly", night["wall"], night["rss_mb"])
        bench.notes.append(
            night_note(label, night, bench.seconds(f"{label}, hand-written (reference)"))
        )
        bench.notes.append(f"{label}, lifecycle: {checkout.figures()}")
        bench.notes.append(f"{label}, erasure: {erasure_state(engine, night['run_id'])}")
        bench.write(engine)  # after each night: a run stopped later still leaves its figures
        return night

    if "whole" in nights:
        compare(f"{size}: whole night")
    else:  # the shop as a night leaves it, for the nights that follow; not compared
        reference_night(reference, rules.Cutoffs.at(datetime.now(UTC), policy))
        night = lifecycle_night(engine.url, workdir / "dagster", storage_url)
        record(
            bench,
            f"{size}: first night (prepares the shop, not compared)",
            night["wall"],
            night["rss_mb"],
        )
        bench.notes.append(night_note(f"{size} first night (not compared)", night, None))
        bench.write(engine)

    # Nothing new since the last night: what is left is fixed cost. Named twice (`unchanged,
    # unchanged`), a second one follows: the first after a first night still meets some texts of
    # that night's run for the first time (its steps after the guard's), the second is the steady
    # state.
    for n in range(nights.count("unchanged")):
        compare(f"{size}: unchanged night" + (f" {n + 1}" if n else ""))

    # Orders sold and published weeks ago that became due since. Named twice (`increment,
    # increment`), a second batch follows: the first increment after an unchanged night still
    # writes texts of that kind of night for the first time (which the guard compares with the
    # whole raw zone once), the second is the steady state of a shop's nights.
    for n in range(nights.count("increment")):
        for target in (reference, engine):
            make_due(target, policy, increment_ids(n))
            vacuum_analyze(target, *TABLES)
        due = sizes[n % len(sizes)]
        compare(f"{size} + {due:,} due: increment" + (f" {n + 1}" if n else ""))

    if "snapshots" in nights:
        # Another increment with snapshots open the whole night (another database, pg_dump),
        # then one more night without them: when did the values leave the files?
        make_due(engine, policy, SNAPSHOT_IDS)
        vacuum_analyze(engine, *TABLES)
        with Snapshots(engine) as snapshots:
            night = lifecycle_night(engine.url, workdir / "dagster", storage_url)
        record(
            bench,
            f"{size} + {sizes[0]:,} due: increment with REPEATABLE READ elsewhere + pg_dump",
            night["wall"],
            night["rss_mb"],
        )
        bench.notes.append(
            f"{size} increment with a REPEATABLE READ transaction open in another database and "
            f"{snapshots.dumps} pg_dump(s) of the shop running the whole night: lifecycle "
            f"{night['status']}; erasure: {erasure_state(engine, night['run_id'])}"
        )
        night = lifecycle_night(engine.url, workdir / "dagster", storage_url)
        record(bench, f"{size}: next night, snapshots gone", night["wall"], night["rss_mb"])
        bench.notes.append(
            f"{size} next night, the snapshots gone: lifecycle {night['status']}; "
            f"erasure: {erasure_state(engine, night['run_id'])}"
        )
    bench.notes.append(
        "process rows: a fresh interpreter importing each layer, best of 2; the command imports "
        "`cli` at start and `definitions` only for the verbs that run a job, and Great "
        "Expectations only inside the guard's checks that use it (lifecycle/guard/gx.py). "
        "Peak RSS of a night is its own `lifecycle nightly` process's (RUSAGE_CHILDREN of a "
        "process started for that night alone)."
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    bench.notes.append(
        f"Load average when written: {load} on {os.cpu_count()} CPUs. Each process figure is wall "
        "time, so a loaded machine inflates them; compare the ratios of one run."
    )
    reference.dispose()
    bench.write(engine)


if __name__ == "__main__":
    main()
