"""The compliance report: every night of a period, as the ledger and Dagster's history recorded it.

It answers a reviewer's question, "was every order past its window cleared, and did anything
leak?", night by night: whether the nightly run happened and succeeded, how many orders it
cleared and kept (and why), what was still overdue after it, whether the purged rows left the
disk, and how every check in the run ended. Figures come from lifecycle.* (the ledger), the shop's
own tables (backlog, forecast, requests) and the run history's plain summaries (lifecycle/runs.py).
Only counts, dates, run ids and check names appear: never a personal value.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lifecycle import alerts
from lifecycle.ledger import chain
from lifecycle.policy import Policy
from lifecycle.requests.deadlines import open_requests
from lifecycle.retention import backlog, standing
from lifecycle.runs import RunSummary

FORECAST_DAYS = 30


class ReportError(ValueError):
    """A report option that cannot be used; the message names it and the fix."""


def parse_since(text: str, now: datetime) -> datetime:
    """`30d`, `12h`, `6w` before `now`, or an ISO date such as 2026-10-01 (UTC midnight)."""
    match = re.fullmatch(r"\s*(\d+)\s*([hdw])\s*", text)
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return (
            now
            - {
                "h": timedelta(hours=amount),
                "d": timedelta(days=amount),
                "w": timedelta(weeks=amount),
            }[unit]
        )
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise ReportError(
            f"--since: {text!r} is neither a duration (30d, 12h, 6w) nor a date (2026-10-01)"
        ) from None
    return datetime.combine(day, time(), UTC)


# ---------------------------------------------------------------- the figures


@dataclass(frozen=True)
class Night:
    """One nightly run (or a day that had none) as a reviewer reads it."""

    day: date
    run_id: str | None
    result: str
    started_at: datetime | None = None
    started_by: str | None = None
    policy_version: str | None = None
    policy_hash: str | None = None
    purged: int = 0
    kept_by_open_case: int | None = None
    anomalies: int | None = None
    overdue_after: int | None = None
    erasure: str = ""
    checks_passed: list[str] = field(default_factory=list)
    checks_failed: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def succeeded(self) -> bool:
        return self.result == "succeeded"


# How a run can end; a run still queued or going has not decided anything about its day yet.
FINISHED = ("succeeded", "failed", "canceled", "killed")


@dataclass(frozen=True)
class DayFigures:
    """What the ledger and the runs of one UTC day add up to: the chart's data."""

    day: date
    purged: int
    purged_on_request: int
    overdue_after_last_run: int | None
    successful_runs: int
    requests_answered: int | None
    # How each nightly run of the day ended (or where it is), oldest first.
    results: tuple[str, ...] = ()

    @property
    def last_finished(self) -> str | None:
        """How the day's last finished nightly run ended; None while none has."""
        return next((r for r in reversed(self.results) if r in FINISHED), None)

    @property
    def kept(self) -> bool:
        """The night's promise was kept: the day's last finished nightly run succeeded. A run that
        failed after one had succeeded leaves the day red, since whatever it was run for (a
        re-run, a changed policy) did not happen; a failed run followed by a success is green."""
        return self.last_finished == "succeeded"


@dataclass(frozen=True)
class RequestFigures:
    """Customers' data requests over the period (shop.data_requests), ids only."""

    received: int
    answered: int
    answered_late: int
    open_now: int
    overdue_now: int
    overdue_request_ids: list[int]
    deadline_days: int
    # Requests the database refused on every try (status `failed`): open until a person acts.
    failed_request_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class AlertRow:
    """An alert raised in the period, as lifecycle.alerts holds it."""

    alert_id: int
    raised_at: datetime
    kind: str
    run_id: str | None
    message: str
    delivered: bool


@dataclass(frozen=True)
class LedgerFigures:
    """The last nightly verification of the audit trail's hash chains in the period."""

    day: date
    run_id: str
    intact: bool
    rows: int | None
    anchors: int | None
    verified: dict[str, str]
    first_break: str | None

    @classmethod
    def from_runs(cls, runs: list[RunSummary]) -> LedgerFigures | None:
        for run in reversed(runs):
            for check in run.checks:
                if check.name == chain.CHECK_NAME:
                    f = check.figures
                    return cls(
                        day=run.created_at.date(),
                        run_id=run.run_id,
                        intact=check.passed,
                        rows=f.get("rows_verified"),
                        anchors=f.get("anchors_checked"),
                        verified=dict(f.get("verified") or {}),
                        first_break=f.get("first_break"),
                    )
        return None


