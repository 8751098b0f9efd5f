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


class TestReportingSettings:
    def test_prod_needs_a_clickhouse_server(self) -> None:
        from pydantic import ValidationError

        from opsmeter_reporting.config import ReportingSettings
        from opsmeter_runtime.settings import RuntimeSettings

        prod = RuntimeSettings(env="prod", kafka_bootstrap="kafka-0.kafka:9092", operator_token_sha256="0" * 64)
        with pytest.raises(ValidationError, match="OPSMETER_CLICKHOUSE_URL"):
            ReportingSettings(runtime=prod)
        served = prod.model_copy(update={"clickhouse_url": "https://ch.internal:8443/opsmeter"})
        assert ReportingSettings(runtime=served).runtime.clickhouse_url
