"""A workspace's own prices win over the catalog for the models they name, from their effective date."""

from datetime import UTC, datetime

from opsmeter_pricing import PriceCatalog, Usage
from opsmeter_pricing.workspace import WorkspacePrice, WorkspacePrices, quote_for

DEC_6 = datetime(2026, 12, 6, tzinfo=UTC)


def price(model: str, start: datetime, inp: int, out: int, provider: str | None = None) -> WorkspacePrice:
    return WorkspacePrice(model, start, inp, out, provider=provider)


class TestWorkspacePrices:
    def test_an_exact_name_beats_a_pattern_and_the_latest_date_wins(self) -> None:
        prices = WorkspacePrices(
            3,
            (
                price("acme-*", DEC_6, 1, 1),
                price("acme-llama-70b", DEC_6, 500_000, 1_000_000),
                price("acme-llama-70b", datetime(2026, 12, 10, tzinfo=UTC), 400_000, 800_000),
            ),
        )
        assert prices.find("acme", ["acme-llama-70b"], datetime(2026, 12, 7, tzinfo=UTC)) == prices.rows[1]
        assert prices.find("acme", ["ACME-Llama-70B"], datetime(2026, 12, 11, tzinfo=UTC)) == prices.rows[2]
        assert prices.find("acme", ["acme-mistral"], datetime(2026, 12, 7, tzinfo=UTC)) == prices.rows[0]
        assert prices.find("acme", ["acme-llama-70b"], datetime(2026, 12, 5, 23, 59, tzinfo=UTC)) is None

    def test_a_provider_row_prices_only_that_providers_calls(self) -> None:
        prices = WorkspacePrices(1, (price("gpt-4o", DEC_6, 1_000_000, 2_000_000, provider="azure"),))
        assert prices.find("Azure", ["gpt-4o"], DEC_6) is not None
        assert prices.find("openai", ["gpt-4o"], DEC_6) is None

    def test_quote_uses_the_workspace_price_then_the_catalog(self) -> None:
        catalog = PriceCatalog.load_default()
        prices = WorkspacePrices(1, (price("gpt-4o-mini", DEC_6, 100_000, 200_000),))
        tariff = catalog.tariff("openai", "gpt-4o-mini-2024-07-18")
        usage = Usage(1_000_000, 1_000_000)
        own = quote_for(tariff, prices, "openai", "gpt-4o-mini-2024-07-18", DEC_6, usage)
        assert (own.cost_micro_usd, own.price_row, own.model_normalized) == (
            300_000,
            "workspace:gpt-4o-mini@2026-12-06",
            "gpt-4o-mini",
        )
        before = quote_for(tariff, prices, "openai", "gpt-4o-mini", datetime(2026, 12, 5, tzinfo=UTC), usage)
        assert (before.cost_micro_usd, before.price_row) == (750_000, "openai/gpt-4o-mini")  # $0.15 + $0.60

    def test_1h_cache_writes_reach_the_catalog_and_are_cache_writes_at_a_workspace_price(self) -> None:
        catalog = PriceCatalog.load_default()
        tariff = catalog.tariff("anthropic", "claude-sonnet-4-5")
        usage = Usage(101_000, 500, cache_write=100_000, cache_write_1h=100_000)
        assert quote_for(tariff, None, "anthropic", "claude-sonnet-4-5", DEC_6, usage).cost_micro_usd == 610_500
        row = WorkspacePrice(
            "claude-sonnet-4-5", DEC_6, 2_000_000, 10_000_000, cache_write_input_micro_usd_per_mtok=2_500_000
        )
        own = quote_for(tariff, WorkspacePrices(1, (row,)), "anthropic", "claude-sonnet-4-5", DEC_6, usage)
        # $2 input, $2.50 cache writes (the row has no 1-hour price), $10 output
        assert own.cost_micro_usd == 2_000 + 250_000 + 5_000
