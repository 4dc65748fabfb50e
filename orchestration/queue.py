"""The instance's run queue: whether a daemon serves it, submitting a run to it, waiting for it.

A run submitted here carries the code location `definitions` (the one workspace.yaml and the
daemon load), so it shows on the UI's Overview and obeys the instance's run and pool limits like a
scheduled run. `dagster job launch` does the submitting: it is Dagster's own way to create a run
with a code location from outside the webserver, without any of Dagster's private modules.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from lifecycle.settings import PROJECT_DIR

# The daemon beats every 30 s; two missed beats and a margin mean it is gone.
DAEMON_FRESH_SECONDS = 90
QUEUE_DAEMON = "QUEUED_RUN_COORDINATOR"
CODE_LOCATION_MODULE = "definitions"
POLL_SECONDS = 1.0


class QueueError(RuntimeError):
    """A run could not be submitted to the queue; the message says why and what to do."""


def daemon_running(instance: dg.DagsterInstance, now: datetime | None = None) -> bool:
    """True when a `dagster-daemon` dequeues runs of this instance (its heartbeat is fresh)."""
    beat = instance.get_daemon_heartbeats().get(QUEUE_DAEMON)
    if beat is None:
        return False
    now = now or datetime.now(UTC)
    return now.timestamp() - beat.timestamp < DAEMON_FRESH_SECONDS


def submit(dagster_home: Path, job: str, run_tags: dict[str, str]) -> str:
    """Puts one run of `job` in the queue of the instance in `dagster_home`; returns its run id."""
    run_id = str(uuid.uuid4())
    command = [
        str(Path(sys.executable).with_name("dagster")),
        "job",
        "launch",
        "-m",
        CODE_LOCATION_MODULE,
        "-j",
        job,
        "--run-id",
        run_id,
        "--tags",
        json.dumps(run_tags),
    ]
    cwd = PROJECT_DIR if (PROJECT_DIR / "workspace.yaml").exists() else None
    result = subprocess.run(
        command,
        env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise QueueError(
            f"could not submit {job} to the run queue ({last}); "
            "stop the daemon to run it in this process, or see `dagster job launch`"
        )
    return run_id


def wait(
    instance: dg.DagsterInstance,
    run_id: str,
    on_status: Callable[[str], None] = lambda status: None,
    timeout_seconds: float | None = None,
) -> dg.DagsterRun:
    """Waits until the run has finished, telling `on_status` each status it passes through."""
    started, seen = time.monotonic(), None
    while True:
        run = instance.get_run_by_id(run_id)
        if run is None:
            raise QueueError(f"run {run_id} is not in the run history")
        if run.status != seen:
            seen = run.status
            on_status(run.status.value.lower())
        if run.is_finished:
            return run
        if timeout_seconds is not None and time.monotonic() - started > timeout_seconds:
            raise QueueError(
                f"run {run_id} still {run.status.value.lower()} after {timeout_seconds:.0f} s; "
                "it stays in the queue (see the UI's Runs page)"
            )
        time.sleep(POLL_SECONDS)


def run_events(instance: dg.DagsterInstance, run_id: str) -> list[dg.DagsterEvent]:
    """The Dagster events the run stored, in order (materializations, checks, step failures)."""
    return [entry.dagster_event for entry in instance.all_logs(run_id) if entry.dagster_event]