@dataclass
class Report:
    """The whole report; lifecycle/report/render.py renders it as HTML, Markdown or JSON."""

    generated_at: datetime
    since: datetime
    policy_version: str
    policy_hash: str
    nights: list[Night]
    days: list[DayFigures]
    overdue_now: int
    overdue_past_grace: int
    forecast: dict[date, int]
    requests: RequestFigures | None
    alerts: list[AlertRow] | None
    checks: dict[str, dict[str, int]]
    history_begins: datetime | None = None
    ui_url: str | None = None
    installed_at: datetime | None = None
    check_sentences: dict[str, str] = field(default_factory=dict)
    # The retention lane's backlog (one source of truth with the erasure deadline check).
    pending_erasure: tuple[backlog.PendingErasure, ...] | None = None
    erasure_deadline_hours: int = 48
    # Purge runs in the period whose process died (lifecycle.retention.liveness marks them).
    killed_purge_runs: list[str] = field(default_factory=list)
    # Findings the policy accepts (audited exceptions), per check: (findings, rows) as the last
    # run that evaluated the check reported them. Standing exceptions, so never summed over nights.
    accepted: dict[str, tuple[int, int]] = field(default_factory=dict)
    ledger: LedgerFigures | None = None

    @property
    def first_judged_day(self) -> date | None:
        """The first day a nightly run was owed: the day after installation, or the installation
        day itself when a nightly run finished on it (the demo runs at once; a run that failed
        counts too); None judges every day."""
        if self.installed_at is None:
            return None
        day = self.installed_at.date()
        ran = any(d.day == day and d.last_finished for d in self.days)
        return day if ran else day + timedelta(days=1)

    @property
    def judged_days(self) -> list[DayFigures]:
        """Days since installation that have ended, and today once a nightly run has finished on
        it (its last finished run decides, so a failure is not hidden until midnight)."""
        first, today = self.first_judged_day, self.generated_at.date()
        return [
            d
            for d in self.days
            if (first is None or d.day >= first) and (d.day < today or d.last_finished)
        ]

    @property
    def days_not_kept(self) -> list[date]:
        """Judged days whose last finished nightly run did not succeed, or that had none."""
        return [d.day for d in self.judged_days if not d.kept]

    def before_installation(self, day: date) -> bool:
        return self.installed_at is not None and day < self.installed_at.date()

    @property
    def nights_left_overdue(self) -> list[Night]:
        return [n for n in self.nights if n.overdue_after]

    @property
    def failed_check_nights(self) -> list[Night]:
        return [n for n in self.nights if n.checks_failed]

    def verdict(self) -> list[tuple[bool | None, str]]:
        """The answers at a glance: (all well?, one plain sentence) per question; None for a
        line that is neither, because nothing can be judged yet."""
        lines = [self.nights_line()]
        left = self.nights_left_overdue
        measured = [n for n in self.nights if n.overdue_after is not None]
        lines.append(
            (
                not left,
                (
                    "After the one measured run"
                    if len(measured) == 1
                    else f"After each of the {len(measured):,} measured runs"
                )
                + ", no order past its window still held personal data."
                if not left
                else f"On {plural(len(left), 'run')}, orders past their window still held personal data afterwards: "
                + ", ".join(f"{n.day} ({n.overdue_after})" for n in left)
                + ".",
            )
        )
        hours = alerts.FRESHNESS.total_seconds() / 3600
        lines.append(
            (
                self.overdue_past_grace == 0,
                f"Now: {plural(self.overdue_past_grace, 'order has', 'orders have')} been past "
                f"{'its' if self.overdue_past_grace == 1 else 'their'} window for more than {hours:.0f} hours; {self.overdue_now} "
                f"{'is' if self.overdue_now == 1 else 'are'} past it in all (those that became due since "
                "the last run are cleared by the next).",
            )
        )
        failed = self.failed_check_nights
        evaluations = sum(c["passed"] + c["failed"] for c in self.checks.values())
        lines.append(
            (
                not failed and evaluations > 0,
                f"All {plural(evaluations, 'check evaluation')} passed ({plural(len(self.checks), 'check')}, "
                "each listed below with what it proves)."
                if not failed and evaluations
                else "No check was evaluated in the period."
                if not evaluations
                else "Checks failed: "
                + "; ".join(f"{n.day} {', '.join(n.checks_failed)}" for n in failed)
                + ".",
            )
        )
        if self.pending_erasure is not None:
            lines.append(self._erasure_line())
        lines.append(self._ledger_line())
        if self.requests is None:
            lines.append(
                (
                    True,
                    "This shop has no data-request table (shop.data_requests), so no request figures.",
                )
            )
        else:
            r = self.requests
            lines.append(
                (
                    r.overdue_now == 0 and r.answered_late == 0,
                    f"Data requests: {r.received} received, {r.answered} answered ({r.answered_late} after the "
                    f"{r.deadline_days}-day deadline); {r.open_now} open, {r.overdue_now} overdue now.",
                )
            )
            if r.failed_request_ids:
                lines.append(
                    (
                        False,
                        f"{plural(len(r.failed_request_ids), 'data request')} failed: the database refused "
                        f"it on every try (request ids {', '.join(map(str, r.failed_request_ids[:20]))}); "
                        "a person must act (`lifecycle requests open` lists them).",
                    )
                )
        if self.accepted:
            lines.append(
                (
                    True,
                    "Accepted findings (exceptions the policy accepts), as the last run reported them: "
                    + "; ".join(
                        f"{name} {plural(n, 'finding')}, {plural(rows, 'row')}"
                        for name, (n, rows) in sorted(self.accepted.items())
                    )
                    + ".",
                )
            )
        if self.killed_purge_runs:
            lines.append(
                (
                    False,
                    f"{plural(len(self.killed_purge_runs), 'purge run')} died before recording its end "
                    f"(marked killed: {', '.join(self.killed_purge_runs[:10])}); the next run resumed "
                    "the work.",
                )
            )
        if self.alerts is not None:
            lines.append(self._alerts_line())
        return lines

    def nights_line(self) -> tuple[bool | None, str]:
        """Whether every judged day ended with a successful nightly run. Green only over at least
        one judged day; with none (installed today, no run finished yet) it says so, neutral:
        "succeeded on every day (0 days)" was true of nothing and read as OK."""
        judged = self.judged_days
        days, today = len(judged), self.generated_at.date()
        installed = (
            f" since the shop was installed on {self.installed_at.date()}"
            if self.installed_at and self.installed_at > self.since
            else ""
        )
        if not judged:
            going = sum(len(d.results) for d in self.days if d.day == today)
            return (
                None,
                f"No nightly run has finished{installed or ' in the period'} and no day that owes "
                "one has ended: nothing to judge yet (0 days)"
                + (f"; {plural(going, 'run')} still going." if going else "."),
            )
        if all(d.kept for d in judged):
            today_too = ", today included" if judged[-1].day == today else ""
            return (
                True,
                f"A nightly run succeeded on every day{installed} ({plural(days, 'day')}{today_too}).",
            )
        no_run = [d.day for d in judged if not d.results]
        no_success = [d for d in judged if d.results and not d.successful_runs]
        last_failed = [d.day for d in judged if d.successful_runs and not d.kept]
        parts = []
        if no_run:
            begins = (
                f" (the run history begins on {self.history_begins.date()})"
                if self.history_begins and self.history_begins.date() > no_run[0]
                else ""
            )
            parts.append(f"no run on {day_ranges(no_run)}{begins}")
        if no_success:
            runs = sum(len(d.results) for d in no_success)
            parts.append(
                f"no run succeeded on {day_ranges([d.day for d in no_success])} "
                f"({plural(runs, 'run')}, none succeeded)"
            )
        if last_failed:
            parts.append(
                f"the last run failed after one had succeeded on {day_ranges(last_failed)}"
            )
        missed = len(no_run) + len(no_success) + len(last_failed)
        return (
            False,
            f"The nightly run did not succeed on {missed} of {plural(days, 'day')}{installed}: "
            + "; ".join(parts)
            + ".",
        )

    def _alerts_line(self) -> tuple[bool, str]:
        """Green only when no alert was raised and none was owed: a failed nightly run with no
        `run_failed` alert means the alert sensors (dagster-daemon) did not see it (not running,
        turned off, or not yet), and "no alert was raised" would read as "nothing went wrong"."""
        alerted = {a.run_id for a in self.alerts or () if a.kind == "run_failed"}
        unalerted = [
            n.run_id for n in self.nights if n.result == "failed" and n.run_id not in alerted
        ]
        if unalerted:
            return (
                False,
                f"{plural(len(unalerted), 'failed nightly run')} raised no alert "
                f"(runs {', '.join(r[:8] for r in unalerted[:10] if r)}): the alert sensors run in "
                "dagster-daemon; check that it runs and that the sensors are on "
                "(`dagster-daemon run`, docs/compliance.md).",
            )
        if self.alerts:
            return (
                False,
                f"{plural(len(self.alerts), 'alert was', 'alerts were')} raised (listed below).",
            )
        return True, "No alert was raised."

    def _ledger_line(self) -> tuple[bool, str]:
        led = self.ledger
        if led is None:
            return (
                False,
                "The audit trail's hash chains were not verified in the period (no "
                f"{chain.CHECK_NAME} check ran); run `lifecycle ledger verify`.",
            )
        if not led.intact:
            return (
                False,
                f"The audit trail was found altered on {led.day} (run {led.run_id[:8]}): "
                f"{led.first_break or 'see the check'}.",
            )
        spans = "; ".join(f"{name} {text}" for name, text in sorted(led.verified.items()))
        return (
            True,
            f"The audit trail verified intact on {led.day}: {led.rows or 0:,} rows against "
            f"{plural(led.anchors or 0, 'anchor')} recorded in the run history ({spans}).",
        )

    def _erasure_line(self) -> tuple[bool, str]:
        """Green while every table's cleared values have waited no longer than the deadline."""
        pending = self.pending_erasure or ()
        if not pending:
            return True, "Every cleared value has been rewritten out of the data files."
        hours = max(p.age(self.generated_at).total_seconds() for p in pending) / 3600
        # pg_statistic's owed rewrite counts no changes of its own (backlog.pending_erasures).
        tables = ", ".join(
            f"{p.relation} ({plural(p.changes, 'change')})" if p.changes else p.relation
            for p in pending
        )
        return (
            hours <= self.erasure_deadline_hours,
            f"Erasure from disk pending in {tables}; the oldest cleared {hours:.0f} hours ago "
            f"(deadline {self.erasure_deadline_hours} hours); the next rewrite removes the old "
            "values from the data files.",
        )

    def as_dict(self) -> dict:
        """Plain JSON-able data (dates as ISO strings)."""
        data = asdict(self)
        data["forecast"] = {d.isoformat(): n for d, n in self.forecast.items()}
        data["verdict"] = [{"ok": ok, "text": text} for ok, text in self.verdict()]
        return json.loads(json.dumps(data, default=_iso))


