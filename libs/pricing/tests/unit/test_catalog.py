import json
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmeter_pricing import PricePeriod, Rate, Tier
from opsmeter_pricing.catalog import (
    CatalogModel,
    CatalogProvider,
    MatchRule,
    PriceCatalog,
    PriceQuote,
    format_micro_usd,
    normalize_model,
    price,
)

AT = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def catalog() -> PriceCatalog:
    return PriceCatalog.load_default()


def _period(start: str | None, inp: int | None, out: int | None, cached: int | None = None, **more: Any) -> PricePeriod:
    def rate(value: int | None) -> Rate | None:
        return None if value is None else Rate(value)

    fields: dict[str, Any] = {"input": rate(inp), "output": rate(out), "cache_read": rate(cached), **more}
    return PricePeriod(effective_from=None if start is None else datetime.fromisoformat(start), **fields)


def _small_catalog(*periods: PricePeriod, reasoning: int | None = None) -> PriceCatalog:
    if reasoning is not None:
        periods = (*periods[:-1], replace(periods[-1], reasoning=Rate(reasoning)))
    model = CatalogModel(provider="acme", id="acme-1", match=MatchRule("starts_with", "acme-1"), prices=tuple(periods))
    return PriceCatalog("test-1", [CatalogProvider(id="acme", models=(model,))])


