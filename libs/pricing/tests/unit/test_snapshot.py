import json
import re
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from typing import Any

import genai_prices
from genai_prices.data import providers as genai_providers
from genai_prices.types import ConditionalPrice, ModelPrice, TieredPrices, TimeOfDateConstraint

import opsmeter_pricing
from opsmeter_pricing.catalog import PriceCatalog, catalog_digest
from opsmeter_pricing.snapshot import CATALOG_PATH, _collect, _rule, build_catalog, render_catalog

KEPT_PRICE_KEYS = {"input_mtok", "output_mtok", "cache_read_mtok", "output_reasoning_mtok"}


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
                        if key.endswith("_micro_usd_per_mtok") and value is not None:
                            assert type(value) is int, (provider["id"], model["id"], key)
                            assert value >= 0, (provider["id"], model["id"], key)

    def test_sits_inside_the_package_directory(self) -> None:
        package_dir = resources.files(opsmeter_pricing)
        assert package_dir.joinpath("catalog.json").is_file()
        assert CATALOG_PATH.parent.name == "opsmeter_pricing"


def _comparable_models() -> list[tuple[str, str, str]]:
    """(provider, model id, a ref it matches) for every model genai-prices prices the way we do.

    That is: kept price keys only, no tiers and no time-of-day prices (start-date periods are fine).
    """
    out = []
    for provider in genai_providers:
        for model in provider.models:
            entries = [ConditionalPrice(prices=model.prices)] if isinstance(model.prices, ModelPrice) else model.prices
            if any(isinstance(entry.constraint, TimeOfDateConstraint) for entry in entries):
                continue
            values = [v for entry in entries for k, v in entry.prices.__dict__.items() if v is not None]
            keys = {k for entry in entries for k, v in entry.prices.__dict__.items() if v is not None}
            if not keys or not keys <= KEPT_PRICE_KEYS or any(isinstance(v, TieredPrices) for v in values):
                continue
            aliases = [model.id, *_collect(_rule(model.match), "equals")]
            if ref := next((a for a in aliases if model.is_match(a)), None):
                out.append((provider.id, model.id, ref))
    return out


class TestAgainstGenaiPrices:
    def test_same_model_and_cost_as_genai_prices(self) -> None:
        catalog = PriceCatalog.load_default()
        models = _comparable_models()
        assert len(models) > 1000
        assert ("openrouter", "perplexity/sonar-deep-research", "perplexity/sonar-deep-research") in models
        tokens = {"input": 812_345, "output": 164_321, "cached": 200_017, "reasoning": 50_003}
        usage = genai_prices.Usage(
            input_tokens=tokens["input"],
            output_tokens=tokens["output"],
            cache_read_tokens=tokens["cached"],
            output_reasoning_tokens=tokens["reasoning"],
        )
        mismatches = []
        for at in (datetime(2025, 6, 1, tzinfo=UTC), datetime(2027, 6, 1, tzinfo=UTC)):
            for provider_id, model_id, ref in models:
                expected = genai_prices.calc_price(usage, ref, provider_id=provider_id, genai_request_timestamp=at)
                micro = int((expected.total_price * 1_000_000).quantize(Decimal(1), rounding=ROUND_HALF_UP))
                quote = catalog.price(provider_id, ref, at, *tokens.values())
                if (quote.model_normalized, quote.cost_micro_usd) != (model_id, micro):
                    mismatches.append((at, provider_id, ref, quote, micro))
        assert mismatches == []
