"""The summary's windows are fixed blocks counted from lifecycle's Monday: they never overlap from
one copy to the next, each long one is whole shorter ones, and the 28-day ones are the DP
release's periods."""

from __future__ import annotations

from datetime import date, timedelta

from lifecycle.sales import blocks, dp, planning

SUNDAYS = [date(2026, 1, 4) + timedelta(weeks=n) for n in range(120)]


def test_the_epoch_is_a_monday_and_every_window_ends_on_a_sunday_up_to_the_build():
    assert blocks.EPOCH == date(2001, 1, 1) and blocks.EPOCH.weekday() == 0
    for sunday in SUNDAYS:
        for days in planning.WINDOWS:
            first, last = blocks.block_bounds(sunday, days)
            assert last.weekday() == 6 and first.weekday() == 0
            assert (last - first).days == days - 1
            assert sunday - timedelta(days=days) < last <= sunday  # the last complete one
            assert blocks.is_block(last, days)


def test_copies_show_a_block_again_or_one_that_shares_no_day():
    for days in planning.WINDOWS:
        shown = {blocks.block_bounds(sunday, days) for sunday in SUNDAYS}
        ordered = sorted(shown)
        assert all(a[1] < b[0] for a, b in zip(ordered, ordered[1:], strict=False))
        # each block is shown for `days` / 7 Sundays in a row, then never again
        for first, last in shown:
            sundays = [s for s in SUNDAYS if blocks.block_bounds(s, days) == (first, last)]
            assert sundays == [s for s in SUNDAYS if last <= s < last + timedelta(days=days)]


def test_each_window_is_made_of_whole_shorter_ones():
    for sunday in SUNDAYS:
        for shorter, longer in zip(planning.WINDOWS, planning.WINDOWS[1:], strict=False):
            first, last = blocks.block_bounds(sunday, longer)
            holding = (first + timedelta(days=n + shorter - 1) for n in range(longer))
            inside = {blocks.block_bounds(day, shorter) for day in holding}  # each day's block
            assert len(inside) == longer // shorter
            assert min(inside)[0] == first and max(inside)[1] == last


def test_a_day_that_ends_a_block_ends_it_and_the_day_before_does_not():
    for days in planning.WINDOWS:
        last = blocks.EPOCH + timedelta(days=days * 1000 - 1)
        assert blocks.block_end(last, days) == last
        assert blocks.block_end(last - timedelta(days=1), days) == last - timedelta(days=days)
        assert not blocks.is_block(last - timedelta(days=7), days) or days == 7


def test_the_28_day_window_is_the_dp_releases_latest_period():
    for sunday in SUNDAYS:
        first, _ = blocks.block_bounds(sunday, 28)
        assert dp.periods(sunday)[-1] == first