class TestPrice:
    def test_gpt_4o_mini_exact_micro_usd(self, catalog: PriceCatalog) -> None:
        model = next(m for p in catalog.providers if p.id == "openai" for m in p.models if m.id == "gpt-4o-mini")
        period = model.period_at(AT)
        assert period.input == Rate(150_000)  # $0.15 / 1M
        assert period.output == Rate(600_000)  # $0.60 / 1M
        # 812 * 0.15 + 164 * 0.60 = 121.8 + 98.4 = 220.2 micro-USD -> 220
        quote = catalog.price("openai", "gpt-4o-mini", AT, input_tokens=812, output_tokens=164)
        assert quote == PriceQuote("gpt-4o-mini", True, 220, catalog.version, (), "openai/gpt-4o-mini", None)

    def test_module_level_price_uses_default_catalog(self, catalog: PriceCatalog) -> None:
        assert price("openai", "gpt-4o-mini", AT, 812, 164) == catalog.price("openai", "gpt-4o-mini", AT, 812, 164)

    def test_cached_input_is_a_subset_charged_at_cache_price(self) -> None:
        cat = _small_catalog(_period(None, 2_000_000, 8_000_000, cached=500_000))
        # (1000 - 400) * 2 + 400 * 0.5 + 100 * 8 = 1200 + 200 + 800 micro-USD
        assert cat.price("acme", "acme-1", AT, 1000, 100, cached_input_tokens=400).cost_micro_usd == 2200

    def test_cached_input_without_cache_price_is_charged_as_input(self) -> None:
        cat = _small_catalog(_period(None, 2_000_000, 8_000_000))
        assert cat.price("acme", "acme-1", AT, 1000, 0, cached_input_tokens=400).cost_micro_usd == 2000

    def test_reasoning_is_part_of_output_unless_priced(self) -> None:
        plain = _small_catalog(_period(None, 0, 8_000_000))
        assert plain.price("acme", "acme-1", AT, 0, 1000, reasoning_tokens=600).cost_micro_usd == 8000
        priced = _small_catalog(_period(None, 0, 8_000_000), reasoning=3_000_000)
        # 400 * 8 + 600 * 3
        assert priced.price("acme", "acme-1", AT, 0, 1000, reasoning_tokens=600).cost_micro_usd == 5000

    def test_subset_counts_above_total_are_capped_with_warning(self) -> None:
        cat = _small_catalog(_period(None, 2_000_000, 8_000_000, cached=500_000))
        quote = cat.price("acme", "acme-1", AT, 100, 0, cached_input_tokens=300)
        assert quote.cost_micro_usd == 50
        assert any("cachedInputTokens (300) exceed inputTokens (100)" in w for w in quote.warnings)

    def test_rounds_once_half_up(self) -> None:
        cat = _small_catalog(_period(None, 500_000, 250_000))
        assert cat.price("acme", "acme-1", AT, 1, 0).cost_micro_usd == 1  # 0.5 -> 1
        assert cat.price("acme", "acme-1", AT, 1, 1).cost_micro_usd == 1  # 0.75 -> 1
        assert cat.price("acme", "acme-1", AT, 0, 1).cost_micro_usd == 0  # 0.25 -> 0
        assert cat.price("acme", "acme-1", AT, 3, 0).cost_micro_usd == 2  # 1.5 -> 2, not 1 + 1 + 1

    def test_unknown_model_is_unpriced_with_warning(self, catalog: PriceCatalog) -> None:
        quote = catalog.price("openai", "foo-1", AT, 812, 164)
        assert (quote.model_normalized, quote.priced, quote.cost_micro_usd) == ("foo-1", False, 0)
        assert quote.warnings == (f"model 'foo-1' is not in price catalog {catalog.version}; costUsd is 0 (unpriced)",)

    def test_model_without_token_prices_is_unpriced(self, catalog: PriceCatalog) -> None:
        quote = catalog.price("openai", "whisper-1", AT, 10, 0)
        assert (quote.model_normalized, quote.priced, quote.cost_micro_usd) == ("whisper-1", False, 0)
        assert "has no token prices" in quote.warnings[0]

    @settings(max_examples=300, deadline=None)
    @given(
        prices=st.tuples(
            st.integers(0, 80_000_000),
            st.integers(0, 80_000_000),
            st.none() | st.integers(0, 80_000_000),
            st.none() | st.integers(0, 80_000_000),
        ),
        tokens=st.tuples(*[st.integers(min_value=0, max_value=3_000_000)] * 4),
        dated=st.booleans(),
    )
    def test_charges_by_the_rules(
        self, prices: tuple[int, int, int | None, int | None], tokens: tuple[int, int, int, int], dated: bool
    ) -> None:
        """Each direction's subset at its own price (or the base one), capped at the total, rounded once;
        the same whether the model has one price period or several."""
        base_in, base_out, cache_price, reasoning_price = prices
        current = _period(None, base_in, base_out, cache_price)
        if reasoning_price is not None:
            current = replace(current, reasoning=Rate(reasoning_price))
        periods = (
            (_period(None, 1, 1), replace(current, effective_from=AT - timedelta(days=1))) if dated else (current,)
        )
        model = CatalogModel(provider="acme", id="acme-1", match=MatchRule("starts_with", "acme-1"), prices=periods)
        cat = PriceCatalog("test-1", [CatalogProvider(id="acme", models=(model,))])
        inp, out, cached, reasoning = tokens
        capped_cached, capped_reasoning = min(cached, inp), min(reasoning, out)
        total = (
            (inp - capped_cached) * base_in
            + capped_cached * (base_in if cache_price is None else cache_price)
            + (out - capped_reasoning) * base_out
            + capped_reasoning * (base_out if reasoning_price is None else reasoning_price)
        )
        quote = cat.price("acme", "acme-1", AT, inp, out, cached, reasoning)
        assert (quote.model_normalized, quote.priced) == ("acme-1", True)
        assert quote.cost_micro_usd == (total + 500_000) // 1_000_000
        assert len(quote.warnings) == (cached > inp) + (reasoning > out)

    @settings(max_examples=200, deadline=None)
    @given(
        named=st.sampled_from(
            [("openai", "gpt-4o-mini"), ("OpenAI", "openai/GPT-4o"), ("anthropic", "gpt-4o"), ("acme", "nope-1")]
        ),
        tokens=st.tuples(*[st.integers(min_value=0, max_value=3_000_000)] * 4),
    )
    def test_a_kept_tariff_prices_like_the_catalog(
        self, catalog: PriceCatalog, named: tuple[str, str], tokens: tuple[int, int, int, int]
    ) -> None:
        """A caller that resolves a model once (the gateway, per request) gets the catalog's quote for every call."""
        tariff = catalog.tariff(*named)
        assert tariff.price(AT, *tokens) == catalog.price(*named, AT, *tokens)

    def test_naive_datetime_rejected(self, catalog: PriceCatalog) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            catalog.price("openai", "gpt-4o-mini", datetime(2025, 6, 1), 1, 1)

    def test_negative_tokens_rejected(self, catalog: PriceCatalog) -> None:
        with pytest.raises(ValueError, match="outputTokens"):
            catalog.price("openai", "gpt-4o-mini", AT, 1, -1)

    def test_provider_matching_is_tolerant(self, catalog: PriceCatalog) -> None:
        expected = catalog.price("openai", "gpt-4o", AT, 1000, 1000)
        for provider in ("OpenAI", " openai ", "azure", "azure-openai", "unknown-gateway", ""):
            quote = catalog.price(provider, "gpt-4o", AT, 1000, 1000)
            assert (quote.model_normalized, quote.cost_micro_usd, quote.warnings) == (
                "gpt-4o",
                expected.cost_micro_usd,
                (),
            ), provider

    def test_model_from_another_provider_is_priced_with_warning(self, catalog: PriceCatalog) -> None:
        quote = catalog.price("anthropic", "gpt-4o", AT, 1000, 1000)
        assert quote.priced
        assert quote.cost_micro_usd == catalog.price("openai", "gpt-4o", AT, 1000, 1000).cost_micro_usd
        assert quote.warnings == (
            f"model 'gpt-4o' is not priced for provider 'anthropic' in price catalog {catalog.version}; "
            "priced as openai/gpt-4o",
        )


