"""How long the erasure takes to find what it owes on a partitioned shop after a backlog purge:
`pending_erasures` counting all partitions in one statement, against the code before (one query
per partition), on the same shop.

    LIFECYCLE_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        python bench/bench_pending.py --orders 500000 --partitions 40

Seeds the partitioned reference schema, purges everything due (the backlog), then times each
form; `--before REV` names the git revision whose lifecycle/retention/backlog.py is the old form.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_nightly import fresh_shop  # noqa: E402
from bench.harness import Bench, vacuum_analyze  # noqa: E402
from lifecycle import db, synthetic  # noqa: E402
from lifecycle.policy import load_policy  # noqa: E402
from lifecycle.retention import backlog, purge  # noqa: E402
from lifecycle.settings import PROJECT_DIR  # noqa: E402


def old_backlog(revision: str):
    """lifecycle/retention/backlog.py as it was at `revision`, imported under another name."""
    source = subprocess.run(
        ["git", "show", f"{revision}:lifecycle/retention/backlog.py"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "backlog_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("backlog_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=500_000)
    parser.add_argument("--partitions", type=int, default=40)
    parser.add_argument("--before", default="17f0a63", help="git revision of the old form")
    parser.add_argument("--database", default="lane_night_pending")
    args = parser.parse_args()
    policy = load_policy(PROJECT_DIR / "policy.yaml")
    bench = Bench(
        "erasure_pending",
        f"python bench/bench_pending.py --orders {args.orders} --partitions {args.partitions}",
    )
    engine = fresh_shop(args.database, args.orders, args.partitions)
    with bench.measure(f"{args.orders:,} orders: seed ({args.partitions} partitions)"):
        synthetic.seed_shop(engine, orders=args.orders, seed=7)
    with bench.measure("purge the backlog (everything due)"):
        report = purge.run_purge(engine, policy, run_id="backlog", as_of=datetime.now(UTC))
    vacuum_analyze(engine, "shop.orders", "lifecycle.purge_ledger")
    bench.notes.append(f"purged {report.purged:,} orders (the ledger's changes to place)")
    old = old_backlog(args.before)
    found = {}
    for label, module in (
        ("one statement (now)", backlog),
        (f"per partition ({args.before})", old),
    ):
        with bench.measure(f"pending_erasures, {label}"):
            pending = module.pending_erasures(engine, policy)
        found[label] = sorted((p.relation, p.changes, p.newest_xid) for p in pending)
        bench.notes.append(
            f"{label}: {len(pending)} relations pending, "
            f"{sum(p.changes for p in pending):,} changes counted"
        )
    same = len({tuple(f) for f in found.values()}) == 1
    bench.notes.append(f"both forms found the same relations, counts and newest xids: {same}")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    bench.notes.append(f"Load average when written: {load} on {os.cpu_count()} CPUs.")
    bench.write(engine)
    url = engine.url
    engine.dispose()
    db.drop_database(url.set(database="postgres"), args.database)


if __name__ == "__main__":
    main()
