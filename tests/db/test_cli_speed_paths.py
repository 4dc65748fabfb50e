"""What keeps `lifecycle guard` and `lifecycle report` quick on the demo, as properties rather than
timings: the guard's checks and the report's sentences come from the Dagster-free core, so neither
imports the definitions (every asset, Great Expectations' wrapper), Dagster (and Alembic with it)
only for the run history they read; and the guard's run-history scan reads only what was written since its
last clean scan."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lifecycle.assertions import ASSERTS
from tests.nightly import run_nightly
from tests.shop import add_delivered

LIFECYCLE = str(Path(sys.executable).with_name("lifecycle"))
NEVER = {"definitions", "assets", "sensors", "great_expectations"}


def lifecycle(settings, tmp_path, *args: str, python_options=()) -> str:
    """Runs a `lifecycle` command on the test shop and history; its output."""
    env = {
        **os.environ,
        "LIFECYCLE_DATABASE_URL": settings.database_url,
        "LIFECYCLE_HOME": str(tmp_path / "home"),
        "DAGSTER_HOME": str(settings.dagster_home),
        "LIFECYCLE_DAGSTER_STORAGE_URL": settings.dagster_storage_url,
    }
    result = subprocess.run(
        [sys.executable, *python_options, LIFECYCLE, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    return result.stdout + result.stderr


def imported(settings, tmp_path, *args: str) -> set[str]:
    """The top-level packages a `lifecycle` command imported (python -X importtime)."""
    output = lifecycle(settings, tmp_path, *args, python_options=("-X", "importtime"))
    lines = [line for line in output.splitlines() if line.startswith("import time:")]
    return {line.rsplit("|", 1)[1].strip().split(".")[0] for line in lines[1:]}


def test_guard_without_the_run_history_imports_no_dagster(engine, dagster_settings, tmp_path):
    with engine.begin() as conn:
        add_delivered(conn, 1, datetime.now(UTC) - timedelta(days=2))
    loaded = imported(dagster_settings, tmp_path, "guard", "--no-run-history")
    assert "lifecycle" in loaded and "sqlalchemy" in loaded  # the probe saw the imports
    assert loaded.isdisjoint(NEVER | {"dagster", "dagster_postgres", "alembic"})


def test_guard_and_report_import_dagster_only_for_the_run_history(
    engine, dagster_settings, dagster_instance, tmp_path
):
    with engine.begin() as conn:
        add_delivered(conn, 1, datetime.now(UTC) - timedelta(days=40))
    run_nightly(dagster_settings, dagster_instance)
    guard = imported(dagster_settings, tmp_path, "guard")
    report = imported(dagster_settings, tmp_path, "report", "--out", str(tmp_path / "r.md"))
    assert "dagster" in guard and "dagster" in report  # the history is read through the instance
    assert guard.isdisjoint(NEVER) and report.isdisjoint(NEVER)
    written = (tmp_path / "r.md").read_text()
    assert f"| no_overdue_personal_data | {ASSERTS['no_overdue_personal_data']} |" in written


def test_guard_scans_the_run_history_written_since_its_last_clean_scan(
    engine, dagster_settings, dagster_instance, tmp_path
):
    with engine.begin() as conn:
        add_delivered(conn, 1, datetime.now(UTC) - timedelta(days=40))
    run = run_nightly(dagster_settings, dagster_instance)
    first = lifecycle(dagster_settings, tmp_path, "guard")
    again = lifecycle(dagster_settings, tmp_path, "guard")
    events = re.search(r"no_raw_values_in_run_history .* runs=1 events=(\d+)", first)
    assert events and int(events[1]) > 10  # the night's events, read once
    assert re.search(r"no_raw_values_in_run_history .* events=0 texts=0", again)
    whole = lifecycle(dagster_settings, tmp_path, "guard", "--run-id", run.run_id)
    assert f"events={events[1]}" in whole  # --run-id reads that run whole, positions or not
