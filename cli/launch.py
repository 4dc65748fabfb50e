"""Running a job from the command line, recorded in the run history like any other run."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg

from lifecycle.settings import Settings
from orchestration import tags
from orchestration.instance import open_instance

# What the terminal shows of each step's metadata; the run history keeps everything.
SHOWN = {
    "eligible",
    "purged",
    "kept_by_open_case",
    "stale",
    "anomalies",
    "oldest_overdue_days",
    "ran",
    "seconds",
    "policy_version",
    "bytes_before",
    "bytes_after",
    "rows_by_carrier",
    "removed_by_reason",
    "mode",
    "days_rebuilt",
    "rows_written",
    "units_folded",
    "units_withheld",
    "table_rows",
    "rows",
    "handled",
    "by_status",
    "rejected_by_reason",
    "failed_request_ids",
    "orders_cleared",
    "orders_pending",
    "exports_written",
    "open",
    "overdue",
    "overdue_request_ids",
    "requests_done",
    "deleted",
}


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
    """One line per materialized asset (its main figures) and per evaluated check."""
    for event in result.all_events:
        if event.is_step_materialization:
            mat = event.step_materialization_data.materialization
            if mat.partition:  # one per rebuilt sales day; the step's own summary follows
                continue
            shown = {k: v.value for k, v in mat.metadata.items() if k in SHOWN}
            yield f"{mat.asset_key.to_user_string()}: {shown}"
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            check = event.event_specific_data
            yield f"check {check.check_name}: {'passed' if check.passed else 'FAILED'}"
