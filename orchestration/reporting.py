"""The compliance report of a period, from Dagster's run history and the ledger."""

from __future__ import annotations

from datetime import datetime

import dagster as dg
from sqlalchemy.engine import Engine

from lifecycle.policy import Policy
from lifecycle.report.build import Report, build_report
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
    return build_report(
        engine,
        policy,
        history.job_runs(instance, since),
        since,
        now,
        history_begins=history.first_run_at(instance),
        ui_url=ui_url,
        check_sentences=check_sentences,
    )
