"""The `lifecycle` command as a user runs it: a subprocess with the environment pointing at a test database."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from tests.shop import add_delivered, is_purged, leaked

LIFECYCLE = str(Path(sys.executable).with_name("lifecycle"))


def lifecycle(*args: str, url, tmp_path, **env) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        "LIFECYCLE_DATABASE_URL": url.render_as_string(hide_password=False),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        **env,
    }
    return subprocess.run(
        [LIFECYCLE, *args], env=environment, capture_output=True, text=True, timeout=300
    )


def test_policy_check_reports_the_field_and_fix_without_a_traceback(database_url, tmp_path):
    bad = tmp_path / "policy.yaml"
    bad.write_text('version: "1"\nraw:\n  orders:\n    personal_columns: [reciever_name]\n')
    result = lifecycle("policy", "check", "--file", str(bad), url=database_url, tmp_path=tmp_path)
    assert result.returncode == 1
    assert (
        "column 'reciever_name' not in shop.orders (did you mean 'receiver_name'?)" in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_nightly_runs_the_job_through_dagster_and_records_it(engine, database_url, tmp_path):
    with engine.begin() as conn:
        add_delivered(conn, 1, datetime.now(UTC) - timedelta(days=100))
    result = lifecycle("nightly", url=database_url, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "purged_orders: {'purged': 1" in result.stdout and "succeeded" in result.stdout
    with engine.connect() as conn:
        assert is_purged(conn, 1)
        run_id = conn.execute(sa.text("SELECT run_id FROM lifecycle.purge_runs")).scalar()
    assert run_id in result.stdout
    assert not leaked(result.stdout + result.stderr)


def test_nightly_exits_non_zero_when_the_run_fails(engine, database_url, tmp_path):
    bad = tmp_path / "policy.yaml"
    bad.write_text('version: "1"\nraw:\n  orders:\n    personal_columns: [no_such_column]\n')
    result = lifecycle("nightly", url=database_url, tmp_path=tmp_path, LIFECYCLE_POLICY=str(bad))
    assert result.returncode == 1
    assert "FAILED" in result.stdout


def test_help_and_policy_check_print_no_warning(database_url, tmp_path):
    help_result = lifecycle("--help", url=database_url, tmp_path=tmp_path)
    check_result = lifecycle("policy", "check", url=database_url, tmp_path=tmp_path)
    assert help_result.returncode == 0 and check_result.returncode == 0, check_result.stderr
    assert "Usage" in help_result.stdout and "valid" in check_result.stdout
    for result in (help_result, check_result):
        assert "warning" not in result.stderr.lower(), result.stderr


def test_nightly_prints_only_the_summary_and_keeps_its_files_private(
    engine, database_url, tmp_path
):
    # An order delivered in the future is an anomaly: the step logs a warning to the run history.
    with engine.begin() as conn:
        add_delivered(conn, 1, datetime.now(UTC) + timedelta(days=3))
    result = lifecycle("nightly", url=database_url, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "'anomalies': 1" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr, result.stderr
    home = tmp_path / "dagster"
    written = [home, *home.rglob("*")]
    assert any(p.suffix == ".out" for p in written), "the run wrote no compute log"
    readable_by_others = [str(p) for p in written if p.stat().st_mode & 0o077]
    assert readable_by_others == []