class TestNormalizeModel:
    @pytest.mark.parametrize(
        ("provider", "model", "expected"),
        [
            ("openai", "openai/gpt-4o", "gpt-4o"),
            ("openai", "  GPT-4o-Mini ", "gpt-4o-mini"),
            ("google", "models/gemini-1.5-pro", "gemini-1.5-pro"),
            ("anthropic", "anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet"),
            ("litellm", "anthropic/claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
            ("openai", "openai/foo-1", "foo-1"),
        ],
    )
    def test_strips_prefixes_and_case(self, catalog: PriceCatalog, provider: str, model: str, expected: str) -> None:
        assert catalog.normalize_model(provider, model) == expected

    @pytest.mark.parametrize(
        ("model", "expected"),
        [
            ("gpt-4o-2024-08-06", "gpt-4o"),  # a genai-prices alias
            ("gpt-4o-2031-02-03", "gpt-4o"),  # an unknown snapshot falls back to its family
            ("gpt-4o-mini-20310203", "gpt-4o-mini"),  # compact date
            ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),  # the catalog prices this snapshot itself
            ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ],
    )
    def test_dated_snapshots_map_to_family(self, catalog: PriceCatalog, model: str, expected: str) -> None:
        provider = "anthropic" if model.startswith("claude") else "openai"
        assert catalog.normalize_model(provider, model) == expected

    def test_provider_specific_ids_are_kept(self, catalog: PriceCatalog) -> None:
        assert catalog.normalize_model("openrouter", "openai/gpt-4o") == "openai/gpt-4o"

    def test_module_level_function(self) -> None:
        assert normalize_model("openai", "openai/gpt-4o") == "gpt-4o"


