"""The compliance report of a period, from Dagster's run history and the ledger."""

from __future__ import annotations

from datetime import datetime

import dagster as dg
from sqlalchemy.engine import Engine

from lifecycle.policy import Policy
from lifecycle.report import summaries
from lifecycle.report.build import Report, build_report
from lifecycle.runs import RunSummary
from orchestration import history


def report_from_history(
    engine: Engine,
    policy: Policy,
    instance: dg.DagsterInstance,
    since: datetime,
    now: datetime | None = None,
    ui_url: str | None = None,
    check_sentences: dict[str, str] | None = None,
) -> Report:
    """The report for the days from `since` to `now`: the nightly runs the history holds, as plain
    summaries; `check_sentences` are the checks' descriptions from the definitions."""
    runs = _with_kept(engine, history.job_runs(instance, since), since)
    begins = [t for t in (history.first_run_at(instance), summaries.first_created(engine)) if t]
    return build_report(
        engine,
        policy,
        runs,
        since,
        now,
        history_begins=min(begins, default=None),
        ui_url=ui_url,
        check_sentences=check_sentences,
    )


def _with_kept(engine: Engine, runs: list[RunSummary], since: datetime) -> list[RunSummary]:
    """The history's runs, and the kept summaries of runs the history no longer holds."""
    present = {run.run_id for run in runs}
    kept = [run for run in summaries.load(engine, since) if run.run_id not in present]
    return sorted(runs + kept, key=lambda run: run.created_at)
