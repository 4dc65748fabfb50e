"""The run queue and its daemon: `lifecycle nightly` hands its run to a real `dagster-daemon`
when one is running, and the run carries the code location the UI's Overview lists; when the
heartbeat is left by a daemon that has stopped, the queued run is withdrawn and runs in-process.

Slow by nature (a daemon and its code server start, ~20 s): marked `daemon`; deselect with
`-m "not daemon"` while iterating on something else. The stopped-daemon tests wait out the
dequeue bound (~20 s) but start no daemon.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster._daemon.types import DaemonHeartbeat

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
            _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """Stops the daemon as Ctrl-C on `make ui` does, with its code server and run workers."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:  # already stopped by the test
        return
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
    assert "withdrawn" not in result.stdout
    assert "succeeded" in result.stdout
    assert re.search(
        r"^ +1  orders whose personal fields were cleared.*\[purged\]$", result.stdout, re.M
    )
    with engine.connect() as conn:
        assert is_purged(conn, 1)
    with open_instance(dagster_settings) as instance:
        [run] = instance.get_runs(filters=dg.RunsFilter(job_name="nightly_lifecycle"))
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.remote_job_origin.location_name == "definitions"
        assert run.tags["lifecycle/trigger"] == "cli"
        assert run.run_id in result.stdout


def _beat(instance: dg.DagsterInstance, seconds_ago: float) -> None:
    """The queue daemon's heartbeat as a daemon leaves it in the run storage: its last beat stays
    there after the daemon stops."""
    instance.add_daemon_heartbeat(
        DaemonHeartbeat(time.time() - seconds_ago, queue.QUEUE_DAEMON, str(uuid.uuid4()), [])
    )


def _queued(instance: dg.DagsterInstance) -> dg.DagsterRun:
    """A nightly run in the queue, submitted as the CLI submits it; no daemon will dequeue it."""
    run_id = queue.submit(instance, "nightly_lifecycle", {"lifecycle/trigger": "cli"})
    run = instance.get_run_by_id(run_id)
    assert run.status == dg.DagsterRunStatus.QUEUED
    return run


@dg.op
def _noop() -> None:
    pass


@dg.job
def _tiny() -> None:
    _noop()


def test_a_heartbeat_is_fresh_for_one_beat_interval_and_a_margin(dagster_instance):
    _beat(dagster_instance, 30)
    assert queue.daemon_running(dagster_instance)
    _beat(dagster_instance, queue.DAEMON_FRESH_SECONDS + 1)
    assert not queue.daemon_running(dagster_instance)


def test_a_queued_run_is_withdrawn_only_while_nobody_has_taken_it(dagster_instance):
    queued = _queued(dagster_instance)
    assert queue.withdraw(dagster_instance, queued.run_id)
    assert dagster_instance.get_run_by_id(queued.run_id) is None

    taken = dagster_instance.create_run_for_job(_tiny, status=dg.DagsterRunStatus.STARTING)
    assert not queue.withdraw(dagster_instance, taken.run_id)
    assert dagster_instance.get_run_by_id(taken.run_id).status == dg.DagsterRunStatus.STARTING


def test_a_run_waits_behind_runs_in_progress_while_the_daemon_beats(dagster_instance):
    dagster_instance.create_run_for_job(_tiny, status=dg.DagsterRunStatus.STARTED)
    queued = _queued(dagster_instance)
    _beat(dagster_instance, 0)
    # The daemon stops beating 4 s in: past the bound, the run waited as long as it beat.
    stop = threading.Timer(4, _beat, (dagster_instance, queue.DAEMON_FRESH_SECONDS + 1))
    stop.start()
    started = time.monotonic()
    assert not queue.wait_for_dequeue(dagster_instance, queued.run_id, bound_seconds=1)
    assert time.monotonic() - started >= 4
    stop.join()


def test_nightly_runs_in_process_when_the_heartbeat_is_from_a_stopped_daemon(
    engine, dagster_settings, environment
):
    """`make ui` stopped seconds ago: its heartbeat looks alive, nothing will dequeue the run."""
    with open_instance(dagster_settings) as instance:
        _beat(instance, 10)
    _nightly_withdraws_its_queued_run_and_runs_in_process(engine, dagster_settings, environment)


@pytest.mark.daemon
def test_nightly_right_after_the_daemon_stops_runs_in_process(
    engine, dagster_settings, environment, daemon
):
    _stop(daemon)
    with open_instance(dagster_settings) as instance:
        assert queue.daemon_running(instance)  # its last beat is still fresh
    _nightly_withdraws_its_queued_run_and_runs_in_process(engine, dagster_settings, environment)


def _nightly_withdraws_its_queued_run_and_runs_in_process(
    engine, dagster_settings, environment
) -> None:
    with engine.begin() as conn:
        add_delivered(conn, 1, datetime.now(UTC) - timedelta(days=100))
    process = subprocess.Popen(
        [str(BIN / "lifecycle"), "nightly"],
        env={**environment, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines, seen_at = [], {}
    for line in process.stdout:
        lines.append(line)
        for mark in ("queued (run queue)", "withdrawn"):
            if mark in line:
                seen_at.setdefault(mark, time.monotonic())
    assert process.wait(timeout=300) == 0, "".join(lines)[-3000:]
    stdout = "".join(lines)
    [queued_id] = re.findall(r"run (\S+) queued \(run queue\)", stdout)
    waited = seen_at["withdrawn"] - seen_at["queued (run queue)"]
    assert waited <= queue.DEQUEUE_BOUND_SECONDS + queue.CANCEL_SETTLE_SECONDS + 10, waited
    assert re.search(r"^ +1  orders whose personal fields were cleared.*\[purged\]$", stdout, re.M)
    with engine.connect() as conn:
        assert is_purged(conn, 1)
    with open_instance(dagster_settings) as instance:
        assert instance.get_run_by_id(queued_id) is None
        [run] = instance.get_runs(filters=dg.RunsFilter(job_name="nightly_lifecycle"))
        assert run.run_id != queued_id
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.remote_job_origin.location_name == "definitions"
        assert run.tags["lifecycle/trigger"] == "cli"
