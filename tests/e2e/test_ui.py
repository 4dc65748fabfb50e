"""The Dagster UI in a real browser: what a reviewer must see after a night of the demo shop.

`lifecycle demo` seeds a small shop in databases of its own and runs nightly_lifecycle once;
dagster-webserver then serves that history on a free loopback port, and headless Chromium
(Debian's package, driven by Playwright) opens the asset graph, the run and its checks.
Screenshots go to the test's temporary folder, and to docs/img with LIFECYCLE_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from lifecycle import db
from lifecycle.settings import PROJECT_DIR, Settings
from orchestration import history
from orchestration.instance import open_instance

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BIN = Path(sys.executable).parent
ORDERS = 300
TIMEOUT_MS = 60_000
RETENTION_ASSETS = ("due_orders", "purged_orders", "erased_purged_storage")


def _browser_or_skip():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(
            "Playwright for Python is not installed (pip install -c constraints.txt -e '.[test]')"
        )
    if not CHROMIUM.exists():
        pytest.skip(
            f"no browser: Debian's chromium is not at {CHROMIUM} (apt-get install chromium; .ci/run does this)"
        )
    return sync_playwright


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_webserver(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    """dagster-webserver on the workspace, on a free loopback port, writing to `log`; its own
    process group, so the caller stops it with everything it started."""
    port = _free_port()
    with open(log, "w") as out:
        server = subprocess.Popen(
            [BIN / "dagster-webserver", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            env=env,
            cwd=PROJECT_DIR,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return server, f"http://127.0.0.1:{port}"


def _wait_for(url: str, server: subprocess.Popen, log: Path, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(
                f"dagster-webserver exited with {server.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(
        f"dagster-webserver did not answer {url} within {seconds:.0f} s:\n{log.read_text()[-3000:]}"
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A small demo shop after one nightly run, and dagster-webserver serving its history."""
    sync_playwright = _browser_or_skip()
    tmp = tmp_path_factory.mktemp("ui")
    admin = db.normalise_url(db.start_embedded_server(Settings.from_env().embedded_data_dir))
    shop_db, history_db = f"lifecycle_e2e_{os.getpid()}", f"lifecycle_e2e_{os.getpid()}_dagster"
    for name in (shop_db, history_db):
        db.drop_database(admin, name)
        db.ensure_database(admin, name)
    env = {
        **os.environ,
        "LIFECYCLE_DATABASE_URL": admin.set(database=shop_db).render_as_string(hide_password=False),
        "LIFECYCLE_DAGSTER_STORAGE_URL": admin.set(database=history_db).render_as_string(
            hide_password=False
        ),
        "DAGSTER_HOME": str(tmp / "dagster_home"),
        "LIFECYCLE_EXPORT_DIR": str(tmp / "exports"),
    }
    env.pop("LIFECYCLE_WEBHOOK_URL", None)
    seeded = subprocess.run(
        [BIN / "lifecycle", "demo", "--orders", str(ORDERS)],
        env=env,
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr

    settings = Settings.from_env(env)
    with open_instance(settings) as instance:
        run = history.last_success(instance)
    assert run is not None, seeded.stdout
    log = tmp / "webserver.log"
    server, base = start_webserver(env, log)
    try:
        _wait_for(f"{base}/server_info", server, log)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            context.set_default_timeout(TIMEOUT_MS)
            # Dagster's "join the community" dialog would cover the pages on a first visit.
            context.add_init_script("window.localStorage.setItem('communityNux', '1')")
            yield {
                "base": base,
                "run": run,
                "page": context.new_page(),
                "tmp": tmp,
            }
            browser.close()
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
        for name in (shop_db, history_db):
            db.drop_database(admin, name)


def screenshot(demo, page, name: str) -> None:
    path = demo["tmp"] / name
    page.screenshot(path=str(path))
    if os.environ.get("LIFECYCLE_UPDATE_SCREENSHOTS") == "1":
        shutil.copy(path, PROJECT_DIR / "docs" / "img" / name)


def test_the_asset_graph_shows_the_retention_assets_and_their_passed_check(demo):
    page = demo["page"]
    page.goto(f"{demo['base']}/locations/definitions/asset-groups/retention")
    for asset in RETENTION_ASSETS:
        page.get_by_text(asset, exact=True).first.wait_for()
    page.get_by_text("1 / 1 Passed").first.wait_for()
    screenshot(demo, page, "asset-graph.png")


def test_the_runs_list_shows_the_nightly_run_succeeded_with_its_policy_tags(demo):
    page, run = demo["page"], demo["run"]
    page.goto(f"{demo['base']}/runs")
    page.get_by_text(run.run_id[:8]).first.wait_for()  # the demo's one run is the only row
    for text in (
        "nightly_lifecycle",
        "Success",
        "lifecycle/trigger: demo",
        f"lifecycle/policy_version: {run.policy_version}",
        f"lifecycle/policy_hash: {run.policy_hash}",
    ):
        page.get_by_text(text, exact=True).first.wait_for()


def test_the_latest_nightly_run_shows_every_check_passed(demo):
    page, run = demo["page"], demo["run"]
    assert run.succeeded and "no_overdue_personal_data" in {check.name for check in run.checks}
    page.goto(f"{demo['base']}/runs/{run.run_id}")
    page.get_by_text("Run of", exact=False).first.wait_for()
    page.get_by_text("Success", exact=True).first.wait_for()
    page.get_by_placeholder("Filter…").fill("type:ASSET_CHECK_EVALUATION")
    for check in run.checks:
        page.get_by_text(
            f"Check {check.name} succeeded for materialization of {check.asset}"
        ).wait_for()
    assert page.get_by_text("failed for materialization").count() == 0
    page.get_by_text(f"Check {run.checks[0].name} succeeded").scroll_into_view_if_needed()
    screenshot(demo, page, "nightly-run.png")


def test_the_asset_checks_tab_shows_the_backlog_check_passed_with_zero_overdue(demo):
    page = demo["page"]
    page.goto(f"{demo['base']}/assets/purged_orders?view=checks")
    check = page.get_by_text("no_overdue_personal_data").first
    check.wait_for()
    check.click()  # purged_orders has several checks: open this one's latest evaluation
    page.get_by_text("Passed", exact=True).first.wait_for()
    page.get_by_text("overdue_orders").first.wait_for()


def test_the_overview_timeline_shows_the_demo_run_started_from_the_cli(demo):
    """The front page a newcomer lands on: `lifecycle demo` ran from the terminal, and its run
    sits on the timeline under the `definitions` code location like a run launched in the UI."""
    page = demo["page"]
    page.goto(f"{demo['base']}/overview/activity/timeline")
    page.get_by_text("definitions", exact=True).first.wait_for()
    # The job's row of the location holds the run's bar (a run that just ended may sit under the
    # timeline's "now" line, so the bar is looked at, not clicked).
    page.get_by_text("nightly_lifecycle").first.wait_for()
    page.locator("[class*='RunTimeline_runChunk_'] .chunk-popover-target").first.wait_for()
    screenshot(demo, page, "overview-timeline.png")


def test_asset_metadata_shows_the_human_figures(demo):
    """What the terminal summary promises is in the UI too: carriers without a file say why, the
    zone's relations carry a row estimate (or say they were not analysed), id lists are one line."""
    page = demo["page"]
    page.goto(f"{demo['base']}/assets/carrier_files")
    page.get_by_text("carriers_without_file", exact=True).first.wait_for()
    page.get_by_text(
        "reads its rows as database role lifecycle_carrier_zto_express"
    ).first.wait_for()

    page.goto(f"{demo['base']}/assets/analytics_zone")
    page.get_by_text("rows (estimate)").first.wait_for()
    relations = page.locator("tr", has_text="analytics.sales_volume_daily").first
    estimate = relations.locator("td").last.inner_text().strip()
    assert estimate == "not analysed yet" or estimate.replace(",", "").isdigit(), estimate
    names = page.locator("tr", has_text="relation_names").first.locator("td").last.inner_text()
    assert "sales_volume_daily" in names and "[" not in names, names
    page.get_by_text("rows (estimate)").first.scroll_into_view_if_needed()
    screenshot(demo, page, "analytics-zone.png")

    page.goto(f"{demo['base']}/assets/due_orders")
    cell = page.locator("tr", has_text="stale_sample_order_ids").first
    cell.wait_for()
    ids = cell.locator("td").last.inner_text().strip()
    assert "\n" not in ids and "[" not in ids, ids  # one line of ids, not a JSON list
