"""Geometry of the report's two charts (inline SVG, so the page needs no network to read).

Only numbers and dates go in; the template draws them, escaping every label.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from lifecycle.report.build import DayFigures

WIDTH, LEFT, RIGHT = 1100, 60, 20


@dataclass(frozen=True)
class Bar:
    """One bar (or a dot, when `h` is 0 and `dot` names its colour) with its hover title."""

    x: float
    y: float
    w: float
    h: float
    title: str
    dot: str = ""


def _slot(i: int, n: int) -> tuple[float, float]:
    width = (WIDTH - LEFT - RIGHT) / max(n, 1)
    return LEFT + i * width, width


def axis_labels(days: list[date]) -> list[tuple[float, str]]:
    """About ten evenly spaced day labels (x, text) under a chart."""
    step = max(1, len(days) // 10)
    out = []
    for i, day in enumerate(days):
        if i % step == 0 or i == len(days) - 1:
            x, w = _slot(i, len(days))
            out.append((x + w / 2, f"{day:%m-%d}"))
    return out


def cleared_bars(days: list[DayFigures], top: float, height: float) -> list[Bar]:
    """Orders cleared per day, scaled to the busiest day."""
    peak = max([d.purged for d in days] + [1])
    bars = []
    for i, d in enumerate(days):
        x, w = _slot(i, len(days))
        h = height * d.purged / peak
        bars.append(
            Bar(
                x + 1,
                top + height - h,
                max(w - 2, 1),
                h,
                f"{d.day}: {d.purged:,} orders cleared ({d.purged_on_request:,} on request)",
            )
        )
    return bars


def overdue_marks(days: list[DayFigures], base: float) -> list[Bar]:
    """Orders still overdue after each night's last run: a grey dot (not measured), a green dot (0), a red bar."""
    worst = max([d.overdue_after_last_run or 0 for d in days] + [1])
    marks = []
    for i, d in enumerate(days):
        x, w = _slot(i, len(days))
        if d.overdue_after_last_run is None:
            marks.append(
                Bar(x + w / 2, base, 0, 0, f"{d.day}: no run measured the backlog", dot="#cbd2d9")
            )
        elif d.overdue_after_last_run == 0:
            marks.append(Bar(x + w / 2, base, 0, 0, f"{d.day}: 0 overdue", dot="#31b237"))
        else:
            h = max(55 * d.overdue_after_last_run / worst, 3)
            marks.append(
                Bar(
                    x + 1,
                    base - h,
                    max(w - 2, 1),
                    h,
                    f"{d.day}: {d.overdue_after_last_run:,} overdue",
                )
            )
    return marks


def forecast_bars(forecast: dict[date, int], top: float, height: float) -> list[Bar]:
    """Orders becoming due per day over the coming days."""
    peak = max(list(forecast.values()) + [1])
    bars = []
    for i, (day, n) in enumerate(forecast.items()):
        x, w = _slot(i, len(forecast))
        h = height * n / peak
        bars.append(
            Bar(x + 1, top + height - h, max(w - 2, 1), h, f"{day}: {n:,} orders become due")
        )
    return bars
