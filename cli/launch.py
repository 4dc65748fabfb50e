"""Running a job from the command line, recorded in the run history like any other run."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import dagster as dg

from cli import summary
from lifecycle.settings import Settings
from orchestration import queue, tags
from orchestration.instance import keep_run_files_private, open_instance


@dataclass(frozen=True)
class RunOutcome:
    """How a run from the command line ended, and the events its summary is printed from."""

    run_id: str
    success: bool
    events: list[dg.DagsterEvent]
    queued: bool


def run_job(
    settings: Settings, job: str, trigger: str, progress: Callable[[str], None] = lambda s: None
) -> RunOutcome:
    """Runs `job` through the instance's run queue when a daemon serves it, else in this process.

    Through the queue the run carries its code location (the UI's Overview shows it) and obeys
    the run and pool limits with every other run. Without a daemon nothing would ever dequeue it,
    so it runs here; the pool still holds its rewriting step while another run's holds the slot.
    The definitions are imported only here: the command's other verbs need no Dagster job.
    """
    keep_run_files_private()
    run_tags = tags.trigger_tags(trigger)
    with open_instance(settings) as instance:
        if queue.daemon_running(instance):
            progress("a dagster-daemon is running: submitting to the instance's run queue")
            run_id = queue.submit(settings.dagster_home, job, run_tags)
            run = queue.wait(
                instance, run_id, lambda status: progress(f"run {run_id} {status} (run queue)")
            )
            return RunOutcome(
                run_id=run_id,
                success=run.status == dg.DagsterRunStatus.SUCCESS,
                events=queue.run_events(instance, run_id),
                queued=True,
            )
        from definitions import build_definitions

        result = (
            build_definitions(settings)
            .resolve_job_def(job)
            .execute_in_process(
                instance=instance,
                tags=run_tags,
                raise_on_error=False,
                # The run history keeps every event (warnings included, shown in the UI); the
                # terminal shows only the human summary, so Dagster's console logger stays quiet.
                run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
            )
        )
        return RunOutcome(
            run_id=result.run_id, success=result.success, events=result.all_events, queued=False
        )


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
