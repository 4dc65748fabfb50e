"""How the compliance report reads: one self-contained HTML page (inline SVG, no network),
Markdown for a ticket or a wiki, and JSON for another program.

Every value placed in HTML goes through `html.escape`; the figures themselves are counts,
dates, run ids and check names (lifecycle/report.py), so nothing personal can appear.
"""

from __future__ import annotations

import html
import json
from datetime import date, timedelta

from lifecycle.report import DayFigures, Night, Report

FORMATS = ("html", "md", "json")

GLOSSARY = [
    ("Result", "How the nightly run ended in Dagster: succeeded, failed, or no run that day."),
    ("Started by", "schedule (the 02:00 timer), sensor, cli or demo (the lifecycle command), hand (the Dagster UI)."),
    ("Cleared", "Orders whose personal fields (name, phone, email, address, postcode, payment reference, "
                "case notes) the run emptied; each is a row in the audit ledger."),
    ("Kept: open case", "Orders past their window kept because an after-sales case is still open."),
    ("Not judged", "Orders whose dates cannot be trusted (missing, in the future, out of order): kept and reported."),
    ("Overdue after", "Orders past their window still holding personal data right after the run: should be 0."),
    ("Removed from disk", "Whether the purged tables were rewritten so old row versions left the data files."),
    ("Checks", "The run's checks (retention and leak checks): each passed, or failed and stopped the run."),
]


def render(report: Report, fmt: str) -> str:
    """The report as `fmt` (html, md or json)."""
    if fmt == "html":
        return to_html(report)
    if fmt == "md":
        return to_markdown(report)
    if fmt == "json":
        return json.dumps(report.as_dict(), indent=2) + "\n"
    raise ValueError(f"unknown format {fmt!r}; one of {FORMATS}")


def _period(report: Report) -> str:
    return f"{report.since.date()} to {report.generated_at.date()} (UTC)"


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
        if night.run_id is None and out and out[-1][0].run_id is None and night.day - out[-1][1] == timedelta(days=1):
            out[-1] = (out[-1][0], night.day)
        else:
            out.append((night, night.day))
    return out


def _row(night: Night, last: date | None = None) -> list[str]:
    if night.run_id is None:
        days = (last - night.day).days + 1 if last else 1
        when = night.day.isoformat() if days == 1 else f"{night.day} to {last}"
        return [when, "no run" if days == 1 else f"no run ({days} days)", "", "", "", "", "", "", "", "", ""]
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


_DAY_HEAD = ["Date", "Cleared (all)", "of which on request", "Overdue after last run", "Successful runs",
             "Requests answered"]


def _day_row(day: DayFigures) -> list[str]:
    return [day.day.isoformat(), _count(day.purged), _count(day.purged_on_request),
            _count(day.overdue_after_last_run), str(day.successful_runs), _count(day.requests_answered)]


_HEAD = ["Date", "Result", "Run", "Started by", "Policy", "Cleared", "Kept: open case", "Not judged",
         "Overdue after", "Removed from disk", "Checks"]


# ---------------------------------------------------------------- Markdown

def to_markdown(report: Report) -> str:
    """The report as Markdown: the same sections as the HTML page, charts as tables."""
    out = [f"# Privacy compliance report, {_period(report)}", "",
           f"Generated {report.generated_at:%Y-%m-%d %H:%M} UTC; policy {report.policy_version} "
           f"(sha256 {report.policy_hash}).", "", "## At a glance", ""]
    out += [f"- {'OK' if ok else '**ATTENTION**'}: {text}" for ok, text in report.verdict()]
    out += ["", "## Every night", "", _md_table(_HEAD, [_row(n, last) for n, last in _grouped(report.nights)])]
    notes = [n for n in report.nights if n.note]
    if notes:
        out += [""] + [f"- {n.day} run {n.run_id[:8]}: {n.note}" for n in notes]
    out += ["", "## Per day", "", _md_table(_DAY_HEAD, [_day_row(d) for d in report.days])]
    out += ["", "## Checks", "", _md_table(["Check", "Passed", "Failed"],
                                          [[name, str(t["passed"]), str(t["failed"])] for name, t in sorted(report.checks.items())])]
    out += ["", "## Data requests", "", _requests_text(report)]
    if report.alerts is not None:
        out += ["", "## Alerts", ""]
        out += [_md_table(["Raised (UTC)", "Kind", "Run", "Delivered", "Message"],
                          [[f"{a.raised_at:%Y-%m-%d %H:%M}", a.kind, (a.run_id or "")[:8], "yes" if a.delivered else "no",
                            a.message] for a in report.alerts])] if report.alerts else ["No alert was raised."]
    out += ["", f"## The next {len(report.forecast) - 1} days", "",
            "Orders that become due each day if nothing else changes (orders held by an open after-sales "
            "case have no date yet):", "",
            _md_table(["Date", "Become due"], [[d.isoformat(), f"{n:,}"] for d, n in report.forecast.items()])]
    out += ["", "## What the columns mean", ""] + [f"- **{term}**: {text}" for term, text in GLOSSARY]
    return "\n".join(out) + "\n"


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _requests_text(report: Report) -> str:
    r = report.requests
    if r is None:
        return ("This shop has no `shop.data_requests` table (customers' access, correction and erasure "
                "requests), so there is nothing to show here.")
    text = (f"{r.received} received and {r.answered} answered in the period, {r.answered_late} of them after the "
            f"{r.deadline_days}-day deadline. Open now: {r.open_now}; overdue now: {r.overdue_now}")
    return text + (f" (request ids {', '.join(map(str, r.overdue_request_ids))})." if r.overdue_request_ids else ".")


