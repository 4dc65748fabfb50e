"""Planning tables Sunday after Sunday: each window's and each week's share of its units, night by night.

The cold builds of bench_sales_planning.py show one night. The losses that matter appear later:
a week or a block whose first copy withholds its all row keeps it withheld for every copy that
shows it (a later copy may not be finer, lifecycle/sales/publications.py), and merges made on the
night a 28-day block ends stay for the four or twelve Sundays the block is shown. So this runs the
nightly as it runs: each shop is seeded once, 18 weeks deep, and for each Sunday in turn the daily
refresh, both planning builds in one transaction and the guard's differencing check run, as the
nightly job does after that Sunday. Per night it records each window's share of the summary
(`units_published_pct_per_window`), the weekly table's share over its 13 weeks and its weakest
week's, whether the guard passed, and what the builds took. Four shops: the demo's size (50k
orders), two of 20k and one of 8k (the smaller the shop, the more cells sit near k).

    .venv/bin/python bench/bench_sales_sundays.py [--shops 8000:2,20000:1,20000:7,50000:1]
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402

from bench.harness import Bench, fresh_database, load_note, vacuum_analyze  # noqa: E402
from lifecycle import synthetic  # noqa: E402
from lifecycle.policy import load_policy  # noqa: E402
from lifecycle.sales import daily, planning  # noqa: E402
from lifecycle.sales.differencing import differencing_remainders  # noqa: E402
from lifecycle.settings import PROJECT_DIR  # noqa: E402

FIRST_NIGHT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # the night after Sunday 2026-05-31
SUNDAYS = 18
TARGET = 95.0


@dataclass
class Night:
    sunday: str
    windows: dict[str, float]
    weekly: float
    weakest_week: float
    guard: bool
    seconds: float

    def under_target(self) -> dict[str, float]:
        """The figures of the night below the target: summary windows and the weekly table."""
        figures = {**self.windows, "weekly": self.weekly}
        return {name: pct for name, pct in figures.items() if pct < TARGET}


def run_shop(bench: Bench, orders: int, seed: int, policy) -> tuple[list[Night], sa.Engine]:
    """Seeds the shop and runs the nightly's sales steps for each of SUNDAYS Sundays in turn."""
    engine = fresh_database("sales_bench_sundays")
    last_night = FIRST_NIGHT + timedelta(weeks=SUNDAYS - 1)
    synthetic.seed_shop(engine, orders=orders, seed=seed, as_of=last_night)
    vacuum_analyze(engine, "shop.orders", "shop.order_items", "shop.products")
    nights = []
    for week in range(SUNDAYS):
        as_of = FIRST_NIGHT + timedelta(weeks=week)
        daily.refresh(engine, policy, run_id="bench", as_of=as_of)
        label = f"{orders:,} orders (seed {seed}), Sunday {week + 1}: both planning builds"
        with bench.measure(label) as box:
            summary, weekly = planning.build_planning_tables(engine, policy, as_of)
            box["rows"] = summary.rows + weekly.rows
        meta, weekly_meta = summary.metadata(), weekly.metadata()
        nights.append(
            Night(
                sunday=meta["as_of_date"],
                windows=meta["units_published_pct_per_window"],
                weekly=weekly_meta["units_published_pct"],
                weakest_week=weekly_meta["weakest_week_units_published_pct"],
                guard=differencing_remainders(engine, policy).passed,
                seconds=bench.seconds(label),
            )
        )
    return nights, engine


def shop_notes(orders: int, seed: int, nights: list[Night]) -> str:
    """A line per shop: each figure's lowest over the Sundays, and the nights below the target."""
    lowest = ", ".join(f"{w} {min(n.windows[w] for n in nights)}%" for w in nights[0].windows)
    below = [n for n in nights if n.under_target()]
    each = "; ".join(
        f"{n.sunday} ({', '.join(f'{k} {v}%' for k, v in n.under_target().items())})" for n in below
    )
    failed = [n.sunday for n in nights if not n.guard]
    weak = sum(n.weakest_week < TARGET for n in nights)
    return (
        f"{orders:,} orders (seed {seed}), {len(nights)} Sundays from {nights[0].sunday}: lowest "
        f"share per summary window {lowest}; weekly table (13 weeks) lowest "
        f"{min(n.weekly for n in nights)}%, its weakest week lowest "
        f"{min(n.weakest_week for n in nights)}% ({weak} nights with a week under "
        f"{TARGET:.0f}%); **{len(below)}** of {len(nights)} nights with "
        f"a window or the weekly table under {TARGET:.0f}%{': ' + each if each else ''}; the "
        f"guard {'FAILED on ' + ', '.join(failed) if failed else 'passed every night'}; both "
        f"builds {sum(n.seconds for n in nights):.1f} s over the {len(nights)} nights (longest "
        f"{max(n.seconds for n in nights):.1f} s)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--shops",
        default="8000:2,20000:1,20000:7,50000:1",
        help="orders:seed of each shop, comma-separated",
    )
    args = parser.parse_args()
    policy = load_policy(PROJECT_DIR / "policy.yaml")
    bench = Bench("sales_sundays", f"python bench/bench_sales_sundays.py --shops {args.shops}")
    load_at_start = os.getloadavg()[0]
    for shop in args.shops.split(","):
        orders, seed = (int(n) for n in shop.split(":"))
        nights, engine = run_shop(bench, orders, seed, policy)
        bench.notes.append(shop_notes(orders, seed, nights))
        for n in nights:
            guard = "passed" if n.guard else "FAILED"
            print(f"    {n.sunday} {n.windows} weekly {n.weekly}% ({n.weakest_week}%) {guard}")
    bench.notes.append(load_note(load_at_start))
    bench.write(engine)


if __name__ == "__main__":
    main()
