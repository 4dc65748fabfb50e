"""Alerts: telling a person when a night failed, did not happen, or left personal data behind.

Every alert is written to lifecycle.alerts before it is posted, so a webhook that is down loses
nothing: undelivered alerts are posted again on the next evaluation. One alert per condition
(`dedupe_key`): a failed run once, a persisting staleness or backlog once a day. An alert says
what happened in counts and run ids, never a personal value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lifecycle.policy import Policy
from lifecycle.retention import standing
from lifecycle.runs import RunSummary

KINDS = ("run_failed", "nightly_stale", "overdue_backlog")
# A nightly job may start late or run long; 26 hours without success means a night was missed.
FRESHNESS = timedelta(hours=26)
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Alert:
    """One thing a person must hear about, with the key that keeps it from being raised twice."""

    kind: str
    dedupe_key: str
    message: str
    run_id: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown alert kind {self.kind!r}; one of {KINDS}")


class Poster(Protocol):
    """Where alerts are also sent (a webhook); the orchestration side supplies it as a resource."""

    @property
    def configured(self) -> bool: ...

    def post(self, payload: dict) -> tuple[bool, str]:
        """Sends `payload`; returns (delivered, status such as 'http 200'); never raises."""
        ...


# ---------------------------------------------------------------- recording and delivering

_INSERT = sa.text("""
    INSERT INTO lifecycle.alerts (kind, dedupe_key, run_id, message)
    VALUES (:kind, :dedupe_key, :run_id, :message)
    ON CONFLICT (kind, dedupe_key) DO NOTHING
    RETURNING alert_id
""")
# One alert at a time, locked while it is posted, so two sensors never post the same alert.
_NEXT_UNDELIVERED = sa.text("""
    SELECT alert_id, raised_at, kind, run_id, message FROM lifecycle.alerts
    WHERE delivered_at IS NULL AND attempts < :max_attempts AND alert_id > :after
    ORDER BY alert_id LIMIT 1
    FOR UPDATE SKIP LOCKED
""")
_MARK = sa.text("""
    UPDATE lifecycle.alerts
    SET attempts = attempts + 1, webhook_status = :status,
        delivered_at = CASE WHEN :delivered THEN now() END
    WHERE alert_id = :alert_id
""")
_NOT_CONFIGURED = sa.text("""
    UPDATE lifecycle.alerts SET webhook_status = 'no webhook configured'
    WHERE alert_id = :alert_id
""")


def raise_alert(engine: Engine, alert: Alert, webhook: Poster) -> int | None:
    """Records `alert` unless its key was raised before, then posts what is undelivered.

    Returns the new alert's id, or None when the same condition was already raised.
    """
    with engine.begin() as conn:
        alert_id = conn.execute(
            _INSERT,
            {
                "kind": alert.kind,
                "dedupe_key": alert.dedupe_key,
                "run_id": alert.run_id,
                "message": alert.message,
            },
        ).scalar()
        if alert_id is not None and not webhook.configured:
            conn.execute(_NOT_CONFIGURED, {"alert_id": alert_id})
    deliver_pending(engine, webhook)
    return alert_id


def deliver_pending(engine: Engine, webhook: Poster, limit: int = 50) -> int:
    """Posts undelivered alerts (each at most MAX_ATTEMPTS times); returns how many got through."""
    if not webhook.configured:
        return 0
    delivered, after = 0, 0
    for _ in range(limit):
        with engine.begin() as conn:
            row = (
                conn.execute(_NEXT_UNDELIVERED, {"max_attempts": MAX_ATTEMPTS, "after": after})
                .mappings()
                .first()
            )
            if row is None:
                break
            ok, status = webhook.post(payload(row))
            conn.execute(_MARK, {"alert_id": row["alert_id"], "status": status, "delivered": ok})
        delivered += ok
        after = row["alert_id"]
    return delivered


def payload(row) -> dict:
    """The JSON body posted for one alert row."""
    return {
        "text": f"[lifecycle] {row['kind']}: {row['message']}",
        "alert_id": row["alert_id"],
        "kind": row["kind"],
        "raised_at": row["raised_at"].isoformat(),
        "run_id": row["run_id"],
        "message": row["message"],
    }


# ---------------------------------------------------------------- what is worth an alert


def failed_run_alert(run: RunSummary) -> Alert:
    """The alert for a failed run: its id, failed steps and checks, by name only."""
    parts = [f"nightly run {run.run_id} failed"]
    if run.failed_steps:
        parts.append(
            "failed steps: " + ", ".join(f"{step} ({error})" for step, error in run.failed_steps)
        )
    failed_checks = [check.name for check in run.checks if not check.passed]
    if failed_checks:
        parts.append("failed checks: " + ", ".join(failed_checks))
    parts.append(
        "orders due for clearing keep their data until a run succeeds; the run's page "
        "in the Dagster UI shows the error"
    )
    return Alert(
        kind="run_failed", dedupe_key=run.run_id, run_id=run.run_id, message="; ".join(parts) + "."
    )


@dataclass(frozen=True)
class Freshness:
    """Whether the nightly job is keeping its promise right now."""

    checked_at: datetime
    last_success: RunSummary | None
    overdue: int

    @property
    def last_success_at(self) -> datetime | None:
        return None if self.last_success is None else self.last_success.ended_at

    @property
    def stale(self) -> bool:
        return self.last_success_at is None or self.checked_at - self.last_success_at > FRESHNESS

    def alerts(self) -> list[Alert]:
        """The alerts this state calls for; each raised at most once a day while it lasts."""
        day = self.checked_at.date().isoformat()
        found = []
        if self.stale:
            if self.last_success is None:
                message = "the nightly job has never succeeded; no order has been cleared by it."
                key = f"never:{day}"
            else:
                hours = (self.checked_at - self.last_success_at).total_seconds() / 3600
                message = (
                    f"the nightly job has not succeeded for {hours:.0f} hours (last success: run "
                    f"{self.last_success.run_id} at {self.last_success_at:%Y-%m-%d %H:%M} UTC); "
                    "orders due for clearing keep their personal data meanwhile."
                )
                key = f"{self.last_success.run_id}:{day}"
            found.append(Alert(kind="nightly_stale", dedupe_key=key, message=message))
        if self.overdue:
            hours = FRESHNESS.total_seconds() / 3600
            found.append(
                Alert(
                    kind="overdue_backlog",
                    dedupe_key=day,
                    message=(
                        f"{self.overdue} orders have been past their retention window for more than {hours:.0f} "
                        "hours and still hold personal data (lifecycle due shows them now)."
                    ),
                )
            )
        return found

    def summary(self) -> str:
        """One line for the sensor's tick history."""
        last = (
            f"last success {self.last_success_at:%Y-%m-%d %H:%M} UTC (run {self.last_success.run_id})"
            if self.last_success
            else "never succeeded"
        )
        return f"{'STALE' if self.stale else 'fresh'}: {last}; overdue past grace: {self.overdue}"


def assess_freshness(
    engine: Engine, policy: Policy, last_success: RunSummary | None, now: datetime
) -> Freshness:
    """The newest successful nightly run, and the orders overdue by more than the freshness window.

    Orders become due at any hour and the purge runs nightly, so a few due orders between runs
    are normal; an order still holding data FRESHNESS after its window closed is not.
    """
    return Freshness(
        checked_at=now,
        last_success=last_success,
        overdue=standing.count_overdue(engine, policy, now - FRESHNESS),
    )