def plural(count: int, one: str, many: str | None = None) -> str:
    """`1 day`, `2 days`; `many` for irregular forms (`1 order has`, `2 orders have`)."""
    return f"{count:,} {one if count == 1 else many or one + 's'}"


def day_ranges(days: list[date]) -> str:
    """2026-10-01 to 2026-10-05, 2026-10-09: consecutive days joined into ranges."""
    spans: list[list[date]] = []
    for day in sorted(days):
        if spans and day - spans[-1][1] == timedelta(days=1):
            spans[-1][1] = day
        else:
            spans.append([day, day])
    return ", ".join(str(a) if a == b else f"{a} to {b}" for a, b in spans)


def _iso(value):
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# ---------------------------------------------------------------- reading the sources

_PER_RUN = sa.text("""
    SELECT r.run_id, r.policy_version, r.policy_hash, r.status,
           (SELECT count(*) FROM lifecycle.purge_ledger l WHERE l.run_id = r.run_id) AS purged
    FROM lifecycle.purge_runs r WHERE r.run_id = ANY(:run_ids)
""")
_ERASURES = sa.text("""
    SELECT run_id, count(*) AS rewrites, sum(bytes_before) AS before, sum(bytes_after) AS after
    FROM lifecycle.erasure_runs WHERE run_id = ANY(:run_ids) GROUP BY run_id
""")
_PER_DAY = sa.text("""
    SELECT (purged_at AT TIME ZONE 'UTC')::date AS day, count(*) AS purged,
           count(*) FILTER (WHERE request_id IS NOT NULL) AS on_request
    FROM lifecycle.purge_ledger WHERE purged_at >= :since GROUP BY 1
""")
_EXISTS = sa.text("SELECT to_regclass(:name) IS NOT NULL")
_INSTALLED = sa.text("SELECT min(installed_at) FROM lifecycle.installation")
_REQUESTS = sa.text("""
    SELECT count(*) FILTER (WHERE received_at >= :since) AS received,
           count(*) FILTER (WHERE completed_at >= :since) AS answered,
           count(*) FILTER (WHERE completed_at >= :since AND completed_at > received_at + :deadline) AS late
    FROM shop.data_requests
""")
_REQUESTS_PER_DAY = sa.text("""
    SELECT (completed_at AT TIME ZONE 'UTC')::date, count(*) FROM shop.data_requests
    WHERE completed_at >= :since GROUP BY 1
""")
_FAILED_REQUESTS = sa.text(
    "SELECT request_id FROM shop.data_requests WHERE status = 'failed' ORDER BY request_id LIMIT 50"
)
_KILLED = sa.text("""
    SELECT run_id FROM lifecycle.purge_runs WHERE status = 'killed' AND started_at >= :since
    ORDER BY started_at
""")
_ALERTS = sa.text("""
    SELECT alert_id, raised_at, kind, run_id, message, delivered_at IS NOT NULL AS delivered
    FROM lifecycle.alerts WHERE raised_at >= :since ORDER BY alert_id
""")


