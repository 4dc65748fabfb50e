"""The run history under its own retention: old runs leave Dagster's storage once their figures are kept.

Every finished nightly run is first summarised into lifecycle.nightly_summaries (what the report
reads); then runs of any job created before the policy's `run_history.keep_days` are deleted
through the instance's API (`delete_run`: the run, its event records, asset-check and
materialisation rows) with their compute-log files.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import dagster as dg
from sqlalchemy.engine import Engine

from lifecycle.report import summaries
from orchestration import history, names

_FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


@dataclass(frozen=True)
class Pruned:
    """What one pruning did: runs newly summarised, runs deleted, the cut-off."""

    summarised: int
    deleted: int
    older_than: datetime

    def metadata(self) -> dict[str, object]:
        return {
            "runs_summarised": self.summarised,
            "runs_deleted": self.deleted,
            "deleted_runs_created_before": self.older_than.isoformat(timespec="seconds"),
        }


def keep_summaries(instance: dg.DagsterInstance, engine: Engine) -> int:
    """Stores the summary of every finished nightly run not kept yet."""
    kept = summaries.kept_run_ids(engine)
    records = instance.get_run_records(
        filters=dg.RunsFilter(job_name=names.NIGHTLY_JOB, statuses=_FINISHED)
    )
    new = [r for r in records if r.dagster_run.run_id not in kept]
    return summaries.store(
        engine, [history.run_summary(instance, r.dagster_run.run_id) for r in new]
    )


def prune(
    instance: dg.DagsterInstance,
    engine: Engine,
    older_than: datetime,
    current_run_id: str | None = None,
) -> Pruned:
    """Keeps the nightly summaries, then deletes finished runs created before `older_than`."""
    summarised = keep_summaries(instance, engine)
    old = instance.get_run_records(
        filters=dg.RunsFilter(created_before=older_than, statuses=_FINISHED)
    )
    deleted = 0
    for record in old:
        run_id = record.dagster_run.run_id
        if run_id == current_run_id:
            continue
        instance.delete_run(run_id)
        instance.compute_log_manager.delete_logs(prefix=[run_id])
        deleted += 1
    return Pruned(summarised, deleted, older_than)
