"""Running a job from the command line, recorded in the run history like any other run."""

from __future__ import annotations

import sys
from collections.abc import Iterator

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
from orchestration import tags
from orchestration.instance import open_instance

# How workspace.yaml names the code location and Dagster its one repository: a run recorded under
# these names belongs to the location the UI serves, so it shows on the Overview timeline.
LOCATION_NAME = "definitions"
REPOSITORY_NAME = "__repository__"
DEFINITIONS_MODULE = "definitions"


def _remote_origin(job: str) -> RemoteJobOrigin:
    """The origin `dagster dev -w workspace.yaml` gives the job: a runs tagged without one has no
    code location, and the UI's Overview and timeline leave it out (issue: CLI runs missing)."""
    target = LoadableTargetOrigin(
        executable_path=sys.executable,
        module_name=DEFINITIONS_MODULE,
        working_directory=str(PROJECT_DIR) if (PROJECT_DIR / "workspace.yaml").exists() else None,
    )
    location = ManagedGrpcPythonEnvCodeLocationOrigin(target, LOCATION_NAME)
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, REPOSITORY_NAME), job)


def run_job(settings: Settings, job: str, trigger: str) -> dg.JobExecutionResult:
    """Runs `job` of the project's definitions in this process against the settings' instance.

    The run is created the way a launch from the UI creates it (with the code location's origin
    and the job's Python origin), then executed here: the terminal gets the result at once, and
    the UI lists the run under the `definitions` location like any other. The definitions are
    imported here, not at the top: the command's other verbs need no Dagster job.
    """
    from definitions import defs

    recon_job = ReconstructableRepository.for_module(
        DEFINITIONS_MODULE, "defs"
    ).get_reconstructable_job(job)
    job_def = defs.resolve_job_def(job)
    # The run history keeps every event; the terminal shows the summary instead.
    run_config = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    with open_instance(settings) as instance:
        run = instance.create_run_for_job(
            job_def,
            run_config=run_config,
            tags={**job_def.tags, **tags.trigger_tags(trigger)},
            remote_job_origin=_remote_origin(job),
            job_code_origin=recon_job.get_python_origin(),
        )
        return execute_run(recon_job, run, instance, raise_on_error=False)


def summary_lines(result: dg.JobExecutionResult) -> Iterator[str]:
    """Each materialized asset's figures with their meaning (cli/summary.py), then the checks."""
    checks: list[tuple[str, bool]] = []
    for event in result.all_events:
        if event.is_step_materialization:
            mat = event.step_materialization_data.materialization
            if mat.partition:  # one per rebuilt sales day; the step's own summary follows
                continue
            values = {k: v.value for k, v in mat.metadata.items()}
            yield from summary.asset_lines(mat.asset_key.to_user_string(), values)
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            check = event.event_specific_data
            checks.append((check.check_name, check.passed))
    if checks:
        yield summary.checks_line(checks)
