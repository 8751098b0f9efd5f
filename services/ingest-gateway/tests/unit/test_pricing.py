"""The gateway's cost against genai-prices' own ``calc_price``: what a finance team reconciles against.

Generated calls go through the ingest use case with the real catalog price book (in-memory admission and
sink); the cost on the published event must equal ``calc_price`` rounded half up to the micro-dollar, or the
event must be marked unpriced (genai-prices charges such a model nothing per token).
"""

import json
import random
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from typing import Any

import genai_prices
import pytest
from genai_prices.data import providers as genai_providers
from genai_prices.types import ConditionalPrice, ModelPrice, TieredPrices

from opsmeter_contracts import LlmRequestIngested, decode_event
from opsmeter_ingest.adapters.pricing import CatalogPriceBook
from opsmeter_ingest.ingest import Ingestor
from opsmeter_ingest.outcomes import Accepted, Invalid
from opsmeter_ingest.testing import InMemoryAdmission, InMemoryRejections, InMemorySettlement, InMemorySink
from opsmeter_pricing import PriceCatalog
from opsmeter_runtime.auth import Principal

CALLER = Principal(workspace_id="ws_abcdefgh12", credential_id="key_1", kind="api_key", role="ingest")
CALLS = 300


@dataclass(frozen=True)
class Call:
    provider: str
    model: str
    at: datetime
    input: int
    output: int
    cache_read: int
    cache_write: int
    reasoning: int

    def body(self, index: int) -> dict[str, Any]:
        return {
            "externalRequestId": f"req_{index}",
            "provider": self.provider,
            "model": self.model,
            "inputTokens": self.input,
            "outputTokens": self.output,
            "cachedInputTokens": self.cache_read,
            "cacheWriteInputTokens": self.cache_write,
            "reasoningTokens": self.reasoning,
            "timestamp": self.at.isoformat(),
        }

    def reference_micro_usd(self) -> int:
        usage = genai_prices.Usage(
            input_tokens=self.input,
            output_tokens=self.output,
            cache_read_tokens=self.cache_read,
            cache_write_tokens=self.cache_write,
            output_reasoning_tokens=self.reasoning,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # price keys genai-prices does not charge by tokens
            price = genai_prices.calc_price(
                usage, self.model, provider_id=self.provider, genai_request_timestamp=self.at
            )
        return int((price.total_price * 1_000_000).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _prices(model: Any) -> list[ModelPrice]:
    entries = [ConditionalPrice(prices=model.prices)] if isinstance(model.prices, ModelPrice) else model.prices
    return [entry.prices for entry in entries]


def _kinds(model: Any) -> set[str]:
    kinds = set()
    for price in _prices(model):
        values = {key: value for key, value in price.__dict__.items() if value is not None}
        if any(isinstance(value, TieredPrices) for value in values.values()):
            kinds.add("tiered")
        kinds |= {key for key in ("cache_write_mtok", "cache_read_mtok", "output_reasoning_mtok") if key in values}
    return kinds


def _adjusted_rows() -> set[str]:
    text = resources.files("opsmeter_pricing").joinpath("catalog.json").read_text(encoding="utf-8")
    return {line.split(" ", 1)[0] for line in json.loads(text)["adjustments"]}


def generate_calls(now: datetime) -> list[Call]:
    """Calls across every provider, weighted to the calls that cost the most: long contexts past a tier, cache
    reads and writes, reasoning; at times over the last 7 days (the gateway takes no older ones)."""
    rng = random.Random(24)
    adjusted = _adjusted_rows()
    by_kind: dict[str, list[tuple[str, str]]] = {"tiered": [], "cache_write_mtok": [], "output_reasoning_mtok": []}
    every: dict[str, list[tuple[str, str]]] = {}
    for provider in genai_providers:
        for model in provider.models:
            if not model.is_match(model.id) or f"{provider.id}/{model.id}" in adjusted:
                continue
            every.setdefault(provider.id, []).append((provider.id, model.id))
            for kind in _kinds(model) & by_kind.keys():
                by_kind[kind].append((provider.id, model.id))
    picks = [rng.choice(models) for models in every.values()]  # one model of each provider
    picks += rng.sample(by_kind["tiered"], 60) + rng.sample(by_kind["cache_write_mtok"], 60)
    picks += by_kind["output_reasoning_mtok"]
    flat = [named for models in every.values() for named in models]
    picks += rng.sample(flat, CALLS - len(picks))
    calls = []
    for provider_id, model_id in picks:
        long_context = rng.random() < (0.8 if (provider_id, model_id) in by_kind["tiered"] else 0.4)
        inp = rng.randint(200_001, 1_000_000) if long_context else rng.randint(0, 150_000)
        cache_read = rng.randint(0, inp // 2)
        cache_write = rng.randint(0, (inp - cache_read) // 2)
        out = rng.randint(0, 64_000)
        at = now - timedelta(minutes=rng.randint(60, 6 * 24 * 60))
        calls.append(Call(provider_id, model_id, at, inp, out, cache_read, cache_write, rng.randint(0, out)))
    return calls


async def ingest(calls: list[Call]) -> list[LlmRequestIngested]:
    admission = InMemoryAdmission(rate_limit=10_000)
    sink = InMemorySink()
    ingestor = Ingestor(
        admission=admission,
        sink=sink,
        prices=CatalogPriceBook(PriceCatalog.load_default()),
        settlement=InMemorySettlement(admission),
        rejections=InMemoryRejections(),
    )
    events: list[LlmRequestIngested] = []
    for start in range(0, len(calls), 100):
        batch = [call.body(start + i) for i, call in enumerate(calls[start : start + 100])]
        result = await ingestor.ingest(CALLER, batch)
        assert all(isinstance(o, Accepted) for o in result.outcomes), result.outcomes
    for published in sink.published:
        event = decode_event(published.value)
        assert isinstance(event, LlmRequestIngested)
        events.append(event)
    return events


class TestGatewayCostEqualsCalcPrice:
    async def test_generated_calls_cost_what_calc_price_says_or_are_unpriced(self) -> None:
        calls = generate_calls(datetime.now(UTC))
        assert len(calls) >= 200
        nameable = {p.id for p in genai_providers if any(m.is_match(m.id) for m in p.models)}
        assert {c.provider for c in calls} == nameable
        assert sum(c.input > 200_000 for c in calls) >= 90
        assert sum(c.cache_write > 0 for c in calls) >= 200
        events = await ingest(calls)
        assert len(events) == len(calls)
        mismatches, tiered, unpriced = [], 0, 0
        for call, event in zip(calls, events, strict=True):
            p = event.payload
            expected = call.reference_micro_usd()
            if not p.priced:
                unpriced += 1
                assert (p.cost_micro_usd, expected, p.price_row) == (0, 0, None), call
                continue
            tiered += p.price_tier_start_tokens is not None
            if p.cost_micro_usd != expected:
                mismatches.append((call, p.cost_micro_usd, expected))
        assert mismatches == []
        assert tiered >= 50
        assert unpriced < len(calls) // 4

    async def test_the_event_names_the_price_it_was_charged_at(self) -> None:
        now = datetime.now(UTC)
        long_call = Call("google", "gemini-2.5-pro", now - timedelta(hours=1), 250_000, 1_000, 0, 0, 0)
        short_call = Call("anthropic", "claude-sonnet-4-5", now - timedelta(hours=1), 10_000, 100, 2_000, 4_000, 0)
        long_event, short_event = await ingest([long_call, short_call])
        assert long_event.payload.cost_micro_usd == 640_000  # $0.64: all tokens at the >200K tier
        assert (long_event.payload.price_row, long_event.payload.price_tier_start_tokens) == (
            "google/gemini-2.5-pro",
            200_000,
        )
        assert long_event.payload.price_catalog_version == PriceCatalog.load_default().version
        # 4,000 input at $3 + 2,000 cache reads at $0.30 + 4,000 cache writes at $3.75 + 100 output at $15
        assert short_event.payload.cost_micro_usd == 12_000 + 600 + 15_000 + 1_500
        assert short_event.payload.cache_write_input_tokens == 4_000
        assert short_event.payload.price_tier_start_tokens is None


class TestCacheTokensAreParts:
    @pytest.mark.parametrize(("reads", "writes"), [(600, 500), (0, 1001)])
    async def test_cache_reads_and_writes_above_input_are_rejected(self, reads: int, writes: int) -> None:
        admission = InMemoryAdmission(rate_limit=10_000)
        ingestor = Ingestor(
            admission=admission,
            sink=InMemorySink(),
            prices=CatalogPriceBook(PriceCatalog.load_default()),
            settlement=InMemorySettlement(admission),
            rejections=InMemoryRejections(),
        )
        body = Call("anthropic", "claude-sonnet-4-5", datetime.now(UTC), 1000, 10, reads, writes, 0).body(1)
        [outcome] = (await ingestor.ingest(CALLER, [body])).outcomes
        assert isinstance(outcome, Invalid)
        assert [e.field for e in outcome.errors] == ["cacheWriteInputTokens"]


class TestAnthropicBillsAsTheAuditFound:
    """The audit's two examples, through the ingest use case: the event's cost is what Anthropic bills."""

    async def test_claude_sonnet_4_long_context_and_1h_cache_writes(self) -> None:
        now = datetime.now(UTC) - timedelta(hours=1)
        long_context = Call("anthropic", "claude-sonnet-4-20250514", now, 250_000, 2_000, 0, 0, 0).body(1)
        one_hour = {
            **Call("anthropic", "claude-sonnet-4-5", now, 101_000, 500, 0, 100_000, 0).body(2),
            "cacheWrite1hInputTokens": 100_000,
        }
        old_style = Call("anthropic", "claude-sonnet-4-5", now, 101_000, 500, 0, 100_000, 0).body(3)
        sonnet_4, sonnet_4_5, without_1h = await ingest_bodies([long_context, one_hour, old_style])
        assert (sonnet_4.payload.cost_micro_usd, sonnet_4.payload.price_tier_start_tokens) == (1_545_000, 200_000)
        assert (sonnet_4_5.payload.cost_micro_usd, sonnet_4_5.payload.cache_write_1h_input_tokens) == (610_500, 100_000)
        assert (without_1h.payload.cost_micro_usd, without_1h.payload.cache_write_1h_input_tokens) == (385_500, 0)


async def ingest_bodies(bodies: list[dict[str, Any]]) -> list[LlmRequestIngested]:
    admission = InMemoryAdmission(rate_limit=10_000)
    sink = InMemorySink()
    ingestor = Ingestor(
        admission=admission,
        sink=sink,
        prices=CatalogPriceBook(PriceCatalog.load_default()),
        settlement=InMemorySettlement(admission),
        rejections=InMemoryRejections(),
    )
    result = await ingestor.ingest(CALLER, bodies)
    assert all(isinstance(o, Accepted) for o in result.outcomes), result.outcomes
    events = [decode_event(published.value) for published in sink.published]
    assert all(isinstance(e, LlmRequestIngested) for e in events)
    return [e for e in events if isinstance(e, LlmRequestIngested)]
