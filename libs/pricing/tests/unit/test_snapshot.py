import json
import random
import re
import warnings
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from typing import Any

import genai_prices
import pytest
from genai_prices.data import providers as genai_providers
from genai_prices.types import ModelPrice

import opsmeter_pricing
from opsmeter_pricing import Usage
from opsmeter_pricing.catalog import PriceCatalog, catalog_digest
from opsmeter_pricing.snapshot import (
    CATALOG_PATH,
    CORRECTIONS,
    _collect,
    _corrected,
    _rule,
    _with_1h_writes,
    build_catalog,
    render_catalog,
)


def _checked_in() -> str:
    return resources.files("opsmeter_pricing").joinpath("catalog.json").read_text(encoding="utf-8")


def _walk(node: Any, path: str = "$") -> list[str]:
    if isinstance(node, float):
        return [path]
    if isinstance(node, dict):
        return [hit for key, value in node.items() for hit in _walk(value, f"{path}.{key}")]
    if isinstance(node, list):
        return [hit for i, value in enumerate(node) for hit in _walk(value, f"{path}[{i}]")]
    return []


class TestSnapshotDrift:
    def test_checked_in_catalog_equals_a_fresh_snapshot(self) -> None:
        assert _checked_in() == render_catalog(build_catalog()), (
            "catalog.json is stale: run `python -m opsmeter_pricing.snapshot --write`"
        )

    def test_version_names_source_and_content_digest(self) -> None:
        data = json.loads(_checked_in())
        content = {k: v for k, v in data.items() if k != "version"}
        assert data["version"] == f"genai-prices-{genai_prices.__version__}+{catalog_digest(content)[:12]}"
        assert re.fullmatch(r"genai-prices-[\w.]+\+[0-9a-f]{12}", PriceCatalog.load_default().version)


class TestCatalogFile:
    def test_contains_no_floats(self) -> None:
        assert _walk(json.loads(_checked_in())) == []

    def test_prices_are_non_negative_integers(self) -> None:
        data = json.loads(_checked_in())
        for provider in data["providers"]:
            for model in provider["models"]:
                for period in model["prices"]:
                    for key, value in period.items():
                        if key.startswith("micro_usd") or key.endswith("_micro_usd_per_mtok"):
                            values = (
                                [value]
                                if not isinstance(value, dict)
                                else [value["base"]]
                                + [number for tier in value["tiers"] for number in (tier["start"], tier["price"])]
                            )
                            for number in values:
                                assert number is None or (type(number) is int and number >= 0), (model["id"], key)

    def test_sits_inside_the_package_directory(self) -> None:
        package_dir = resources.files(opsmeter_pricing)
        assert package_dir.joinpath("catalog.json").is_file()
        assert CATALOG_PATH.parent.name == "opsmeter_pricing"


def _priced_models() -> list[tuple[str, str, str]]:
    """(provider, model id, a ref it matches) for every genai-prices model a ref can name."""
    out = []
    for provider in genai_providers:
        for model in provider.models:
            aliases = [model.id, *_collect(_rule(model.match), "equals")]
            if ref := next((a for a in aliases if model.is_match(a)), None):
                out.append((provider.id, model.id, ref))
    return out


def _adjusted_rows() -> set[str]:
    """``provider/model`` of the rows whose genai-prices price is a float artifact (0.0833…), kept rounded."""
    return {line.split(" ", 1)[0] for line in json.loads(_checked_in())["adjustments"] if " rounded to " in line}


def _corrected_tiers() -> dict[str, int]:
    """``provider/model`` of the rows given a tier genai-prices lacks (``CORRECTIONS``), and where it starts."""
    return {f"{fix.provider}/{fix.model}": fix.start for fix in CORRECTIONS}


def _reference_micro_usd(usage: genai_prices.Usage, ref: str, provider_id: str, at: datetime) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # genai-prices warns about price keys it does not charge by tokens
        expected = genai_prices.calc_price(usage, ref, provider_id=provider_id, genai_request_timestamp=at)
    return int((expected.total_price * 1_000_000).quantize(Decimal(1), rounding=ROUND_HALF_UP))


