"""Running a job from the command line, recorded in the run history like any other run."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.execution.api import execute_run
from dagster._core.remote_origin import (
    ManagedGrpcPythonEnvCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from cli import summary
from lifecycle.settings import PROJECT_DIR, Settings
from orchestration import queue, tags
from orchestration.instance import keep_run_files_private, open_instance

# How workspace.yaml names the code location and Dagster its one repository: a run recorded under
# these names belongs to the location the UI serves, so it shows on the Overview timeline.
LOCATION_NAME = "definitions"
REPOSITORY_NAME = "__repository__"
DEFINITIONS_MODULE = "definitions"


def _remote_origin(job: str) -> RemoteJobOrigin:
    """The origin `dagster dev -w workspace.yaml` gives the job: a run created without one has no
    code location, and the UI's Overview and timeline leave it out (issue: CLI runs missing)."""
    target = LoadableTargetOrigin(
        executable_path=sys.executable,
        module_name=DEFINITIONS_MODULE,
        working_directory=str(PROJECT_DIR) if (PROJECT_DIR / "workspace.yaml").exists() else None,
    )
    location = ManagedGrpcPythonEnvCodeLocationOrigin(target, LOCATION_NAME)
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, REPOSITORY_NAME), job)


@dataclass(frozen=True)
class RunOutcome:
    """How a run from the command line ended, and the events its summary is printed from."""

    run_id: str
    success: bool
    events: list[dg.DagsterEvent]


def run_job(
    settings: Settings, job: str, trigger: str, progress: Callable[[str], None] = lambda s: None
) -> RunOutcome:
    """Runs `job` through the instance's run queue when a daemon serves it, else in this process.

    Through the queue the run carries its code location (the UI's Overview shows it) and obeys
    the run and pool limits with every other run. Without a daemon nothing would ever dequeue it,
    so it runs here; the pool still holds its rewriting step while another run's holds the slot.
    A daemon stopped moments ago still looks alive by its heartbeat: a run it never dequeues is
    withdrawn from the queue (queue.wait_for_dequeue, queue.withdraw) before it runs here, so
    the night never has two runs.
    The definitions are imported only here: the command's other verbs need no Dagster job.
    """
    keep_run_files_private()
    run_tags = tags.trigger_tags(trigger)
    with open_instance(settings) as instance:
        if queue.daemon_running(instance):
            progress("a dagster-daemon is running: submitting to the instance's run queue")
            run_id = queue.submit(instance, job, run_tags)
            progress(f"run {run_id} queued (run queue)")
            if queue.wait_for_dequeue(instance, run_id) or not queue.withdraw(instance, run_id):
                return _through_the_queue(instance, run_id, progress)
            progress(
                f"run {run_id} was not dequeued within {queue.DEQUEUE_BOUND_SECONDS:.0f} s: no "
                "dagster-daemon serves the queue (a stopped one's heartbeat looked fresh); "
                "withdrawn from the queue, running it in this process"
            )
        return _in_this_process(instance, job, run_tags)


def _through_the_queue(
    instance: dg.DagsterInstance, run_id: str, progress: Callable[[str], None]
) -> RunOutcome:
    run = queue.wait(
        instance, run_id, lambda status: progress(f"run {run_id} {status} (run queue)")
    )
    return RunOutcome(
        run_id=run_id,
        success=run.status == dg.DagsterRunStatus.SUCCESS,
        events=queue.run_events(instance, run_id),
    )


def _in_this_process(
    instance: dg.DagsterInstance, job: str, run_tags: dict[str, str]
) -> RunOutcome:
    """Created the way a launch from the UI creates it (the code location's origin and the job's
    Python origin), then executed here: the UI lists it under the `definitions` location like any
    other run, and the terminal gets the result at once."""
    from definitions import defs

    recon_job = ReconstructableRepository.for_module(
        DEFINITIONS_MODULE, "defs"
    ).get_reconstructable_job(job)
    job_def = defs.resolve_job_def(job)
    run = instance.create_run_for_job(
        job_def,
        # The run history keeps every event (warnings included, shown in the UI); the terminal
        # shows only the human summary, so Dagster's console logger stays quiet.
        run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
        tags={**job_def.tags, **run_tags},
        remote_job_origin=_remote_origin(job),
        job_code_origin=recon_job.get_python_origin(),
    )
    result = execute_run(recon_job, run, instance, raise_on_error=False)
    return RunOutcome(run_id=result.run_id, success=result.success, events=result.all_events)


def _error_class(error) -> str:
    while error is not None and error.cls_name == "DagsterExecutionStepExecutionError":
        error = error.cause
    return error.cls_name if error is not None and error.cls_name else "error"


def summary_lines(events: Iterable[dg.DagsterEvent]) -> Iterator[str]:
    """Each materialized asset's figures with their meaning (cli/summary.py), each failed step by
    its error's class, then the checks in one line."""
    checks: list[tuple[str, bool]] = []
    for event in events:
        if event.is_step_materialization:
            mat = event.step_materialization_data.materialization
            if mat.partition:  # one per rebuilt sales day; the step's own summary follows
                continue
            values = {k: v.value for k, v in mat.metadata.items()}
            yield from summary.asset_lines(mat.asset_key.to_user_string(), values)
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            check = event.event_specific_data
            checks.append((check.check_name, check.passed))
        elif event.is_step_failure:
            # The error's class only: its message may quote data; the run's page has the rest.
            yield f"step {event.step_key}: FAILED ({_error_class(event.step_failure_data.error)})"
    if checks:
        yield summary.checks_line(checks)
