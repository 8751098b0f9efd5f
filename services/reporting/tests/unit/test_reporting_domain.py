from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsmeter_reporting.domain import InvalidRange, UsageWindow, parse_range_bound

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

    @pytest.mark.parametrize(
        ("start", "end", "field"),
        [
            (None, datetime.fromisoformat("0243-04-09T07:39:54-21:05"), "to"),
            (datetime(1969, 12, 31, 23, tzinfo=UTC), None, "from"),
            (None, datetime(2200, 1, 1, 0, 0, 1, tzinfo=UTC), "to"),
            (datetime.fromisoformat("0001-01-01T00:00:00+05:00"), None, "from"),
        ],
    )
    def test_times_outside_1970_to_2200_are_refused_naming_the_field(
        self, start: datetime | None, end: datetime | None, field: str
    ) -> None:
        with pytest.raises(InvalidRange, match="1970-01-01 up to 2200-01-01") as refused:
            UsageWindow.parse(start, end, now=NOW)
        assert refused.value.field == field

    def test_board_pack_bounds_name_their_field(self) -> None:
        with pytest.raises(InvalidRange) as refused:
            parse_range_bound("0243-04-09", end=True)
        assert refused.value.field == "to"
        assert parse_range_bound("2199-12-31", end=True) == datetime(2200, 1, 1, tzinfo=UTC)


class TestReportingSettings:
    def test_prod_needs_a_clickhouse_server(self) -> None:
        from pydantic import ValidationError

        from opsmeter_reporting.config import ReportingSettings
        from opsmeter_runtime.settings import RuntimeSettings

        prod = RuntimeSettings(env="prod", kafka_bootstrap="kafka-0.kafka:9092", operator_token_sha256="0" * 64)
        with pytest.raises(ValidationError, match="OPSMETER_CLICKHOUSE_URL"):
            ReportingSettings(runtime=prod)
        served = prod.model_copy(update={"clickhouse_url": "https://ch.internal:8443/opsmeter"})
        with pytest.raises(ValidationError, match="OPSMETER_REPORTING_ANALYST_CLICKHOUSE_URL"):
            ReportingSettings(runtime=served)
        analyst = "https://opsmeter_analyst:pw@ch.internal:8443/opsmeter"
        assert ReportingSettings(runtime=served, analyst_clickhouse_url=analyst).runtime.clickhouse_url

    def test_the_chaos_suites_insert_fault_is_refused_in_prod(self, tmp_path: Path) -> None:
        from pydantic import ValidationError

        from opsmeter_reporting.config import ReportingSettings
        from opsmeter_runtime.settings import RuntimeSettings

        prod = RuntimeSettings(
            env="prod",
            kafka_bootstrap="kafka-0.kafka:9092",
            operator_token_sha256="0" * 64,
            clickhouse_url="https://ch.internal:8443/opsmeter",
        )
        analyst = "https://opsmeter_analyst:pw@ch.internal:8443/opsmeter"
        fault = tmp_path / "fail-inserts"
        with pytest.raises(ValidationError, match="FAULT_INSERT_FAILURE_FILE"):
            ReportingSettings(runtime=prod, analyst_clickhouse_url=analyst, fault_insert_failure_file=fault)
        test = RuntimeSettings(env="test")
        assert ReportingSettings(runtime=test, fault_insert_failure_file=fault).fault_insert_failure_file == fault
