"""The `lifecycle` command as a user runs it: a subprocess with the environment pointing at a test database."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from lifecycle import db
from lifecycle.settings import Settings
from orchestration.instance import open_instance
from tests.conftest import cli_history_database
from tests.shop import add_delivered, is_purged, leaked

LIFECYCLE = str(Path(sys.executable).with_name("lifecycle"))


def cli_history(url: sa.URL) -> dict[str, str]:
    """LIFECYCLE_DAGSTER_STORAGE_URL for the session database `url`, created on first use; none
    when its server cannot be reached (the command then fails on the shop, as the test expects)."""
    history = url.set(database=cli_history_database(url.database))
    try:
        db.ensure_database(url, history.database)
    except sa.exc.OperationalError:
        return {}
    return {"LIFECYCLE_DAGSTER_STORAGE_URL": history.render_as_string(hide_password=False)}


def lifecycle(*args: str, url, tmp_path, **env) -> subprocess.CompletedProcess:
    """The command on the test database, its run history in the session's own history database
    (the default, a `dagster` database on the shop's server, would be left on the shared server)."""
    environment = {
        **os.environ,
        "LIFECYCLE_DATABASE_URL": url.render_as_string(hide_password=False),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        **cli_history(url),
        **env,
    }
    return subprocess.run(
        [LIFECYCLE, *args], env=environment, capture_output=True, text=True, timeout=300
    )


def assert_human_summary(stdout: str) -> None:
    """What every command prints for a person: no Python repr of a dict, list or string."""
    assert not re.search(r"\{'|': \[|\['|\{\}", stdout), stdout


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
    assert "succeeded" in result.stdout
    assert_human_summary(result.stdout)
    lines = result.stdout.splitlines()
    purged = lines.index("  purged_orders")
    assert lines[purged + 1].split()[:2] == ["1", "orders"]
    assert lines[purged + 1].endswith("[purged]")
    assert re.search(r"^  checks: all \d+ passed$", result.stdout, re.MULTILINE)
    # The analytics zone names its relations; the carrier without a file says why.
    assert re.search(r"relations in schema analytics .*\[relation_count\]", result.stdout)
    assert "sales_volume_daily" in result.stdout
    assert "zto_express reads its rows as database role" in result.stdout
    with engine.connect() as conn:
        assert is_purged(conn, 1)
        run_id = conn.execute(sa.text("SELECT run_id FROM lifecycle.purge_runs")).scalar()
    assert run_id in result.stdout
    assert not leaked(result.stdout + result.stderr)
    # Recorded under the workspace's code location, as a UI launch is: the Overview lists it.
    settings = Settings.from_env(
        {
            "LIFECYCLE_DATABASE_URL": database_url.render_as_string(hide_password=False),
            "DAGSTER_HOME": str(tmp_path / "dagster"),
            **cli_history(database_url),
        }
    )
    with open_instance(settings) as instance:
        run = instance.get_run_by_id(run_id)
    assert run.remote_job_origin.location_name == "definitions"
    assert run.remote_job_origin.repository_origin.repository_name == "__repository__"
    assert run.tags["dagster/code_location"] == "definitions"
    assert run.tags["lifecycle/trigger"] == "cli" and len(run.tags["lifecycle/policy_hash"]) == 12


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
    assert re.search(r"^ +1  orders that cannot be judged.*\[anomalies\]$", result.stdout, re.M)
    assert "WARNING" not in result.stdout + result.stderr, result.stderr
    home = tmp_path / "dagster"
    written = [home, *home.rglob("*")]
    assert any(p.suffix == ".out" for p in written), "the run wrote no compute log"
    readable_by_others = [str(p) for p in written if p.stat().st_mode & 0o077]
    assert readable_by_others == []


def test_db_url_is_accepted_by_psql_and_db_shell_opens_psql(database_url, tmp_path):
    printed = lifecycle("db", "url", url=database_url, tmp_path=tmp_path)
    assert printed.returncode == 0, printed.stderr[-2000:]
    shown = printed.stdout.strip()
    assert shown.startswith("postgresql://") and "+psycopg" not in shown
    assert "***" not in shown
    psql_line = lifecycle("db", "url", "--psql", url=database_url, tmp_path=tmp_path)
    command = shlex.split(psql_line.stdout.strip())
    assert Path(command[0]).name == "psql" and command[1] == shown
    env = {**os.environ, "PGPASSWORD": database_url.password or ""}
    direct = subprocess.run(
        [*command, "-tAc", "SELECT current_database()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert direct.returncode == 0, direct.stderr
    assert direct.stdout.strip() == database_url.database
    shell = subprocess.run(
        [LIFECYCLE, "db", "shell"],
        input="SELECT 'shell:' || current_database();\n",
        env={
            **os.environ,
            "LIFECYCLE_DATABASE_URL": database_url.render_as_string(hide_password=False),
            "DAGSTER_HOME": str(tmp_path / "dagster"),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shell.returncode == 0, shell.stderr[-2000:]
    assert f"shell:{database_url.database}" in shell.stdout


def _alive(pid: int) -> bool:
    """Whether `pid` still runs (an exited server may linger as a zombie until reaped)."""
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def _postmaster_pid(home: Path) -> int | None:
    pid_file = home / "pgdata" / "postmaster.pid"
    return int(pid_file.read_text().split()[0]) if pid_file.exists() else None


def test_db_stop_stops_the_embedded_server_it_started(tmp_path):
    """A home of its own, so the embedded server the other tests share keeps running."""
    home = tmp_path / "home"
    env = {**os.environ, "LIFECYCLE_HOME": str(home), "DAGSTER_HOME": str(tmp_path / "dagster")}
    env.pop("LIFECYCLE_DATABASE_URL", None)

    def run(*args):
        return subprocess.run(
            [LIFECYCLE, *args], env=env, capture_output=True, text=True, timeout=300
        )

    started = run("db", "url")
    try:
        assert started.returncode == 0, started.stderr[-2000:]
        pid = _postmaster_pid(home)
        assert pid is not None and _alive(pid)
        stopped = run("db", "stop")
        assert stopped.returncode == 0, stopped.stderr[-2000:]
        assert "embedded PostgreSQL stopped" in stopped.stdout
        assert _postmaster_pid(home) is None and not _alive(pid)
        again = run("db", "stop")
        assert "was not running" in again.stdout
    finally:
        run("db", "stop")  # never leave a server behind, whatever failed above


def test_db_stop_with_a_configured_server_stops_nothing(database_url, tmp_path):
    result = lifecycle("db", "stop", url=database_url, tmp_path=tmp_path)
    assert result.returncode == 0
    assert "nothing to stop" in result.stdout


def test_due_prints_each_count_beside_its_meaning(engine, database_url, tmp_path):
    with engine.begin() as conn:
        add_delivered(conn, 1, datetime.now(UTC) - timedelta(days=100))
    result = lifecycle("due", url=database_url, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("orders against policy ")
    assert re.search(
        r"^ +1  orders past their after-sales window.*\[eligible\]$", result.stdout, re.M
    )
    assert_human_summary(result.stdout)
    assert not leaked(result.stdout + result.stderr)