class TestEffectiveDates:
    def test_selects_the_period_in_effect(self) -> None:
        cat = _small_catalog(_period(None, 1_000_000, 0), _period("2025-03-01T00:00:00Z", 2_000_000, 0))
        before = datetime(2025, 2, 28, 23, 59, 59, tzinfo=UTC)
        at_start = datetime(2025, 3, 1, tzinfo=UTC)
        assert cat.price("acme", "acme-1", before, 1000, 0).cost_micro_usd == 1000
        assert cat.price("acme", "acme-1", at_start, 1000, 0).cost_micro_usd == 2000

    def test_compares_instants_across_time_zones(self) -> None:
        cat = _small_catalog(_period(None, 1_000_000, 0), _period("2025-03-01T00:00:00Z", 2_000_000, 0))
        # 2025-03-01 01:00 in UTC+02:00 is still 2025-02-28 in UTC
        local = datetime(2025, 3, 1, 1, 0, tzinfo=timezone(timedelta(hours=2)))
        assert cat.price("acme", "acme-1", local, 1000, 0).cost_micro_usd == 1000

    def test_real_catalog_price_change(self, catalog: PriceCatalog) -> None:
        # genai-prices doubles gemini-3.6-flash from 2027-01-01
        before = catalog.price("google", "gemini-3.6-flash", datetime(2026, 12, 31, tzinfo=UTC), 1_000_000, 0)
        after = catalog.price("google", "gemini-3.6-flash", datetime(2027, 1, 1, tzinfo=UTC), 1_000_000, 0)
        assert (before.cost_micro_usd, after.cost_micro_usd) == (750_000, 1_500_000)

    def test_cache_writes_are_a_subset_charged_at_cache_write_price(self) -> None:
        cat = _small_catalog(_period(None, 3_000_000, 15_000_000, cached=300_000, cache_write=Rate(3_750_000)))
        # (10000 - 2000 - 4000) * 3 + 2000 * 0.3 + 4000 * 3.75 + 100 * 15 = 12000 + 600 + 15000 + 1500
        quote = cat.price("acme", "acme-1", AT, 10_000, 100, cached_input_tokens=2000, cache_write_input_tokens=4000)
        assert quote.cost_micro_usd == 29_100

    def test_cache_writes_without_their_price_are_charged_as_input(self) -> None:
        cat = _small_catalog(_period(None, 3_000_000, 15_000_000))
        assert cat.price("acme", "acme-1", AT, 10_000, 0, cache_write_input_tokens=4000).cost_micro_usd == 30_000

    def test_context_tier_prices_every_token_above_its_start(self) -> None:
        tiered = _period(
            None,
            None,
            None,
            input=Rate(1_250_000, (Tier(200_000, 2_500_000),)),
            output=Rate(10_000_000, (Tier(200_000, 15_000_000),)),
        )
        cat = _small_catalog(tiered)
        at_start = cat.price("acme", "acme-1", AT, 200_000, 1000)
        above = cat.price("acme", "acme-1", AT, 250_000, 1000)
        assert (at_start.cost_micro_usd, at_start.tier_start) == (260_000, None)
        assert (above.cost_micro_usd, above.tier_start) == (640_000, 200_000)

    def test_gemini_2_5_pro_long_context_costs_the_tier(self, catalog: PriceCatalog) -> None:
        """The issue's example: 250,000 input and 1,000 output tokens cost $0.64, not the base tier's $0.3225."""
        quote = catalog.price("google", "gemini-2.5-pro", AT, 250_000, 1000)
        assert (quote.cost_micro_usd, quote.tier_start, quote.price_row) == (640_000, 200_000, "google/gemini-2.5-pro")

    @pytest.mark.parametrize("model", ["claude-sonnet-4-0", "claude-sonnet-4-20250514"])
    def test_claude_sonnet_4_long_context_costs_the_tier(self, catalog: PriceCatalog, model: str) -> None:
        """The audit's example: 250,000 input and 2,000 output tokens are billed $1.545 ($6 and $22.50 per MTok
        above 200K input tokens), not the base tier's $0.78."""
        quote = catalog.price("anthropic", model, AT, 250_000, 2000)
        assert (quote.cost_micro_usd, quote.tier_start, quote.price_row) == (
            1_545_000,
            200_000,
            "anthropic/claude-sonnet-4-0",
        )
        assert catalog.price("anthropic", model, AT, 200_000, 2000).cost_micro_usd == 630_000

    def test_claude_sonnet_4_tier_counts_cache_tokens_and_prices_them_long(self, catalog: PriceCatalog) -> None:
        """As for Sonnet 4.5: cache reads and writes count toward the 200K, and cost their long-context prices."""
        # 20,000 * 6 + 150,000 * 0.6 + 30,000 * 7.5 (5-minute) + 10,000 * 12 (1-hour) + 1,000 * 22.5
        quote = catalog.price("anthropic", "claude-sonnet-4-0", AT, 210_000, 1000, 150_000, 0, 40_000, 10_000)
        assert (quote.cost_micro_usd, quote.tier_start) == (577_500, 200_000)
        sonnet_4_5 = catalog.price("anthropic", "claude-sonnet-4-5", AT, 210_000, 1000, 150_000, 0, 40_000, 10_000)
        assert sonnet_4_5.cost_micro_usd == quote.cost_micro_usd

    def test_anthropic_1h_cache_writes_cost_twice_input(self, catalog: PriceCatalog) -> None:
        """The audit's example: Sonnet 4.5, 1,000 input, 100,000 cache-write tokens all 1-hour, 500 output is
        billed $0.6105 (1-hour writes at $6/MTok), not $0.3855 (the 5-minute $3.75)."""
        quote = catalog.price("anthropic", "claude-sonnet-4-5", AT, 101_000, 500, 0, 0, 100_000, 100_000)
        assert quote.cost_micro_usd == 610_500
        five_minutes = catalog.price("anthropic", "claude-sonnet-4-5", AT, 101_000, 500, 0, 0, 100_000)
        assert five_minutes.cost_micro_usd == 385_500
        # half and half: 1,000 * 3 + 50,000 * 3.75 + 50,000 * 6 + 500 * 15
        half = catalog.price("anthropic", "claude-sonnet-4-5", AT, 101_000, 500, 0, 0, 100_000, 50_000)
        assert half.cost_micro_usd == 498_000

    def test_1h_cache_writes_without_their_price_are_cache_writes(self) -> None:
        cat = _small_catalog(_period(None, 3_000_000, 15_000_000, cache_write=Rate(3_750_000)))
        both = cat.price(
            "acme", "acme-1", AT, 10_000, 0, cache_write_input_tokens=4000, cache_write_1h_input_tokens=4000
        )
        assert (
            both.cost_micro_usd
            == cat.price("acme", "acme-1", AT, 10_000, 0, cache_write_input_tokens=4000).cost_micro_usd
        )
        unpriced_writes = _small_catalog(_period(None, 3_000_000, 15_000_000))
        assert unpriced_writes.price("acme", "acme-1", AT, 10_000, 0, 0, 0, 4000, 4000).cost_micro_usd == 30_000

    def test_1h_cache_writes_above_cache_writes_are_capped_with_warning(self) -> None:
        cat = _small_catalog(
            _period(None, 3_000_000, 15_000_000, cache_write=Rate(3_750_000), cache_write_1h=Rate(6_000_000))
        )
        quote = cat.price("acme", "acme-1", AT, 10_000, 0, 0, 0, 1000, 4000)
        assert quote.cost_micro_usd == 9000 * 3 + 1000 * 6
        assert any("cacheWrite1hInputTokens (4000) exceed cacheWriteInputTokens (1000)" in w for w in quote.warnings)

    @settings(max_examples=200, deadline=None)
    @given(
        tokens=st.tuples(*[st.integers(min_value=0, max_value=3_000_000)] * 3),
        prices=st.tuples(st.none() | st.integers(0, 20_000_000), st.none() | st.integers(0, 20_000_000)),
    )
    def test_flat_and_general_paths_price_1h_writes_alike(
        self, tokens: tuple[int, int, int], prices: tuple[int | None, int | None]
    ) -> None:
        """The untiered fast path and ``charge`` (a tiered twin of the same prices) agree on 1-hour writes."""
        write, one_hour = prices
        more: dict[str, Any] = {}
        if write is not None:
            more["cache_write"] = Rate(write)
        if one_hour is not None:
            more["cache_write_1h"] = Rate(one_hour)
        flat = _small_catalog(_period(None, 3_000_000, 15_000_000, **more))
        tiered = _small_catalog(_period(None, None, 15_000_000, input=Rate(3_000_000, (Tier(10**9, 1),)), **more))
        inp, writes, one_h = sorted(tokens, reverse=True)
        assert flat.tariff("acme", "acme-1").flat is not None
        quotes = [c.price("acme", "acme-1", AT, inp, 10, 0, 0, writes, one_h) for c in (flat, tiered)]
        assert quotes[0].cost_micro_usd == quotes[1].cost_micro_usd

    def test_request_fee_is_charged_per_call(self, catalog: PriceCatalog) -> None:
        # perplexity sonar: $1/$1 per 1M tokens and $12 per 1K requests
        assert catalog.price("perplexity", "sonar", AT, 1000, 1000).cost_micro_usd == 2000 + 12_000

    def test_off_peak_time_of_day_period(self) -> None:
        off_peak = _period(None, 500_000, 500_000, time_of_day=(time(16, 30), time(0, 30)))
        cat = _small_catalog(_period(None, 1_000_000, 1_000_000), off_peak)
        assert cat.price("acme", "acme-1", datetime(2025, 6, 1, 12, tzinfo=UTC), 1000, 0).cost_micro_usd == 1000
        late = cat.price("acme", "acme-1", datetime(2025, 6, 1, 23, tzinfo=UTC), 1000, 0)
        assert (late.cost_micro_usd, late.price_row) == (500, "acme/acme-1@16:30-00:30Z")
        assert cat.price("acme", "acme-1", datetime(2025, 6, 2, 0, 30, tzinfo=UTC), 1000, 0).cost_micro_usd == 1000


