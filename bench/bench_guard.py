"""Leak guard at scale: every check over the analytics zone of the synthetic shop, against one SQL
scan of the same tables, and the fingerprint check at two raw-zone sizes to show it grows linearly.

Two zones: what the nightly publishes (sales volume, weekly demand, product lines, built by
lifecycle.sales), and the same plus an ad-hoc table of 100,000 free-text notes, none personal,
which every name and phone check must read word by word. The fingerprint check is also priced
against what a DBA would write without keyed hashes: normalised values joined in plain text.

    .venv/bin/python bench/bench_guard.py [--orders 1000000] [--small 250000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402

from assets.guard import GUARD_CHECKS  # noqa: E402
from bench.harness import Bench, fresh_database, run_sql, vacuum_analyze  # noqa: E402
from lifecycle import synthetic
from lifecycle.checks import CheckResult  # noqa: E402
from lifecycle.guard import cells, changes, gx, values  # noqa: E402
from lifecycle.guard.key import GuardKey  # noqa: E402
from lifecycle.guard.raw_values import raw_values_in_zone  # noqa: E402
from lifecycle.guard.terminal import status_line  # noqa: E402
from lifecycle.guard.tokens import SQL_PARAMS, norm_sql  # noqa: E402
from lifecycle.guard.zone import Relation, discover  # noqa: E402
from lifecycle.policy import load_policy  # noqa: E402
from lifecycle.sales import daily, planning  # noqa: E402
from lifecycle.settings import PROJECT_DIR  # noqa: E402
from tests.db.test_guard_incremental import counters  # noqa: E402

AS_OF = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
NOTES = 100_000
ADHOC_NOTES = f"""
CREATE TABLE analytics.bench_notes AS
SELECT g AS note_id,
       'restock ' || (ARRAY['SKU-0042', 'SKU-0117', 'SKU-0199'])[1 + g % 3] || ' in '
           || (ARRAY['SH', 'BJ', 'GD', 'OTHER'])[1 + g % 4] || ': ' || (g % 97) || ' units by week '
           || (1 + g % 52) || ', forecast ' || round((g % 1000) / 10.0, 1) AS remark