def _exists(conn, name: str) -> bool:
    return bool(conn.execute(_EXISTS, {"name": name}).scalar())


def build_report(
    engine: Engine,
    policy: Policy,
    runs: list[RunSummary],
    since: datetime,
    now: datetime | None = None,
    history_begins: datetime | None = None,
    ui_url: str | None = None,
    check_sentences: dict[str, str] | None = None,
) -> Report:
    """Gathers the report for the UTC days from `since` to `now` (whole days) from the nightly
    runs created in that period (oldest first) and the ledger. `check_sentences` says what each
    check proves (the descriptions the Dagster UI shows)."""
    now = now or datetime.now(UTC)
    since = datetime.combine(since.astimezone(UTC).date(), time(), UTC)
    run_ids = [run.run_id for run in runs]
    with engine.connect() as conn:
        ledger = {row.run_id: row for row in conn.execute(_PER_RUN, {"run_ids": run_ids})}
        erasures = {row.run_id: row for row in conn.execute(_ERASURES, {"run_ids": run_ids})}
        per_day = {row.day: row for row in conn.execute(_PER_DAY, {"since": since})}
        requests, answered_per_day = _requests(conn, engine, policy, since, now)
        raised = (
            [AlertRow(**row) for row in conn.execute(_ALERTS, {"since": since}).mappings()]
            if _exists(conn, "lifecycle.alerts")
            else None
        )
        recorded = (
            conn.execute(_INSTALLED).scalar() if _exists(conn, "lifecycle.installation") else None
        )
        killed = list(conn.execute(_KILLED, {"since": since}).scalars())
    pending = tuple(backlog.pending_erasures(engine, policy))
    installed_at = min((t for t in (recorded, history_begins) if t is not None), default=None)
    nights = [_night(run, ledger.get(run.run_id), erasures.get(run.run_id)) for run in runs]
    days = _days(since.date(), now.date(), nights, per_day, answered_per_day)
    checks: dict[str, dict[str, int]] = {}
    accepted: dict[str, tuple[int, int]] = {}
    for run in runs:
        for check in run.checks:
            tally = checks.setdefault(check.name, {"passed": 0, "failed": 0})
            tally["passed" if check.passed else "failed"] += 1
            if check.figures.get("accepted_count"):
                accepted[check.name] = (
                    int(check.figures["accepted_count"]),
                    int(check.figures.get("accepted_rows") or 0),
                )
            else:
                accepted.pop(check.name, None)
    return Report(
        generated_at=now,
        since=since,
        policy_version=policy.version,
        policy_hash=policy.short_hash,
        nights=_with_missing_days(nights, days, installed_at),
        days=days,
        overdue_now=standing.count_overdue(engine, policy, now),
        overdue_past_grace=standing.count_overdue(engine, policy, now - alerts.FRESHNESS),
        forecast=standing.forecast_due(engine, policy, now, FORECAST_DAYS),
        requests=requests,
        alerts=raised,
        checks=checks,
        history_begins=history_begins,
        ui_url=ui_url.rstrip("/") if ui_url else None,
        installed_at=installed_at,
        check_sentences=dict(check_sentences or {}),
        pending_erasure=pending,
        erasure_deadline_hours=policy.retention.erasure_deadline_hours,
        killed_purge_runs=killed,
        accepted=accepted,
        ledger=LedgerFigures.from_runs(runs),
    )


