"""Running a job from the command line, recorded in the run history like any other run."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg

from cli import summary
from lifecycle.settings import Settings
from orchestration import tags
from orchestration.instance import open_instance


def run_job(settings: Settings, job: str, trigger: str) -> dg.ExecuteInProcessResult:
    """Runs `job` of the project's definitions in this process against the settings' instance.

    The definitions are imported here, not at the top: the command's other verbs need no Dagster
    job and should not pay for loading every asset.
    """
    from definitions import build_definitions

    definitions = build_definitions(settings)
    with open_instance(settings) as instance:
        return definitions.resolve_job_def(job).execute_in_process(
            instance=instance,
            tags=tags.trigger_tags(trigger),
            raise_on_error=False,
            # The run history keeps every event; the terminal shows the summary instead.
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )


def summary_lines(result: dg.ExecuteInProcessResult) -> Iterator[str]:
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
