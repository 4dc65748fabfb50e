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
SUMMARY_ALL_ROW = "28|OTHER|OTHER|"
WEEK = planning.weekly_partition(date(2026, 7, 12))
PARTS = [planning.WEEKLY, planning.window_part(28)]
LEAK = Derivable(
    atom=Atom(keys=("2026-06-22|OTHER|OTHER|OTHER", SUMMARY_ALL_ROW), customers=2, lines=3),
    certificate=(((0, OLDER_LINE_ROW), 8), ((0, NEWEST_ALL_ROW), 6), ((1, SUMMARY_ALL_ROW), 31)),
    alongside=frozenset({(0, OLDER_LINE_ROW), (0, NEWEST_ALL_ROW)}),
)


def merges(monday: str | None, times: int = 1, summary: bool = True) -> tuple[set[str], set[str]]:
    """The weekly rows merged, and the summary rows sent back to be merged, after the same leak
    was found `times` times, with `monday` the week shown tonight for the first time; `summary`:
    whether tonight's summary can still be rebuilt (the weekly build's last attempt cannot)."""
    new: dict[str, set[str]] = {planning.WEEKLY: set()}
    upstream = {planning.window_part(28): set()} if summary else None
    weekly = (WEEK, monday) if monday else None
    seen: dict = {}
    for _ in range(times):
        planning._break_derivations([LEAK], PARTS, new, None, seen, {}, upstream, weekly)
    return new[planning.WEEKLY], set().union(*(upstream or {}).values())


def test_the_newest_weeks_all_row_goes_last():
    """Coarsest first would withhold the rest of the newest week, in the weekly table and the
    7-day window, for the thirteen weeks it is shown; the older week's product-line row moves into
    its week's all row instead."""
    assert merges(None) == ({NEWEST_ALL_ROW}, set())
    assert merges(NEWEST) == ({OLDER_LINE_ROW}, set())


def test_found_again_the_summarys_row_goes_instead_of_the_newest_all_row():
    """The second time the leak is found the doubling takes every row left, the newest all row
    too; the certificate's 28-day all row goes back to the summary instead (four weeks' leftovers
    in one window for four Sundays, against a tenth of the week for thirteen), and the all row
    stays. Only when the summary can no longer be rebuilt does the all row go."""
    assert merges(NEWEST, times=2) == ({OLDER_LINE_ROW}, {SUMMARY_ALL_ROW})
    both = {OLDER_LINE_ROW, NEWEST_ALL_ROW}
    assert merges(NEWEST, times=2, summary=False) == (both, set())
    assert merges(None, times=2) == (both, set())  # no weekly table's rows known: as before


def test_any_weeks_all_row_stays_while_the_summary_can_give_a_row_instead():
    """Shown again, a week withholds what its all row withheld for the rest of its thirteen
    weeks; the summary's 28-day all row, for the four Sundays of its block. So with tonight's
    first copy another week (07-06's all row is then an ordinary week's, coarsest first), the
    summary's row goes back at once and no weekly row is merged this time."""
    assert merges("2026-06-29") == (set(), {SUMMARY_ALL_ROW})
    assert merges("2026-06-29", summary=False) == ({NEWEST_ALL_ROW}, set())