# ---------------------------------------------------------------- HTML

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2933;margin:2rem auto;max-width:1180px;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d9e2ec;padding-bottom:.2rem}
.sub{color:#52606d;margin-top:0} ul.verdict{list-style:none;padding:0} ul.verdict li{padding:.45rem .7rem;margin:.3rem 0;border-radius:6px}
li.ok{background:#e3f9e5;border-left:5px solid #31b237} li.bad{background:#ffe3e3;border-left:5px solid #e12d39;font-weight:600}
table{border-collapse:collapse;width:100%;font-size:13px} th,td{padding:.3rem .45rem;border-bottom:1px solid #e4e7eb;text-align:left;vertical-align:top}
th{background:#f5f7fa;position:sticky;top:0} td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.none td{color:#9aa5b1;background:#fffbea} tr.failed td{background:#ffe3e3} td.bad{color:#c81d25;font-weight:600}
dl{display:grid;grid-template-columns:12rem 1fr;gap:.3rem 1rem} dt{font-weight:600} .chart{max-width:100%;height:auto}
summary{cursor:pointer;margin-top:1rem;color:#334e68} .note{color:#52606d;font-size:13px} td:first-child{white-space:nowrap}
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def to_html(report: Report) -> str:
    """One self-contained page: verdict, charts (inline SVG), every night, checks, requests, forecast."""
    parts = [
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Privacy compliance report, {_e(_period(report))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Privacy compliance report</h1><p class=\"sub\">Nights from {_e(_period(report))} · generated "
        f"{report.generated_at:%Y-%m-%d %H:%M} UTC · policy {_e(report.policy_version)} "
        f"(sha256 {_e(report.policy_hash)})</p>",
        "<h2>At a glance</h2><ul class=\"verdict\">",
    ]
    parts += [f'<li class="{"ok" if ok else "bad"}">{"✔" if ok else "✘"} {_e(text)}</li>' for ok, text in report.verdict()]
    parts += ["</ul>", "<h2>Orders cleared and left overdue, day by day</h2>", day_chart(report.days),
              "<h2>Every night</h2>", _html_nights(report),
              "<details><summary>Per day: cleared, overdue after the last run, requests answered</summary>",
              _html_table(_DAY_HEAD, [([_e(c) for c in _day_row(d)], "") for d in report.days],
                          numeric={1, 2, 3, 4, 5}), "</details>"]
    parts += ["<h2>Checks in the runs</h2>", _html_table(
        ["Check", "Passed", "Failed"],
        [([_e(name), str(t["passed"]), str(t["failed"])], "failed" if t["failed"] else "")
         for name, t in sorted(report.checks.items())], numeric={1, 2})]
    parts += ["<h2>Data requests</h2>", f"<p>{_e(_requests_text(report))}</p>"]
    if report.alerts is not None:
        parts.append("<h2>Alerts</h2>")
        parts.append(_html_table(
            ["Raised (UTC)", "Kind", "Run", "Delivered", "Message"],
            [([f"{a.raised_at:%Y-%m-%d %H:%M}", _e(a.kind), _e((a.run_id or "")[:8]), "yes" if a.delivered else "no",
               _e(a.message)], "") for a in report.alerts]) if report.alerts else "<p>No alert was raised.</p>")
    parts += [f"<h2>The next {len(report.forecast) - 1} days</h2>",
              "<p>How many orders become due each day if nothing else changes; the nightly run clears them "
              "the night after. Orders held by an open after-sales case have no date until the case closes.</p>",
              forecast_chart(report.forecast)]
    parts += ["<h2>What the columns mean</h2><dl>"]
    parts += [f"<dt>{_e(term)}</dt><dd>{_e(text)}</dd>" for term, text in GLOSSARY]
    parts += ["</dl>", "</body></html>"]
    return "\n".join(parts) + "\n"


def _html_nights(report: Report) -> str:
    rows = []
    for night, last in _grouped(report.nights):
        cells = [_e(c) for c in _row(night, last)]
        if night.run_id and report.ui_url:
            cells[2] = f'<a href="{_e(report.ui_url)}/runs/{_e(night.run_id)}">{_e(night.run_id[:8])}</a>'
        elif night.run_id:
            cells[2] = f'<span title="{_e(night.run_id)}">{_e(night.run_id[:8])}</span>'
        if night.note:
            cells[-1] += f'<div class="note">{_e(night.note)}</div>'
        css = "none" if night.run_id is None else ("failed" if not night.succeeded or night.checks_failed or night.overdue_after else "")
        rows.append((cells, css))
    return _html_table(_HEAD, rows, numeric={5, 6, 7, 8})


def _html_table(head: list[str], rows: list[tuple[list[str], str]], numeric: set[int] = frozenset()) -> str:
    out = ["<table><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for cells, css in rows:
        tds = "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(cells))
        out.append(f'<tr class="{css}">{tds}</tr>' if css else f"<tr>{tds}</tr>")
    out.append("</tbody></table>")
    return "".join(out)


# ---------------------------------------------------------------- charts (inline SVG)

_W, _LEFT, _RIGHT = 1100, 60, 20


def _x(i: int, n: int) -> tuple[float, float]:
    width = (_W - _LEFT - _RIGHT) / max(n, 1)
    return _LEFT + i * width, width


def _axis_labels(days: list[date], y: float) -> list[str]:
    step = max(1, len(days) // 10)
    out = []
    for i, day in enumerate(days):
        if i % step == 0 or i == len(days) - 1:
            x, w = _x(i, len(days))
            out.append(f'<text x="{x + w / 2:.1f}" y="{y}" font-size="11" text-anchor="middle" fill="#52606d">'
                       f"{day:%m-%d}</text>")
    return out


def day_chart(days: list[DayFigures]) -> str:
    """Two panels over the same days: orders cleared (bars), and overdue after the last run."""
    n = len(days)
    top, height, gap = 30, 150, 60
    peak = max([d.purged for d in days] + [1])
    worst = max([d.overdue_after_last_run or 0 for d in days] + [1])
    y2 = top + height + gap
    svg = [f'<svg class="chart" viewBox="0 0 {_W} {y2 + 110}" xmlns="http://www.w3.org/2000/svg" role="img" '
           'aria-label="Orders cleared per day and orders still overdue after each night">',
           f'<text x="{_LEFT}" y="18" font-size="13" font-weight="600">Orders cleared per day (max {peak:,})</text>',
           f'<line x1="{_LEFT}" y1="{top + height}" x2="{_W - _RIGHT}" y2="{top + height}" stroke="#9aa5b1"/>']
    for i, d in enumerate(days):
        x, w = _x(i, n)
        h = height * d.purged / peak
        svg.append(f'<rect x="{x + 1:.1f}" y="{top + height - h:.1f}" width="{max(w - 2, 1):.1f}" height="{h:.1f}" '
                   f'fill="#2680c2"><title>{d.day}: {d.purged:,} orders cleared '
                   f'({d.purged_on_request:,} on request)</title></rect>')
    svg.append(f'<text x="{_LEFT}" y="{y2 - 12}" font-size="13" font-weight="600">Orders still overdue after the '
               f'night\'s last run (should be 0; grey: no run measured it)</text>')
    base = y2 + 60
    svg.append(f'<line x1="{_LEFT}" y1="{base}" x2="{_W - _RIGHT}" y2="{base}" stroke="#9aa5b1"/>')
    for i, d in enumerate(days):
        x, w = _x(i, n)
        cx = x + w / 2
        if d.overdue_after_last_run is None:
            svg.append(f'<circle cx="{cx:.1f}" cy="{base}" r="4" fill="#cbd2d9"><title>{d.day}: no run measured '
                       "the backlog</title></circle>")
        elif d.overdue_after_last_run == 0:
            svg.append(f'<circle cx="{cx:.1f}" cy="{base}" r="4" fill="#31b237"><title>{d.day}: 0 overdue'
                       "</title></circle>")
        else:
            h = max(55 * d.overdue_after_last_run / worst, 3)
            svg.append(f'<rect x="{x + 1:.1f}" y="{base - h:.1f}" width="{max(w - 2, 1):.1f}" height="{h:.1f}" '
                       f'fill="#e12d39"><title>{d.day}: {d.overdue_after_last_run:,} overdue</title></rect>')
    svg += _axis_labels([d.day for d in days], base + 18)
    svg.append("</svg>")
    return "".join(svg)


def forecast_chart(forecast: dict[date, int]) -> str:
    """Bars: orders becoming due per day over the coming days."""
    days = list(forecast)
    n, top, height = len(days), 30, 140
    peak = max(list(forecast.values()) + [1])
    svg = [f'<svg class="chart" viewBox="0 0 {_W} {top + height + 30}" xmlns="http://www.w3.org/2000/svg" '
           'role="img" aria-label="Orders becoming due per day">',
           f'<text x="{_LEFT}" y="18" font-size="13" font-weight="600">Orders becoming due per day '
           f'(max {peak:,}; {sum(forecast.values()):,} in all)</text>',
           f'<line x1="{_LEFT}" y1="{top + height}" x2="{_W - _RIGHT}" y2="{top + height}" stroke="#9aa5b1"/>']
    for i, day in enumerate(days):
        x, w = _x(i, n)
        h = height * forecast[day] / peak
        svg.append(f'<rect x="{x + 1:.1f}" y="{top + height - h:.1f}" width="{max(w - 2, 1):.1f}" height="{h:.1f}" '
                   f'fill="#8662c7"><title>{day}: {forecast[day]:,} orders become due</title></rect>')
    svg += _axis_labels(days, top + height + 18)
    svg.append("</svg>")
    return "".join(svg)
