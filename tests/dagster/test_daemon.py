"""The run queue with a real `dagster-daemon`: `lifecycle nightly` hands its run to the daemon
when one is running, and the run carries the code location the UI's Overview lists.

Slow by nature (a daemon and its code server start, ~20 s): marked `daemon`; deselect with
`-m "not daemon"` while iterating on something else.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from orchestration import queue
from orchestration.instance import open_instance
from tests.shop import add_delivered, is_purged

BIN = Path(sys.executable).parent
DAEMON_START_SECONDS = 120


@pytest.fixture
def environment(dagster_settings) -> dict[str, str]:
    """The variables a daemon and the CLI of one deployment share: one shop, one run history."""
    return {
        **os.environ,
        "LIFECYCLE_DATABASE_URL": dagster_settings.database_url,
        "LIFECYCLE_DAGSTER_STORAGE_URL": dagster_settings.dagster_storage_url,
        "DAGSTER_HOME": str(dagster_settings.dagster_home),
    }


@pytest.fixture
def daemon(dagster_settings, environment):
    """A `dagster-daemon run` on the test instance, up once its queue daemon has beaten."""
    with open_instance(dagster_settings) as instance:  # writes dagster.yaml first
        assert not queue.daemon_running(instance)
        process = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-m", "definitions"],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its code server and run workers go with it
        )
        try:
            deadline = time.monotonic() + DAEMON_START_SECONDS
            while not queue.daemon_running(instance):
                assert process.poll() is None, "dagster-daemon exited"
                assert time.monotonic() < deadline, "dagster-daemon never beat"
                time.sleep(0.5)
            yield process
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)


def test_no_daemon_means_no_fresh_heartbeat(dagster_instance):
    assert not queue.daemon_running(dagster_instance)


@pytest.mark.daemon
def test_nightly_goes_through_the_daemons_queue_with_its_code_location(
    engine, dagster_settings, environment, daemon
):
    with engine.begin() as conn:
        add_delivered(conn, 1, datetime.now(UTC) - timedelta(days=100))
    result = subprocess.run(
        [str(BIN / "lifecycle"), "nightly"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "submitting to the instance's run queue" in result.stdout
    assert "succeeded" in result.stdout
    assert "purged_orders: {'purged': 1" in result.stdout
    with engine.connect() as conn:
        assert is_purged(conn, 1)
    with open_instance(dagster_settings) as instance:
        [run] = instance.get_runs(filters=dg.RunsFilter(job_name="nightly_lifecycle"))
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.remote_job_origin.location_name == "definitions"
        assert run.tags["lifecycle/trigger"] == "cli"
        assert run.run_id in result.stdout
