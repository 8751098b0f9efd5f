from datetime import UTC, datetime, timedelta, timezone

from opsmeter_policy.domain import counts_toward_budget, day_window, month_window


class TestWindows:
    def test_day_is_the_utc_day_half_open(self) -> None:
        at = datetime(2026, 11, 25, 1, 30, tzinfo=timezone(timedelta(hours=3)))
        window = day_window(at)
        assert window.name == "day:2026-11-24"
        assert window.start == datetime(2026, 11, 24, tzinfo=UTC)
        assert window.end == datetime(2026, 11, 25, tzinfo=UTC)
        assert day_window(window.end).name == "day:2026-11-25"

    def test_month_rolls_over_the_year(self) -> None:
        window = month_window(datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC))
        assert window.name == "month:2026-12"
        assert window.end == datetime(2027, 1, 1, tzinfo=UTC)


class TestDataMode:
    def test_only_real_events_count(self) -> None:
        assert counts_toward_budget("real")
        assert not counts_toward_budget("test")
        assert not counts_toward_budget("demo")
