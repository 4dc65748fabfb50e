"""A nightly run as the run history recorded it, in plain terms the report and the alerts read.

The orchestrator's own records (Dagster's runs, events and tags) are translated into these on the
orchestration side (orchestration/history.py), so the report and the alerts are plain functions of
the ledger and of these summaries, testable without an orchestrator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

STATUS_WORDS = {
    "SUCCESS": "succeeded",
    "FAILURE": "failed",
    "CANCELED": "canceled",
    "CANCELING": "canceling",
    "STARTED": "running",
    "STARTING": "starting",
    "QUEUED": "queued",
    "NOT_STARTED": "not started",
}


@dataclass(frozen=True)
class RecordedCheck:
    """One check evaluated in a run: its name, the asset it guards, its verdict and its figures."""

    name: str
    passed: bool
    asset: str = ""
    figures: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class RunSummary:
    """One run: how it ended, what started it, the policy it applied, and what its steps reported.

    `status` is one of STATUS_WORDS' values; figures a step did not report are None.
    """

    run_id: str
    status: str
    created_at: datetime
    finished_at: datetime | None = None
    trigger: str = "hand"
    policy_version: str | None = None
    policy_hash: str | None = None
    policy_problem: str | None = None
    kept_by_open_case: int | None = None
    anomalies: int | None = None
    overdue_after: int | None = None
    erasure_ran: bool | None = None
    checks: list[RecordedCheck] = field(default_factory=list)
    failed_steps: list[tuple[str, str]] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @property
    def ended_at(self) -> datetime:
        """When the run finished, or when it was created if it has not."""
        return self.finished_at or self.created_at