def _night(run: RunSummary, ledger, erasure) -> Night:
    note = ""
    if (
        ledger is not None
        and run.policy_hash
        and not ledger.policy_hash.startswith(run.policy_hash)
    ):
        note = (
            f"the run was tagged with policy {run.policy_hash[:12]} but the purge applied "
            f"{ledger.policy_hash[:12]} (policy.yaml changed after the run was launched)"
        )
    elif run.policy_problem:
        note = "the policy file was not usable when the run was launched"
    if erasure is not None:
        erasure_text = f"done ({_size(erasure.before)} → {_size(erasure.after)})"
    elif run.erasure_ran is not None:
        erasure_text = "done" if run.erasure_ran else "not needed"
    else:
        erasure_text = "not run"
    return Night(
        day=run.created_at.date(),
        run_id=run.run_id,
        # A run killed with kill -9 stays "running" in the run history; its purge run was marked
        # `killed` by the next one (lifecycle/retention/liveness.py).
        result="killed" if ledger is not None and ledger.status == "killed" else run.status,
        started_at=run.created_at,
        started_by=run.trigger,
        policy_version=ledger.policy_version if ledger else run.policy_version,
        policy_hash=(ledger.policy_hash if ledger else run.policy_hash or "")[:12] or None,
        purged=ledger.purged if ledger else 0,
        kept_by_open_case=run.kept_by_open_case,
        anomalies=run.anomalies,
        overdue_after=run.overdue_after,
        erasure=erasure_text,
        checks_passed=sorted(c.name for c in run.checks if c.passed),
        checks_failed=sorted(c.name for c in run.checks if not c.passed),
        note=note,
    )


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def _days(
    first: date, last: date, nights: list[Night], per_day, answered_per_day
) -> list[DayFigures]:
    days = []
    for offset in range((last - first).days + 1):
        day = first + timedelta(days=offset)
        todays = [n for n in nights if n.day == day]
        measured = [n.overdue_after for n in todays if n.overdue_after is not None]
        row = per_day.get(day)
        days.append(
            DayFigures(
                day=day,
                purged=row.purged if row else 0,
                purged_on_request=row.on_request if row else 0,
                overdue_after_last_run=measured[-1] if measured else None,
                successful_runs=sum(n.succeeded for n in todays),
                results=tuple(n.result for n in todays),
                requests_answered=answered_per_day.get(day, 0)
                if answered_per_day is not None
                else None,
            )
        )
    return days


