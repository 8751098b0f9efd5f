from datetime import UTC, datetime, timedelta

import pytest

from opsmeter_reporting.domain import InvalidRange, UsageWindow

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


class TestUsageWindow:
    def test_defaults_to_the_last_30_days(self) -> None:
        window = UsageWindow.parse(None, None, now=NOW)
        assert (window.start, window.end) == (NOW - timedelta(days=30), NOW)

    def test_naive_times_are_refused(self) -> None:
        with pytest.raises(InvalidRange, match="offset"):
            UsageWindow.parse(datetime(2026, 11, 1), None, now=NOW)

    def test_empty_or_inverted_ranges_are_refused(self) -> None:
        with pytest.raises(InvalidRange):
            UsageWindow.parse(NOW, NOW, now=NOW)
