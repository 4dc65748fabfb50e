"""The report's period: a duration back from now, or a date."""

from datetime import UTC, datetime

import pytest

from lifecycle.report import build as compliance


@pytest.mark.parametrize(
    "text, expected",
    [
        ("30d", datetime(2026, 5, 2, 12, tzinfo=UTC)),
        ("12h", datetime(2026, 6, 1, 0, tzinfo=UTC)),
        ("2w", datetime(2026, 5, 18, 12, tzinfo=UTC)),
        ("2026-05-01", datetime(2026, 5, 1, tzinfo=UTC)),
    ],
)
def test_since_reads_durations_and_dates(text, expected):
    assert compliance.parse_since(text, datetime(2026, 6, 1, 12, tzinfo=UTC)) == expected


def test_since_names_what_it_accepts():
    with pytest.raises(
        compliance.ReportError, match=r"--since: '30 days' is neither a duration \(30d"
    ):
        compliance.parse_since("30 days", datetime(2026, 6, 1, tzinfo=UTC))
