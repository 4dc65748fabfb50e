"""The instance's run queue: whether a daemon serves it, submitting a run to it, waiting for it.

A run submitted here carries the code location `definitions` (the one workspace.yaml and the
daemon load), so it shows on the UI's Overview and obeys the instance's run and pool limits like a
scheduled run. It is created in this process the way `dagster job launch` creates it (see
`submit`).
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from lifecycle.settings import PROJECT_DIR

# A daemon writes its heartbeat between its loop's iterations, every 30 s
# (dagster/_daemon/controller.py, DEFAULT_HEARTBEAT_INTERVAL_SECONDS): a live one's newest beat is
# at most that old, plus one slow iteration; 15 s of margin. A stopped one's beat stays stored,
# so this only narrows the window in which a stopped daemon still looks alive (`wait_for_dequeue`).
DAEMON_FRESH_SECONDS = 45
# The queue daemon looks at the queue every 5 s (QueuedRunCoordinator's dequeue_interval_seconds)
# and marks a run STARTING before it launches it; a run still QUEUED after four looks, with no
# other run in progress to wait behind, has no daemon serving the queue.
DEQUEUE_BOUND_SECONDS = 20.0
# The daemon reads a run's status and marks it STARTING milliseconds later (_dequeue_run); a cancel
# landing in between is overwritten. Reading the status after this pause says which one won.
CANCEL_SETTLE_SECONDS = 2.0
QUEUE_DAEMON = "QUEUED_RUN_COORDINATOR"
CODE_LOCATION_MODULE = "definitions"
POLL_SECONDS = 1.0
# What the queue daemon counts against the run limits (dagster's ACTIVE_RUN_STATUSES).
_HOLDING_THE_QUEUE = [
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


class QueueError(RuntimeError):
    """A run could not be submitted to the queue; the message says why and what to do."""


def daemon_running(instance: dg.DagsterInstance, now: datetime | None = None) -> bool:
    """True when a `dagster-daemon` dequeues runs of this instance (its heartbeat is fresh)."""
    beat = instance.get_daemon_heartbeats().get(QUEUE_DAEMON)
    if beat is None:
        return False
    now = now or datetime.now(UTC)
    return now.timestamp() - beat.timestamp < DAEMON_FRESH_SECONDS


def submit(instance: dg.DagsterInstance, job: str, run_tags: dict[str, str]) -> str:
    """Puts one run of `job` in `instance`'s queue; returns its run id.

    It does what `dagster job launch -m definitions` does (dagster/_cli/job.py: the code location,
    its remote job, the execution plan, `create_run`, `submit_run`), in this process: the
    definitions are loaded here as an in-process code location named like the daemon's, instead
    of in a code server that `dagster job launch` would start (a fresh process loading the code
    once more: ~35 s on the bench machine). The run records the daemon's location name and the
    module's Python origin, so the daemon's code server executes it as it would a UI launch.
    These are Dagster's internal modules (pinned in constraints.txt); test_daemon.py runs it.
    """
    from dagster._cli.job import _create_run
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.remote_representation.code_location import InProcessCodeLocation
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    cwd = PROJECT_DIR if (PROJECT_DIR / "workspace.yaml").exists() else Path.cwd()
    origin = InProcessCodeLocationOrigin(
        loadable_target_origin=LoadableTargetOrigin(
            executable_path=sys.executable,
            module_name=CODE_LOCATION_MODULE,
            working_directory=str(cwd),
        ),
        location_name=CODE_LOCATION_MODULE,
    )
    try:
        with InProcessCodeLocation(origin, instance=instance) as location:
            repository = next(iter(location.get_repositories().values()))
            remote_job = repository.get_full_job(job)
            run = _create_run(
                instance=instance,
                code_location=location,
                remote_repo=repository,
                remote_job=remote_job,
                run_config={},
                tags=run_tags,
                op_selection=None,
                run_id=str(uuid.uuid4()),
            )
            instance.submit_run(run.run_id, workspace=None)
    except Exception as exc:
        raise QueueError(
            f"could not submit {job} to the run queue ({type(exc).__name__}); "
            "stop the daemon to run it in this process"
        ) from exc
    return run.run_id


def _run(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRun:
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise QueueError(f"run {run_id} is not in the run history")
    return run


def _runs_in_progress(instance: dg.DagsterInstance) -> int:
    return instance.get_runs_count(filters=dg.RunsFilter(statuses=_HOLDING_THE_QUEUE))


def wait_for_dequeue(
    instance: dg.DagsterInstance, run_id: str, bound_seconds: float = DEQUEUE_BOUND_SECONDS
) -> bool:
    """True once a daemon has taken the run off the queue; False when none serves the queue.

    A heartbeat stays stored when its daemon stops (`make ui` ended with Ctrl-C), so a fresh one
    does not prove a daemon is there to dequeue. Past `bound_seconds` a run still QUEUED is
    served by nobody unless other runs are in progress ahead of it (the instance's run limits
    hold it) and the daemon still beats: it then waits its turn as long as the daemon beats.
    """
    started = time.monotonic()
    while True:
        if _run(instance, run_id).status != dg.DagsterRunStatus.QUEUED:
            return True
        if time.monotonic() - started >= bound_seconds and not (
            _runs_in_progress(instance) and daemon_running(instance)
        ):
            return False
        time.sleep(POLL_SECONDS)


def withdraw(instance: dg.DagsterInstance, run_id: str) -> bool:
    """Cancels a run no daemon dequeued and removes it from the run history; False when a daemon
    took it first (it then runs there and is left alone).

    Canceled as the queue's own cancel does it (QueuedRunCoordinator.cancel_run), without its
    fallback of terminating a run that has started; removed so the night has one run in the
    history, the one that does the work, not a canceled twin on the Overview and in the report.
    """
    run = _run(instance, run_id)
    if run.status != dg.DagsterRunStatus.QUEUED:
        return False
    instance.report_run_canceling(run, message="No dagster-daemon dequeued it; run in-process.")
    instance.report_run_canceled(run)
    time.sleep(CANCEL_SETTLE_SECONDS)
    if _run(instance, run_id).status != dg.DagsterRunStatus.CANCELED:
        return False
    instance.delete_run(run_id)
    return True


def wait(
    instance: dg.DagsterInstance,
    run_id: str,
    on_status: Callable[[str], None] = lambda status: None,
    timeout_seconds: float | None = None,
) -> dg.DagsterRun:
    """Waits until the run has finished, telling `on_status` each status it passes through."""
    started, seen = time.monotonic(), None
    while True:
        run = _run(instance, run_id)
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