class TestFormatMicroUsd:
    @pytest.mark.parametrize(
        ("micro", "text"),
        [
            (0, "0"),
            (1234, "0.001234"),
            (1, "0.000001"),
            (2_500_000, "2.5"),
            (3_000_000, "3"),
            (-1234, "-0.001234"),
        ],
    )
    def test_exact_decimal_strings(self, micro: int, text: str) -> None:
        assert format_micro_usd(micro) == text


class TestPublicCatalog:
    def test_camel_case_and_decimal_strings(self, catalog: PriceCatalog) -> None:
        body = catalog.to_public_json()
        assert body["catalogVersion"] == catalog.version
        mini = next(m for m in body["models"] if (m["provider"], m["model"]) == ("openai", "gpt-4o-mini"))
        assert "gpt-4o-mini-2024-07-18" in mini["aliases"]
        assert mini["prices"][0] == {
            "effectiveFrom": None,
            "timeOfDayUtc": None,
            "inputUsdPerMtok": "0.15",
            "outputUsdPerMtok": "0.6",
            "cachedInputUsdPerMtok": "0.075",
            "cacheWriteInputUsdPerMtok": None,
            "reasoningUsdPerMtok": None,
            "inputAudioUsdPerMtok": None,
            "outputAudioUsdPerMtok": None,
            "usdPerThousandRequests": None,
            "tiers": [],
        }
        json.dumps(body)

    def test_tiers_show_each_price_above_the_threshold(self, catalog: PriceCatalog) -> None:
        pro = next(m for m in catalog.models() if (m.provider, m.model) == ("google", "gemini-2.5-pro"))
        tiers = pro.model_dump(mode="json", by_alias=True)["prices"][-1]["tiers"]
        assert tiers[0]["aboveInputTokens"] == 200_000
        assert (tiers[0]["inputUsdPerMtok"], tiers[0]["outputUsdPerMtok"]) == ("2.5", "15")

    def test_effective_from_is_utc_iso(self, catalog: PriceCatalog) -> None:
        flash = next(m for m in catalog.models() if (m.provider, m.model) == ("google", "gemini-3.6-flash"))
        dumped = flash.model_dump(mode="json", by_alias=True)
        assert [p["effectiveFrom"] for p in dumped["prices"]] == [None, "2027-01-01T00:00:00Z"]


class TestLoading:
    def test_default_catalog_is_cached(self) -> None:
        assert PriceCatalog.load_default() is PriceCatalog.load_default()

    def test_rejects_floats(self) -> None:
        text = json.dumps({"version": "x", "providers": [{"id": "a", "models": [], "price": 1.5}]})
        with pytest.raises(ValueError, match="floats are not allowed"):
            PriceCatalog.from_json_text(text, verify=False)

    def test_rejects_content_not_matching_version(self) -> None:
        text = json.dumps({"version": "genai-prices-0.2.3+000000000000", "providers": []})
        with pytest.raises(ValueError, match="does not match its version"):
            PriceCatalog.from_json_text(text)