class TestAgainstGenaiPrices:
    def test_every_model_costs_what_calc_price_says(self) -> None:
        """Every model genai-prices knows, at small and long contexts, with cache reads and writes and reasoning:
        the same model and the same micro-dollar (half up) as ``calc_price``, or unpriced where it charges 0."""
        catalog = PriceCatalog.load_default()
        models = _priced_models()
        assert len(models) > 2000
        adjusted, corrected = _adjusted_rows(), _corrected_tiers()
        rng = random.Random(24)
        mismatches, unpriced = [], 0
        for provider_id, model_id, ref in models:
            for _ in range(2):
                inp = rng.choice([rng.randint(0, 5_000), rng.randint(150_000, 400_000), rng.randint(0, 2_000_000)])
                cache_read = rng.randint(0, inp // 2)
                cache_write = rng.randint(0, (inp - cache_read) // 2)
                out = rng.randint(0, 60_000)
                reasoning = rng.randint(0, out)
                at = datetime(2026, 12, 7, tzinfo=UTC) + timedelta(minutes=rng.randint(-400 * 24 * 60, 400 * 24 * 60))
                usage = genai_prices.Usage(
                    input_tokens=inp,
                    output_tokens=out,
                    cache_read_tokens=cache_read,
                    cache_write_tokens=cache_write,
                    output_reasoning_tokens=reasoning,
                )
                micro = _reference_micro_usd(usage, ref, provider_id, at)
                quote = catalog.price(provider_id, ref, at, inp, out, cache_read, reasoning, cache_write)
                if inp > corrected.get(f"{provider_id}/{model_id}", inp):
                    continue  # a tier genai-prices lacks: TestCorrections
                if not quote.priced:
                    unpriced += 1
                    assert micro == 0, (provider_id, ref)
                elif f"{provider_id}/{model_id}" in adjusted:
                    assert abs(quote.cost_micro_usd - micro) <= 1, (provider_id, ref, quote, micro)
                elif (quote.model_normalized, quote.cost_micro_usd) != (model_id, micro):
                    mismatches.append((at, provider_id, ref, quote, micro))
        assert mismatches == []
        assert unpriced < len(models) // 5

    def test_1h_cache_writes_cost_what_calc_price_says(self) -> None:
        """Every genai-prices model with a 1-hour cache-write price, at small and long contexts: the same
        micro-dollar as ``calc_price`` for a usage with 1-hour writes among its cache writes."""
        catalog = PriceCatalog.load_default()
        rng = random.Random(7)
        corrected = _corrected_tiers()
        checked = 0
        for provider in genai_providers:
            for model in provider.models:
                entries = [model.prices] if isinstance(model.prices, ModelPrice) else [c.prices for c in model.prices]
                if all(entry.cache_write_1h_mtok is None for entry in entries) or not model.is_match(model.id):
                    continue
                inp = rng.choice([rng.randint(1_000, 150_000), rng.randint(200_001, 900_000)])
                if inp > corrected.get(f"{provider.id}/{model.id}", inp):
                    continue
                writes = rng.randint(0, inp // 2)
                one_hour = rng.randint(0, writes)
                at = datetime(2026, 12, 7, tzinfo=UTC)
                usage = genai_prices.Usage(input_tokens=inp, output_tokens=500, cache_write_tokens=writes)
                usage.cache_write_1h_tokens = one_hour
                quote = catalog.price(provider.id, model.id, at, inp, 500, 0, 0, writes, one_hour)
                assert quote.cost_micro_usd == _reference_micro_usd(usage, model.id, provider.id, at), model.id
                checked += 1
        assert checked >= 30

    def test_audio_tokens_cost_what_calc_price_says(self) -> None:
        catalog = PriceCatalog.load_default()
        at = datetime(2026, 12, 7, tzinfo=UTC)
        audio_models = [
            (provider.id, model.id)
            for provider in genai_providers
            for model in provider.models
            if isinstance(model.prices, ModelPrice) and model.prices.input_audio_mtok is not None
        ]
        assert len(audio_models) >= 5
        for provider_id, model_id in audio_models:
            usage = genai_prices.Usage(
                input_tokens=90_000, output_tokens=4_000, input_audio_tokens=30_000, output_audio_tokens=1_000
            )
            usage.cache_read_tokens = 20_000
            usage.cache_audio_read_tokens = 5_000
            tokens = Usage(
                90_000, 4_000, cache_read=20_000, input_audio=30_000, output_audio=1_000, cache_audio_read=5_000
            )
            quote = catalog.tariff(provider_id, model_id).price_usage(at, tokens)
            assert quote.cost_micro_usd == _reference_micro_usd(usage, model_id, provider_id, at), model_id


class TestCorrections:
    def test_claude_sonnet_4_gets_anthropic_long_context_tier(self) -> None:
        data = json.loads(_checked_in())
        anthropic = next(p for p in data["providers"] if p["id"] == "anthropic")
        sonnet_4 = next(m for m in anthropic["models"] if m["id"] == "claude-sonnet-4-0")
        (period,) = sonnet_4["prices"]
        assert period["input_micro_usd_per_mtok"] == {
            "base": 3_000_000,
            "tiers": [{"start": 200_000, "price": 6_000_000}],
        }
        assert period["output_micro_usd_per_mtok"]["tiers"] == [{"start": 200_000, "price": 22_500_000}]
        assert period["cached_input_micro_usd_per_mtok"]["tiers"] == [{"start": 200_000, "price": 600_000}]
        assert period["cache_write_input_micro_usd_per_mtok"]["tiers"] == [{"start": 200_000, "price": 7_500_000}]
        assert period["cache_write_1h_input_micro_usd_per_mtok"]["tiers"] == [{"start": 200_000, "price": 12_000_000}]
        listed = [line for line in data["adjustments"] if line.startswith("anthropic/claude-sonnet-4-0 ")]
        assert len(listed) == 5
        assert all("long-context-pricing" in line for line in listed)

    def test_a_correction_genai_prices_no_longer_needs_fails_the_snapshot(self) -> None:
        from genai_prices.types import Tier as GenaiTier
        from genai_prices.types import TieredPrices

        fixed = ModelPrice(
            input_mtok=TieredPrices(base=Decimal(3), tiers=[GenaiTier(start=200_000, price=Decimal(6))]),
            output_mtok=Decimal(15),
        )
        with pytest.raises(ValueError, match="review CORRECTIONS"):
            _corrected("anthropic", "claude-sonnet-4-0", fixed, [])
        assert _corrected("anthropic", "claude-other", fixed, [])["input_mtok"] == fixed.input_mtok


class TestDerived1hWrites:
    def test_a_claude_row_without_1h_price_gets_twice_input(self) -> None:
        adjustments: list[str] = []
        source = {"input_mtok": Decimal(15), "cache_write_mtok": Decimal("18.75"), "cache_write_1h_mtok": None}
        derived = _with_1h_writes("claude-opus-4", "openrouter/anthropic/claude-opus-4", source, adjustments)
        assert derived["cache_write_1h_mtok"] == Decimal(30)
        assert adjustments == [
            "openrouter/anthropic/claude-opus-4 cache_write_1h_mtok: none in genai-prices; 2x input = 30 USD "
            "(Anthropic's 1-hour cache write price)"
        ]

    @pytest.mark.parametrize(
        ("model_id", "write", "one_hour"),
        [
            ("claude-x", Decimal(4), None),  # not Anthropic's 1.25x: the provider prices cache its own way
            ("claude-x", None, None),  # no cache-write price at all
            ("claude-x", Decimal("3.75"), Decimal(5)),  # genai-prices' own 1-hour price wins
            ("gpt-x", Decimal("3.75"), None),  # not a Claude model
        ],
    )
    def test_left_as_it_is_otherwise(self, model_id: str, write: Decimal | None, one_hour: Decimal | None) -> None:
        adjustments: list[str] = []
        source = {"input_mtok": Decimal(3), "cache_write_mtok": write, "cache_write_1h_mtok": one_hour}
        assert _with_1h_writes(model_id, f"acme/{model_id}", source, adjustments) == source
        assert adjustments == []

    def test_checked_in_catalog_prices_anthropic_1h_writes_at_twice_input(self) -> None:
        catalog = PriceCatalog.load_default()
        at = datetime(2026, 12, 7, tzinfo=UTC)
        # Bedrock's Claude Opus 4: genai-prices has no 1-hour price; 1,000 input + 9,000 1-hour writes
        quote = catalog.price("aws", "anthropic.claude-opus-4-20250514-v1:0", at, 10_000, 0, 0, 0, 9000, 9000)
        assert quote.cost_micro_usd == 1000 * 15 + 9000 * 30
