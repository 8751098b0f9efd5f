"""Reconciliation with the provider's bill on real ClickHouse: the fixture reports (shaped as OpenAI and Anthropic
document their responses, see ``tests/fixtures/reconciliation/README.md``) bill three days; the calls of the
middle day were never sent, and reconciliation names that gap."""

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from services.reporting.tests.conftest import build_telemetry

from opsmeter_pricing import PriceCatalog
from opsmeter_reporting.adapters.clickhouse import ClickHouseTelemetryStore
from opsmeter_reporting.domain import UsageWindow
from opsmeter_reporting.reconcile import (
    BilledLine,
    ReconciledDay,
    ReportInvalid,
    anthropic_cost_report,
    billed_window,
    csv_costs,
    loads,
    openai_costs,
    reconcile,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "reconciliation"
STORED_DAYS = (date(2026, 11, 10), date(2026, 11, 12))


def normalizer(provider: str) -> Callable[[str], str]:
    catalog = PriceCatalog.load_default()
    return lambda model: catalog.normalize_model(provider, model)


async def stored(store: ClickHouseTelemetryStore, ws: str, provider: str, model: str) -> None:
    """One $1.20 call on each stored day (none on 2026-11-11)."""
    await store.append(
        [
            build_telemetry(
                ws,
                cost=1_200_000,
                provider=provider,
                model=model,
                at=datetime.combine(day, datetime.min.time(), tzinfo=UTC).replace(hour=9),
            )
            for day in STORED_DAYS
        ]
    )


async def reconciled(
    store: ClickHouseTelemetryStore, ws: str, provider: str, lines: list[BilledLine]
) -> list[ReconciledDay]:
    start, end = billed_window(lines)
    return reconcile(lines, await store.stored_days(ws, provider, UsageWindow(start, end)))


def summary(days: list[ReconciledDay]) -> list[tuple[str, str, int, int, str]]:
    return [(d.day.isoformat(), d.model, d.billed_micro_usd, d.gap_micro_usd, d.reason) for d in days]


class TestReconciliation:
    async def test_openai_costs_name_the_day_whose_records_are_missing(
        self, store: ClickHouseTelemetryStore, unique: str
    ) -> None:
        ws = f"ws_{unique}oai"
        await stored(store, ws, "openai", "gpt-4o-mini")
        lines = openai_costs(loads((FIXTURES / "openai_costs.json").read_bytes()), normalizer("openai"))
        days = await reconciled(store, ws, "openai", lines)
        assert summary(days) == [
            ("2026-11-10", "gpt-4o-mini", 1_200_000, 0, "matches"),
            ("2026-11-11", "gpt-4o-mini", 1_200_000, 1_200_000, "records_missing"),
            ("2026-11-12", "gpt-4o-mini", 1_200_000, 0, "matches"),
        ]
        assert "no calls" in days[1].explanation

    async def test_the_csv_export_reconciles_the_same(self, store: ClickHouseTelemetryStore, unique: str) -> None:
        ws = f"ws_{unique}csv"
        await stored(store, ws, "openai", "gpt-4o-mini")
        lines = csv_costs((FIXTURES / "openai_costs.csv").read_text(), normalizer("openai"))
        assert [d.reason for d in await reconciled(store, ws, "openai", lines)] == [
            "matches",
            "records_missing",
            "matches",
        ]

    async def test_anthropic_cost_report_names_missing_records_and_missing_cache_tokens(
        self, store: ClickHouseTelemetryStore, unique: str
    ) -> None:
        ws = f"ws_{unique}ant"
        await stored(store, ws, "anthropic", "claude-sonnet-4-5")
        lines = anthropic_cost_report(
            loads((FIXTURES / "anthropic_cost_report.json").read_bytes()), normalizer("anthropic")
        )
        assert sum(line.amount_micro_usd for line in lines) == 3 * 1_200_000 + 300_000  # cents -> micro-USD
        days = await reconciled(store, ws, "anthropic", lines)
        assert summary(days) == [
            ("2026-11-10", "claude-sonnet-4-5", 1_200_000, 0, "matches"),
            ("2026-11-11", "claude-sonnet-4-5", 1_200_000, 1_200_000, "records_missing"),
            ("2026-11-12", "claude-sonnet-4-5", 1_500_000, 300_000, "cache_tokens_missing"),
        ]

    def test_a_report_not_shaped_as_documented_names_where(self) -> None:
        document = loads((FIXTURES / "openai_costs.json").read_bytes())
        document["data"][1]["results"][0]["amount"]["value"] = "lots"
        with pytest.raises(ReportInvalid, match=r"data\[1\]\.results\[0\]\.amount\.value"):
            openai_costs(document, normalizer("openai"))
        with pytest.raises(ReportInvalid, match="page"):
            openai_costs(loads((FIXTURES / "anthropic_cost_report.json").read_bytes()), normalizer("openai"))
