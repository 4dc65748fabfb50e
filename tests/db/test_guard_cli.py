"""`lifecycle guard` as a user runs it: a subprocess on a test database and a test run history."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from tests.shop import PERSONAL, add_delivered

LIFECYCLE = str(Path(sys.executable).with_name("lifecycle"))


def guard(settings, tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "LIFECYCLE_DATABASE_URL": settings.database_url,
        "LIFECYCLE_HOME": str(tmp_path / "home"),
        "DAGSTER_HOME": str(settings.dagster_home),
        "LIFECYCLE_DAGSTER_STORAGE_URL": settings.dagster_storage_url,
    }
    env.pop("LIFECYCLE_GUARD_SECRET", None)
    return subprocess.run(
        [LIFECYCLE, "guard", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_guard_passes_a_clean_zone_and_keeps_its_key_outside_the_database(
    engine, dagster_settings, tmp_path
):
    with engine.begin() as conn:
        add_delivered(conn, 1, datetime.now(UTC) - timedelta(days=2))
    result = guard(dagster_settings, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert "no leaks: 8 checks passed" in result.stdout
    assert "no_raw_values_in_run_history" in result.stdout and "runs=0" in result.stdout
    assert (tmp_path / "home" / "guard.key").stat().st_mode & 0o777 == 0o600


def test_guard_prints_the_findings_without_the_values_and_exits_non_zero(
    engine, dagster_settings, tmp_path
):
    with engine.begin() as conn:
        add_delivered(conn, 1, datetime.now(UTC) - timedelta(days=2))
        conn.execute(
            sa.text(
                "CREATE TABLE analytics.adhoc_cli AS SELECT CAST(:e AS text) AS contact, "
                "CAST(:n AS text) AS remark"
            ),
            {"e": PERSONAL["receiver_email"], "n": f"ask {PERSONAL['receiver_name']} to call back"},
        )
    try:
        result = guard(dagster_settings, tmp_path, "--no-run-history")
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE analytics.adhoc_cli"))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(
        line.split()[:4] == ["analytics.adhoc_cli", "contact", "email", "1"] for line in lines
    )
    assert any(
        line.split()[:4] == ["analytics.adhoc_cli", "remark", "raw_value_in_text", "1"]
        for line in lines
    )
    assert "FAILED" in result.stdout and "finding(s) in 2 check(s)" in result.stdout
    for value in (PERSONAL["receiver_email"], PERSONAL["receiver_name"], "wang fang"):
        assert value.lower() not in (result.stdout + result.stderr).lower()