FROM generate_series(1, {NOTES}) g
"""


def build_zone(engine, policy, orders: int) -> None:
    """The shop and what the nightly publishes from it, settled before anything is timed."""
    print(f"seeding {orders:,} orders and building the analytics zone")
    synthetic.seed_shop(engine, orders=orders, seed=7, as_of=AS_OF)
    daily.refresh(engine, policy, run_id=f"bench-{orders}", as_of=AS_OF)
    # In the nightly's order: the summary first, then weekly demand merged against it (docs/sales.md).
    planning.build_product_line_summary(engine, policy, AS_OF)
    planning.build_weekly_demand(engine, policy, AS_OF)
    run_sql(engine, "DROP TABLE IF EXISTS analytics.bench_notes")
    run_sql(engine, ADHOC_NOTES)
    vacuum_analyze(
        engine,
        "shop.orders",
        "shop.order_items",
        "shop.after_sales_cases",
        *(f"analytics.{r.name}" for r in zone(engine)),
    )


def zone(engine) -> list[Relation]:
    with engine.connect() as conn:
        return discover(conn)


def one_scan_sql(engine) -> str:
    """The reference: one statement reading every text column of every relation in the zone once."""
    parts = []
    for relation in zone(engine):
        columns = [f'coalesce(length("{c.name}"::text), 0)' for c in relation.text_columns] or ["0"]
        parts.append(
            f'(SELECT count(*) + sum({" + ".join(columns)}) FROM analytics."{relation.name}")'
        )
    return "SELECT " + " + ".join(parts)


def plaintext_match_sql(engine, policy) -> str:
    """What a DBA would write without keyed hashes: normalised analytics values and words joined in
    plain text against the normalised raw values (no phone forms, no emails inside text)."""
    words = " UNION ".join(
        f"""SELECT DISTINCT w FROM analytics."{r.name}",
                   regexp_split_to_table({norm_sql(f'"{c.name}"::text')}, ' ') AS w"""
        for r in zone(engine)
        for c in r.text_columns
    )
    raw = " UNION ".join(
        f"SELECT DISTINCT {norm_sql(f'{col}::text')} AS w FROM {spec.sql}"
        for spec in policy.raw.tables().values()
        for col in spec.personal_columns
    )
    return f"SELECT count(*) FROM ({words}) a JOIN ({raw}) r USING (w)"


@contextmanager
def nightly_zone_only(engine):
    """Moves the ad-hoc notes out of analytics for the block: the zone the nightly publishes."""
    run_sql(engine, "ALTER TABLE analytics.bench_notes SET SCHEMA public")
    try:
        yield
    finally:
        run_sql(engine, "ALTER TABLE public.bench_notes SET SCHEMA analytics")


def fingerprints(bench: Bench, engine, policy, key, label: str, rows: int) -> CheckResult:
    with bench.measure(label, rows=rows):
        report = raw_values_in_zone(engine, policy, key)
    assert report.passed, report.description()
    return report


def all_checks(bench: Bench, engine, policy, key, label: str) -> None:
    """All checks against one scan of the same zone, as a ratio in the notes."""
    relations = zone(engine)
    rows = count(
        engine,
        "SELECT " + " + ".join(f'(SELECT count(*) FROM analytics."{r.name}")' for r in relations),
    )
    with bench.measure(f"{label}: one SQL scan of the zone (reference)", rows=rows):
        count(engine, one_scan_sql(engine))
    with bench.measure(f"{label}: lifecycle guard, all checks", rows=rows):
        reports = []
        for check in GUARD_CHECKS:
            reports.append((check.name, check.scan(engine, policy, key)))
            print(f"    {status_line(*reports[-1])}")
    assert all(r.passed for _, r in reports), [r.description() for _, r in reports if not r.passed]
    ratio = bench.ratio(
        f"{label}: lifecycle guard, all checks", f"{label}: one SQL scan of the zone (reference)"
    )
    per_check = ", ".join(
        f"{name.split('_in_')[0]} {r.seconds:.2f} s" for name, r in reports if r.seconds >= 0.05
    )
    bench.notes.append(
        f"{label} ({len(relations)} relations, {rows:,} rows, {sum(len(r.text_columns) for r in relations)} text "
        f"columns): all checks / one SQL scan of the zone = **{ratio:.0f}×** "
        f"({bench.seconds(f'{label}: lifecycle guard, all checks'):.2f} s). Slowest: {per_check}. The scan reads "
        "the zone only; the guard also reads every personal value of the raw zone once (fingerprints) and pays "
        "Great Expectations' fixed cost of about a second."
    )


def zone_scans(engine, policy, key, night: datetime) -> list[CheckResult]:
    """The three zone scans as the nightly runs them on `night` (incremental, weekly full)."""
    with changes.incremental(night, timedelta(days=policy.guard.full_scan_every_days)):
        return [
            values.personal_value_patterns(engine, key),
            raw_values_in_zone(engine, policy, key),
            cells.small_cells(engine, policy),
        ]


def unchanged_night(bench: Bench, engine, policy, key, label: str) -> None:
    """A first night (full: stores each clean relation's signature), then a night on which nothing
    changed, one on which a customer's name changed in the raw zone, and one on which one ad-hoc
    note was added: what each reads and costs."""
    run_sql(engine, "DELETE FROM lifecycle.guard_positions WHERE scan <> 'run_history'")
    nights = [
        ("first night (full scan)", AS_OF, None),
        ("unchanged night", AS_OF + timedelta(days=1), None),
        (
            "night with one raw value changed",
            AS_OF + timedelta(days=2),
            "UPDATE shop.orders SET receiver_name = receiver_name || ' Jr' WHERE order_id = "
            "(SELECT min(order_id) FROM shop.orders WHERE receiver_name IS NOT NULL)",
        ),
        (
            "night with one note added",
            AS_OF + timedelta(days=3),
            "INSERT INTO analytics.bench_notes VALUES (0, 'restock SKU-0042 next week')",
        ),
    ]
    read = {}
    for name, night, change in nights:
        if change:
            table = "shop.orders" if "shop.orders" in change else "analytics.bench_notes"
            before = counters(engine, table)
            run_sql(engine, change)
            waited = time.monotonic()
            # The writer's statistics reach the signatures a second or more after its commit
            # (on this loaded machine once after more than two): the nightly's steps end earlier.
            while counters(engine, table) == before and time.monotonic() - waited < 60:
                time.sleep(0.2)
        with bench.measure(f"{label}: {name}, pattern + fingerprint + small-cell scans"):
            reports = zone_scans(engine, policy, key, night)
        assert all(r.passed for r in reports), [r.description() for r in reports]
        read[name] = [r.scanned["relations_scanned"] for r in reports]
    bench.notes.append(
        f"{label}, the nightly's zone scans (patterns, fingerprints, small cells) on four nights: "
        + "; ".join(
            f"{name} {bench.seconds(f'{label}: {name}, pattern + fingerprint + small-cell scans'):.2f} s, "
            f"relations read {'/'.join(map(str, n))}"
            for name, n in read.items()
        )
        + ". Unchanged: no relation is read (signatures from the catalog and the statistics). A raw "
        "value changed: no relation is read; the fingerprint scan joins the digests it kept with "
        "the raw values written since its last scan. A note added: that relation alone is read "
        "(here the 100,000-note table, the bulk of the zone's text)."
    )


def count(engine, sql: str, params: dict | None = None) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params or {}).scalar_one()


def raw_values(engine, policy) -> int:
    sql = " + ".join(
        f"(SELECT count({col}) FROM {spec.sql})"
        for spec in policy.raw.tables().values()
        for col in spec.personal_columns
    )
    return count(engine, f"SELECT {sql}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=250_000)
    parser.add_argument(
        "--repeat", type=int, default=2, help="runs of the fingerprint check at each size"
    )
    args = parser.parse_args()
    policy = load_policy(PROJECT_DIR / "policy.yaml")
    key = GuardKey(secrets.token_bytes(32))
    gx.great_expectations()  # imported before anything is timed: an import is not the guard's memory
    bench = Bench(
        "guard",
        f"python bench/bench_guard.py --orders {args.orders} --small {args.small} "
        f"--repeat {args.repeat}",
    )
    engine = fresh_database("bench_guard")
    small, large = f"{args.small:,}", f"{args.orders:,}"

    build_zone(engine, policy, args.small)
    small_values = raw_values(engine, policy)
    for attempt in range(1, args.repeat + 1):
        fingerprints(
            bench,
            engine,
            policy,
            key,
            f"{small}: fingerprints, zone + notes #{attempt}",
            small_values,
        )
        with nightly_zone_only(engine):
            fingerprints(
                bench,
                engine,
                policy,
                key,
                f"{small}: fingerprints, nightly zone #{attempt}",
                small_values,
            )

    build_zone(engine, policy, args.orders)
    large_values = raw_values(engine, policy)
    with nightly_zone_only(engine):
        all_checks(bench, engine, policy, key, f"{large} orders, the nightly zone")
    all_checks(bench, engine, policy, key, f"{large} orders, zone + 100,000 free-text notes")
    unchanged_night(bench, engine, policy, key, f"{large} orders, zone + notes")
    for attempt in range(1, args.repeat + 1):
        fingerprints(
            bench,
            engine,
            policy,
            key,
            f"{large}: fingerprints, zone + notes #{attempt}",
            large_values,
        )
        with nightly_zone_only(engine):
            fingerprints(
                bench,
                engine,
                policy,
                key,
                f"{large}: fingerprints, nightly zone #{attempt}",
                large_values,
            )
        with bench.measure(
            f"{large}: plain-text join of normalised values (DBA, no key) #{attempt}",
            rows=large_values,
        ):
            count(engine, plaintext_match_sql(engine, policy), SQL_PARAMS)

    for zone_name in ("nightly zone", "zone + notes"):
        grow = bench.best(f"{large}: fingerprints, {zone_name}") / bench.best(
            f"{small}: fingerprints, {zone_name}"
        )
        bench.notes.append(
            f"Fingerprint check, {zone_name}, {large} / {small} orders: **{grow:.2f}×** the time for "
            f"{large_values / small_values:.2f}× the personal raw values (best of {args.repeat} each): linear, "
            "one pass over the DISTINCT raw values and a hash join against the zone's tokens; a fixed cost for the "
            "zone's own text comes on top."
        )
    bench.notes.append(
        f"Fingerprint check (zone + notes) / plain-text join of normalised values = "
        f"**{bench.best(f'{large}: fingerprints, zone + notes') / bench.best(f'{large}: plain-text join'):.2f}×**: "
        "the price of keyed HMAC-SHA256 digests instead of copies, of phone forms, and of names and emails inside "
        "text (the plain join compares whole values and single words only)."
    )
    bench.notes.append(
        "Python peak MB is tracemalloc's peak during the step: flat, since no value leaves "
        "the database; only counts and masked samples do."
    )
    bench.write(engine)


if __name__ == "__main__":
    main()
