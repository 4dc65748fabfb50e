"""Which published row a derivable cell's certificate gives up (planning._break_derivations).

The leak is the one traced on the 20,000-order synthetic shop (seed 1) the night its 28-day block
2026-06-15..07-12 was first shown: two buyers inside week 2026-06-22's all row, derived through
that block's all row, an older week's product-line row and the newest week's all row."""

from __future__ import annotations

from datetime import date

from lifecycle.sales import planning
from lifecycle.sales.derivable import Atom, Derivable

NEWEST = "2026-07-06"
OLDER_LINE_ROW = "2026-06-22|bath|OTHER|OTHER"
NEWEST_ALL_ROW = f"{NEWEST}|OTHER|OTHER|OTHER"
PARTS = [planning.WEEKLY, planning.window_part(28)]
LEAK = Derivable(
    atom=Atom(keys=("2026-06-22|OTHER|OTHER|OTHER", "28|OTHER|OTHER|"), customers=2, lines=3),
    certificate=(((0, OLDER_LINE_ROW), 8), ((0, NEWEST_ALL_ROW), 6), ((1, "28|OTHER|OTHER|"), 31)),
    alongside=frozenset({(0, OLDER_LINE_ROW), (0, NEWEST_ALL_ROW)}),
)


def merges(newest, times: int = 1) -> set[str]:
    """The weekly rows merged after the same leak was found `times` times."""
    new: dict[str, set[str]] = {planning.WEEKLY: set()}
    seen: dict = {}
    for _ in range(times):
        planning._break_derivations(
            [LEAK], PARTS, new, None, seen, {}, {planning.window_part(28): set()}, newest
        )
    return new[planning.WEEKLY]


def test_the_newest_weeks_all_row_goes_last():
    """Coarsest first would withhold the rest of the newest week, in the weekly table and the
    7-day window, for the thirteen weeks it is shown; the older week's product-line row moves into
    its week's all row instead, and the newest all row goes only when the same leak is found again
    with nothing else left to take."""
    week = planning.weekly_partition(date(2026, 7, 12))
    assert merges(None) == {NEWEST_ALL_ROW}
    assert merges((week, NEWEST)) == {OLDER_LINE_ROW}
    assert merges((week, NEWEST), times=2) == {OLDER_LINE_ROW, NEWEST_ALL_ROW}
    assert merges((week, "2026-06-29")) == {NEWEST_ALL_ROW}  # only the first copy's all row
