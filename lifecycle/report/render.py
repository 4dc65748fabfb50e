"""How the compliance report reads: one self-contained HTML page (inline SVG, no network),
Markdown for a ticket or a wiki, and JSON for another program.

The pages are Jinja2 templates (lifecycle/report/templates/); the HTML one autoescapes every
value. The figures themselves are counts, dates, run ids and check names (lifecycle/report/build.py),
so nothing personal can appear; escaping keeps even a hostile check or run name inert.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

from lifecycle.report import charts
from lifecycle.report.build import DayFigures, Night, Report
from lifecycle.templates import environment

FORMATS = ("html", "md", "json")

GLOSSARY = [
    ("Result", "How the nightly run ended in Dagster: succeeded, failed, or no run that day."),
    (
        "Started by",
        "schedule (the 02:00 timer), sensor, cli or demo (the lifecycle command), hand (the Dagster UI).",
    ),
    (
        "Cleared",
        "Orders whose personal fields (name, phone, email, address, postcode, payment reference, "
        "case notes) the run emptied; each is a row in the audit ledger.",
    ),
    ("Kept: open case", "Orders past their window kept because an after-sales case is still open."),
    (
        "Not judged",
        "Orders whose dates cannot be trusted (missing, in the future, out of order): kept and reported.",
    ),
    (
        "Overdue after",
        "Orders past their window still holding personal data right after the run: should be 0.",
    ),
    (
        "Removed from disk",
        "Whether the purged tables were rewritten so old row versions left the data files.",
    ),
    (
        "Checks",
        "The run's checks (retention and leak checks): each passed, or failed and stopped the run.",
    ),
]

NIGHT_HEAD = [
    "Date",
    "Result",
    "Run",
    "Started by",
    "Policy",
    "Cleared",
    "Kept: open case",
    "Not judged",
    "Overdue after",
    "Removed from disk",
    "Checks",
]
NIGHT_NUMERIC = {5, 6, 7, 8}
DAY_HEAD = [
    "Date",
    "Cleared (all)",
    "of which on request",
    "Overdue after last run",
    "Successful runs",
    "Requests answered",
]
DAY_NUMERIC = {1, 2, 3, 4, 5}
CHECKS_HEAD = ["Check", "What it proves", "Passed", "Failed"]
CHECKS_NUMERIC = {2, 3}
FORECAST_NUMERIC = {1}


def render(report: Report, fmt: str) -> str:
    """The report as `fmt` (html, md or json)."""
    if fmt == "json":
        return json.dumps(report.as_dict(), indent=2) + "\n"
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; one of {FORMATS}")
    template = environment("lifecycle.report", fmt == "html").get_template(f"report.{fmt}.j2")
    return template.render(**_view(report)).rstrip("\n") + "\n"


def _view(report: Report) -> dict:
    """What the templates show, computed once: rows as text, chart geometry, the verdict."""
    return {
        "r": report,
        "period": f"{report.since.date()} to {report.generated_at.date()} (UTC)",
        "verdict": report.verdict(),
        "nights": [
            (night, _night_cells(night, last), _night_css(night))
            for night, last in _grouped(report.nights)
        ],
        "night_rows": [_night_cells(night, last) for night, last in _grouped(report.nights)],
        "notes": [n for n in report.nights if n.note],
        "days": [_day_cells(d, report.before_installation(d.day)) for d in report.days],
        "checks": [
            (name, _proves(report, name), tally) for name, tally in sorted(report.checks.items())
        ],
        "checks_rows": [
            [name, _proves(report, name), str(t["passed"]), str(t["failed"])]
            for name, t in sorted(report.checks.items())
        ],
        "checks_head": CHECKS_HEAD,
        "checks_numeric": CHECKS_NUMERIC,
        "alert_rows": [
            [
                f"{a.raised_at:%Y-%m-%d %H:%M}",
                a.kind,
                (a.run_id or "")[:8],
                "yes" if a.delivered else "no",
                a.message,
            ]
            for a in report.alerts or []
        ],
        "forecast_rows": [[d.isoformat(), f"{n:,}"] for d, n in report.forecast.items()],
        "forecast_numeric": FORECAST_NUMERIC,
        "requests_text": _requests_text(report),
        "glossary": GLOSSARY,
        "night_head": NIGHT_HEAD,
        "night_numeric": NIGHT_NUMERIC,
        "day_head": DAY_HEAD,
        "day_numeric": DAY_NUMERIC,
        "chart": _chart(report),
    }


def _count(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def _checks(night: Night) -> str:
    if night.run_id is None:
        return ""
    if night.checks_failed:
        return "FAILED: " + ", ".join(night.checks_failed)
    return f"{len(night.checks_passed)} passed" if night.checks_passed else "none evaluated"


def _grouped(nights: list[Night]) -> list[tuple[Night, date]]:
    """Each run as it is; consecutive days without a run as one (first night, last day) entry."""
    out: list[tuple[Night, date]] = []
    for night in nights:
        if (
            night.run_id is None
            and out
            and out[-1][0].run_id is None
            and out[-1][0].result == night.result
            and night.day - out[-1][1] == timedelta(days=1)
        ):
            out[-1] = (out[-1][0], night.day)
        else:
            out.append((night, night.day))
    return out


def _night_cells(night: Night, last: date) -> list[str]:
    if night.run_id is None:
        days = (last - night.day).days + 1
        when = night.day.isoformat() if days == 1 else f"{night.day} to {last}"
        return [
            when,
            night.result if days == 1 else f"{night.result} ({days} days)",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ]
    return [
        night.day.isoformat(),
        night.result,
        night.run_id[:8],
        night.started_by or "",
        f"{night.policy_version or '?'} ({night.policy_hash or '?'})",
        _count(night.purged),
        _count(night.kept_by_open_case),
        _count(night.anomalies),
        _count(night.overdue_after),
        night.erasure,
        _checks(night),
    ]


def _night_css(night: Night) -> str:
    if night.run_id is None and night.result != "no run":
        return "before"
    if night.run_id is None:
        return "none"
    return "failed" if not night.succeeded or night.checks_failed or night.overdue_after else ""


def _proves(report: Report, name: str) -> str:
    return report.check_sentences.get(name, "(no description: a check of another code location)")


def _day_cells(day: DayFigures, before_installation: bool) -> list[str]:
    return [
        day.day.isoformat(),
        _count(day.purged),
        _count(day.purged_on_request),
        _count(day.overdue_after_last_run),
        "not installed yet" if before_installation else _runs_cell(day),
        _count(day.requests_answered),
    ]


def _runs_cell(day: DayFigures) -> str:
    """`no run`, `2 of 2`, or `0 of 2, last failed`: a day whose runs all failed is not a day
    without a run, and one whose last run failed is named so."""
    if not day.results:
        return "no run"
    last = day.results[-1]
    return f"{day.successful_runs} of {len(day.results)}" + (
        "" if last == "succeeded" else f", last {last}"
    )


def _requests_text(report: Report) -> str:
    r = report.requests
    if r is None:
        return (
            "This shop has no `shop.data_requests` table (customers' access, correction and erasure "
            "requests), so there is nothing to show here."
        )
    text = (
        f"{r.received} received and {r.answered} answered in the period, {r.answered_late} of them after the "
        f"{r.deadline_days}-day deadline. Open now: {r.open_now}; overdue now: {r.overdue_now}"
    )
    return text + (
        f" (request ids {', '.join(map(str, r.overdue_request_ids))})."
        if r.overdue_request_ids
        else "."
    )


def _chart(report: Report) -> dict:
    top, height, gap = 30, 150, 60
    overdue_top = top + height + gap
    days = [d.day for d in report.days]
    forecast_days = list(report.forecast)
    return {
        "width": charts.WIDTH,
        "left": charts.LEFT,
        "right": charts.RIGHT,
        "top": top,
        "height": height,
        "overdue_top": overdue_top,
        "overdue_base": overdue_top + 60,
        "peak": max([d.purged for d in report.days] + [1]),
        "cleared": charts.cleared_bars(report.days, top, height),
        "overdue": charts.overdue_marks(report.days, overdue_top + 60),
        "day_labels": charts.axis_labels(days),
        "forecast": charts.forecast_bars(report.forecast, top, 140),
        "forecast_peak": max(list(report.forecast.values()) + [1]),
        "forecast_total": sum(report.forecast.values()),
        "forecast_labels": charts.axis_labels(forecast_days),
    }