def _with_missing_days(
    nights: list[Night], days: list[DayFigures], installed_at: datetime | None
) -> list[Night]:
    ran = {n.day for n in nights}
    missing = [
        Night(
            day=d.day,
            run_id=None,
            result="not installed yet"
            if installed_at and d.day < installed_at.date()
            else "no run",
        )
        for d in days
        if d.day not in ran
    ]
    return sorted(
        nights + missing,
        key=lambda n: (n.day, n.started_at or datetime.min.replace(tzinfo=UTC)),
    )


def _requests(conn, engine: Engine, policy: Policy, since: datetime, now: datetime):
    """Request figures when the shop has shop.data_requests (customers' rights), else (None, None)."""
    if not _exists(conn, "shop.data_requests"):
        return None, None
    deadline_days = policy.requests.response_deadline_days
    received, answered, late = conn.execute(
        _REQUESTS, {"since": since, "deadline": timedelta(days=deadline_days)}
    ).one()
    per_day = dict(conn.execute(_REQUESTS_PER_DAY, {"since": since}).all())
    open_now = open_requests(engine, policy, now)
    figures = RequestFigures(
        received=received,
        answered=answered,
        answered_late=late,
        open_now=open_now.total,
        overdue_now=open_now.overdue,
        overdue_request_ids=open_now.overdue_ids[:50],
        deadline_days=deadline_days,
        failed_request_ids=list(conn.execute(_FAILED_REQUESTS).scalars()),
    )
    return figures, per_day
