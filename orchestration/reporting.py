"""The compliance report of a period, from the kept nightly summaries, Dagster's run history for
the runs not kept yet, and the ledger.

Every finished nightly run is kept in lifecycle.nightly_summaries by the next night's
`pruned_run_history` step, so the instance is asked only for the runs created after the newest
kept one: usually the last night, whatever the period. It cannot be skipped altogether: a run is
not finished while its own steps run, so the newest night is kept only by the next one, and a run
that failed before writing to the shop leaves no trace in the shop's database.
"""

from __future__ import annotations

from datetime import datetime

import dagster as dg
from sqlalchemy.engine import Engine

from lifecycle.assertions import ASSERTS
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
) -> Report:
    """The report for the days from `since` to `now`: the nightly runs as plain summaries, each
    check explained by its sentence (lifecycle/assertions.py, what the UI shows)."""
    runs = nightly_runs(engine, instance, since)
    begins = [t for t in (history.first_run_at(instance), summaries.first_created(engine)) if t]
    return build_report(
        engine,
        policy,
        runs,
        since,
        now,
        history_begins=min(begins, default=None),
        ui_url=ui_url,
        check_sentences=ASSERTS,
    )


def nightly_runs(engine: Engine, instance: dg.DagsterInstance, since: datetime) -> list[RunSummary]:
    """The kept summaries of the runs created since `since`, and the history's runs created after
    the newest of them (a kept run the history still holds is read once, from the summary)."""
    kept = summaries.load(engine, since)
    newest = max((run.created_at for run in kept), default=since)
    present = {run.run_id for run in kept}
    recent = [run for run in history.job_runs(instance, newest) if run.run_id not in present]
    return sorted(kept + recent, key=lambda run: run.created_at)
