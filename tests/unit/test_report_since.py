"""The report's period: a duration back from now, or a date."""

from datetime import datetime, timezone

import pytest

from lifecycle import report as compliance


@pytest.mark.parametrize("text, expected", [
    ("30d", datetime(2026, 5, 2, 12, tzinfo=timezone.utc)),
    ("12h", datetime(2026, 6, 1, 0, tzinfo=timezone.utc)),
    ("2w", datetime(2026, 5, 18, 12, tzinfo=timezone.utc)),
    ("2026-05-01", datetime(2026, 5, 1, tzinfo=timezone.utc)),
])
def test_since_reads_durations_and_dates(text, expected):
    assert compliance.parse_since(text, datetime(2026, 6, 1, 12, tzinfo=timezone.utc)) == expected


def test_since_names_what_it_accepts():
    with pytest.raises(compliance.ReportError, match=r"--since: '30 days' is neither a duration \(30d"):
        compliance.parse_since("30 days", datetime(2026, 6, 1, tzinfo=timezone.utc))
