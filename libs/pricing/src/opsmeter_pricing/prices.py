"""The price model as providers bill it, in integers: one period's rates and the cost of one call.

Prices are integer micro-USD per 1M tokens (per 1K requests for a request price). A rate may have
context-size tiers: as genai-prices models them, the tier whose start the call's *input tokens* exceed
prices every token of that unit (a cliff, not a marginal band). Token counts are nested as genai-prices
and OpenTelemetry nest them: cache reads, cache writes and audio input are subsets of ``input``, 1-hour cache
writes (Anthropic's ``ephemeral_1h_input_tokens``) a subset of cache writes, reasoning and audio output
subsets of ``output``. Each count is charged once, at the most specific unit the period
prices (the rest of ``input`` at the input price), summed, and rounded once, half up, to micro-USD.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import NamedTuple

__all__ = ["Charge", "PricePeriod", "Rate", "Tier", "Usage", "UsageError", "charge"]

TOKENS_PER_PRICE_UNIT = 1_000_000
REQUESTS_PER_PRICE_UNIT = 1_000


class Tier(NamedTuple):
    """From ``start`` input tokens (exclusive) on, every token of the unit costs ``price``."""

    start: int
    price: int


@dataclass(frozen=True, slots=True)
class Rate:
    """One unit's price: a base and optional context-size tiers (ascending starts)."""

    base: int
    tiers: tuple[Tier, ...] = ()

    def __post_init__(self) -> None:
        if self.base < 0 or any(t.price < 0 or t.start < 0 for t in self.tiers):
            raise ValueError("prices and tier starts must be >= 0")
        if list(self.tiers) != sorted(self.tiers):
            raise ValueError("tiers must be in ascending start order")

    def at(self, input_tokens: int) -> tuple[int, int | None]:
        """The price for a call with ``input_tokens``, and the start of its tier (None: the base)."""
        for tier in reversed(self.tiers):
            if input_tokens > tier.start:
                return tier.price, tier.start
        return self.base, None


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call; every subset is counted inside its parent too (``input``, ``output``)."""

    input: int
    output: int
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0
    input_audio: int = 0
    output_audio: int = 0
    cache_audio_read: int = 0
    cache_write_1h: int = 0
    """Cache writes with a 1-hour TTL: part of ``cache_write`` (the rest are 5-minute writes)."""


UNIT_DIMENSIONS: dict[str, frozenset[str]] = {
    "input": frozenset({"in"}),
    "output": frozenset({"out"}),
    "cache_read": frozenset({"in", "cache_read"}),
    "cache_write": frozenset({"in", "cache_write"}),
    "reasoning": frozenset({"out", "reasoning"}),
    "input_audio": frozenset({"in", "audio"}),
    "output_audio": frozenset({"out", "audio"}),
    "cache_audio_read": frozenset({"in", "audio", "cache_read"}),
    "cache_write_1h": frozenset({"in", "cache_write", "ttl_1h"}),
}
"""Each unit as the set of genai-prices dimensions it narrows to: a unit whose set contains another's is
nested inside it (``cache_audio_read`` is inside ``cache_read``, ``input_audio`` and ``input``)."""

RATE_FIELDS = tuple(UNIT_DIMENSIONS)


@dataclass(frozen=True, slots=True)
class PricePeriod:
    """The rates in effect from ``effective_from`` (None: always), or daily within ``time_of_day`` (UTC)."""

    effective_from: datetime | None = None
    input: Rate | None = None
    output: Rate | None = None
    cache_read: Rate | None = None
    cache_write: Rate | None = None
    reasoning: Rate | None = None
    input_audio: Rate | None = None
    output_audio: Rate | None = None
    cache_audio_read: Rate | None = None
    cache_write_1h: Rate | None = None
    """1-hour cache writes (None: they are charged as cache writes)."""
    request_per_k: int | None = None
    """Price of 1,000 requests, charged on every call (Perplexity's request fee)."""
    time_of_day: tuple[time, time] | None = None
    """A daily UTC interval ``[start, end)`` (may wrap midnight) when this period applies (off-peak prices)."""

    def __post_init__(self) -> None:
        if self.effective_from is not None and self.effective_from.utcoffset() is None:
            raise ValueError("effective_from must be timezone-aware")

    def active(self, at: datetime) -> bool:
        """Whether the period's constraint holds at ``at`` (genai-prices' rule: UTC date, UTC time of day)."""
        if self.time_of_day is not None:
            start, end = self.time_of_day
            now = at.astimezone(UTC).time()
            return (now >= start or now < end) if end < start else start <= now < end
        if self.effective_from is None:
            return True
        return at.astimezone(UTC).date() >= self.effective_from.astimezone(UTC).date()

    def rates(self) -> dict[str, Rate]:
        """The units this period prices, by name."""
        return {name: rate for name in RATE_FIELDS if (rate := getattr(self, name)) is not None}

    @property
    def has_token_prices(self) -> bool:
        return self.input is not None or self.output is not None


class UsageError(ValueError):
    """Token counts that contradict each other (a subset larger than what it is part of)."""


class Charge(NamedTuple):
    """A call's cost in micro-USD and the context-size tier it was priced at (None: base)."""

    cost_micro_usd: int
    tier_start: int | None


def charge(period: PricePeriod, usage: Usage) -> Charge:
    """Cost of ``usage`` at ``period``: each count once at its most specific priced unit, rounded once, half up."""
    rates = period.rates()
    ordered = sorted(rates, key=lambda name: (-len(UNIT_DIMENSIONS[name]), name))
    leaves: dict[str, int] = {}
    for name in ordered:
        dims = UNIT_DIMENSIONS[name]
        inner = sum(leaves[other] for other in leaves if dims < UNIT_DIMENSIONS[other])
        leaf = getattr(usage, name) - inner
        if leaf < 0:
            raise UsageError(f"the parts of {name} tokens exceed {name} tokens ({getattr(usage, name)})")
        leaves[name] = leaf
    total = 0
    tier_start: int | None = None
    for name, count in leaves.items():
        unit_price, start = rates[name].at(usage.input)
        total += count * unit_price
        if start is not None and (tier_start is None or start > tier_start):
            tier_start = start
    if period.request_per_k is not None:
        total += period.request_per_k * (TOKENS_PER_PRICE_UNIT // REQUESTS_PER_PRICE_UNIT)
    return Charge((total + TOKENS_PER_PRICE_UNIT // 2) // TOKENS_PER_PRICE_UNIT, tier_start)
