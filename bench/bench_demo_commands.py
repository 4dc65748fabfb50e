"""What a newcomer waits for on the demo: `lifecycle guard` and `lifecycle report` from the shell,
and (with --ui) the Dagster UI's asset-group lineage pages in headless Chromium.

On the worktree's own demo shop and run history (`lifecycle demo` runs first when the shop has no
orders, as under `make bench`). Each command is a fresh process, as a person runs it; the best of
--repeat runs is kept, and `lifecycle --help` gives the floor of starting Python and the CLI
package. With --before REV the same commands of the code at REV (`git archive`, on the same venv,
shop and history) alternate with ours, so the ratio holds on a busy machine. A UI page counts as
shown when every asset of the group is on the graph; the first visit after the webserver starts
and a later one are both kept.

    .venv/bin/python bench/bench_demo_commands.py [--repeat 3] [--before REV] [--ui]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402

from bench.harness import Bench  # noqa: E402
from cli.context import engine_for  # noqa: E402
from lifecycle.settings import PROJECT_DIR, Settings  # noqa: E402
from tests.e2e.test_ui import CHROMIUM, CHROMIUM_ARGS, start_webserver  # noqa: E402

BIN = Path(sys.executable).parent
# The asset groups of the definitions and the assets each one's lineage page must show.
GROUPS = {
    "retention": ("due_orders", "purged_orders", "erased_purged_storage"),
    "logistics": ("carrier_handoff", "carrier_files"),
    "analytics": ("refreshed_sales_volume", "sales_volume_daily", "weekly_demand"),
    "requests": ("handled_data_requests", "open_data_requests"),
    "guard": ("analytics_zone",),
    "evidence": ("ledger_anchor", "pruned_run_history"),
}


def code_at(rev: str, into: Path) -> Path:
    """The project's files at `rev`, extracted (no checkout, no change to the repository)."""
    into.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(PROJECT_DIR), "archive", rev], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def commands(bench: Bench, repeat: int, out: Path, before: Path | None) -> None:
    """Each command `repeat` times, ours (and the code at --before) alternating."""
    runs = {
        "lifecycle --help (start-up floor)": ["--help"],
        "lifecycle guard --no-run-history": ["guard", "--no-run-history"],
        "lifecycle guard": ["guard"],
        "lifecycle report": ["report", "--out", str(out / "report.html")],
    }
    # The code at --before reads this worktree's shop, history, key and policy.
    home = Settings.from_env().home
    env = {
        **os.environ,
        "LIFECYCLE_HOME": str(home),
        "LIFECYCLE_POLICY": str(PROJECT_DIR / "policy.yaml"),
    }
    contenders = {"": {}, "before: ": {"PYTHONPATH": str(before)}} if before else {"": {}}
    for label, args in runs.items():
        for attempt in range(1, repeat + 1):
            for prefix, extra in contenders.items():
                with bench.measure(f"{prefix}{label} #{attempt}"):
                    done = subprocess.run(
                        [BIN / "lifecycle", *args],
                        capture_output=True,
                        text=True,
                        env={**env, **extra},
                    )
                if done.returncode != 0:
                    raise SystemExit(f"{label} failed:\n{done.stdout}{done.stderr[-2000:]}")
        ours = bench.best(label + " #")
        line = f"{label}: best of {repeat} {ours:.2f} s wall"
        if before:
            then = bench.best(f"before: {label} #")
            line += f" (before: {then:.2f} s, {ours / then:.2f}× the time)"
        bench.notes.append(line)


def ui_pages(bench: Bench, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    home = subprocess.run(
        [BIN / "lifecycle", "instance"], capture_output=True, text=True, check=True
    ).stdout.strip()
    log = out / "webserver.log"
    server, base = start_webserver({**os.environ, "DAGSTER_HOME": home}, log)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{base}/server_info", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"webserver did not start: {log}") from None
                time.sleep(0.5)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            context.set_default_timeout(120_000)
            context.add_init_script("window.localStorage.setItem('communityNux', '1')")
            page = context.new_page()
            for visit in ("first visit", "second visit"):
                for group, assets in GROUPS.items():
                    with bench.measure(f"UI lineage page of group {group} ({visit})"):
                        page.goto(f"{base}/locations/definitions/asset-groups/{group}")
                        for asset in assets:
                            page.get_by_text(asset, exact=True).first.wait_for()
            browser.close()
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def ensure_demo() -> None:
    """Seeds the demo and runs its night when the shop is empty: the figures are the demo's."""
    with engine_for(Settings.from_env()).connect() as conn:
        orders = conn.execute(sa.text("SELECT count(*) FROM shop.orders")).scalar()
    if not orders:
        subprocess.run([BIN / "lifecycle", "demo"], capture_output=True, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--before", help="also time the code at this git revision, alternating")
    parser.add_argument("--ui", action="store_true", help="also time the UI's lineage pages")
    args = parser.parse_args()
    bench = Bench(
        "demo_commands",
        ".venv/bin/python bench/bench_demo_commands.py"
        + (f" --repeat {args.repeat}" if args.repeat != 3 else "")
        + (f" --before {args.before}" if args.before else "")
        + (" --ui" if args.ui else ""),
    )
    ensure_demo()
    with tempfile.TemporaryDirectory() as tmp:
        before = code_at(args.before, Path(tmp) / "before") if args.before else None
        commands(bench, args.repeat, Path(tmp), before)
        if args.ui:
            ui_pages(bench, Path(tmp))
    if args.before:
        bench.notes.append(
            f"before: the code at {args.before} (`git archive`), on the same venv, shop and "
            "history, alternating with ours."
        )
    if args.ui:
        bench.notes.append(
            "A lineage page's time runs from navigation until every asset of the group is drawn: "
            "Dagster's page and its GraphQL queries (README, 'The Dagster UI on the demo')."
        )
    bench.notes.append(
        "On the worktree's demo shop (`lifecycle demo`: 50,000 orders, its nights so far), each "
        "command a fresh process; the machine's two cores were shared with other sessions (load "
        f"average {os.getloadavg()[0]:.1f} at the end), so compare the ratios, not the seconds."
    )
    bench.write(engine_for(Settings.from_env()))


if __name__ == "__main__":
    main()
