"""Prices a workspace sets itself (negotiated discounts, fine-tuned and self-hosted models): they win over the
catalog for the models they name, from their effective date (ADR 57)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from opsmeter_pricing.catalog import PriceQuote, Tariff
from opsmeter_pricing.prices import PricePeriod, Rate, Usage, charge

__all__ = ["WorkspacePrice", "WorkspacePrices", "quote_for"]

WORKSPACE_ROW_PREFIX = "workspace:"


@dataclass(frozen=True, slots=True)
class WorkspacePrice:
    """One workspace price row: a model name or ``*`` pattern (case-insensitive), optionally one provider's,
    in integer micro-USD per 1M tokens, effective from ``effective_from``."""

    model: str
    effective_from: datetime
    input_micro_usd_per_mtok: int
    output_micro_usd_per_mtok: int
    provider: str | None = None
    cached_input_micro_usd_per_mtok: int | None = None
    cache_write_input_micro_usd_per_mtok: int | None = None
    reasoning_micro_usd_per_mtok: int | None = None

    def __post_init__(self) -> None:
        if self.effective_from.utcoffset() is None:
            raise ValueError("effective_from must be timezone-aware")

    @property
    def is_pattern(self) -> bool:
        return "*" in self.model or "?" in self.model

    def matches(self, provider: str, names: Iterable[str]) -> bool:
        if self.provider is not None and self.provider.lower() != provider.strip().lower():
            return False
        wanted = self.model.lower()
        return any(fnmatch.fnmatchcase(name.strip().lower(), wanted) for name in names)

    @property
    def row(self) -> str:
        """How an event names it: ``workspace:<model or pattern>@<effective date>``."""
        return f"{WORKSPACE_ROW_PREFIX}{self.model}@{self.effective_from.astimezone(UTC):%Y-%m-%d}"

    def period(self) -> PricePeriod:
        def rate(value: int | None) -> Rate | None:
            return None if value is None else Rate(value)

        return PricePeriod(
            effective_from=self.effective_from,
            input=Rate(self.input_micro_usd_per_mtok),
            output=Rate(self.output_micro_usd_per_mtok),
            cache_read=rate(self.cached_input_micro_usd_per_mtok),
            cache_write=rate(self.cache_write_input_micro_usd_per_mtok),
            reasoning=rate(self.reasoning_micro_usd_per_mtok),
        )


class PriceRowLike(Protocol):
    """What a stored price row offers (the contract's ``WorkspacePriceRow``)."""

    @property
    def model(self) -> str: ...
    @property
    def provider(self) -> str | None: ...
    @property
    def effective_from(self) -> datetime: ...
    @property
    def input_micro_usd_per_mtok(self) -> int: ...
    @property
    def output_micro_usd_per_mtok(self) -> int: ...
    @property
    def cached_input_micro_usd_per_mtok(self) -> int | None: ...
    @property
    def cache_write_input_micro_usd_per_mtok(self) -> int | None: ...
    @property
    def reasoning_micro_usd_per_mtok(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class WorkspacePrices:
    """A workspace's price rows at one ``version`` (every change replaces the whole list)."""

    version: int
    rows: tuple[WorkspacePrice, ...] = ()

    @classmethod
    def of(cls, version: int, rows: Iterable[PriceRowLike]) -> WorkspacePrices:
        return cls(
            version,
            tuple(
                WorkspacePrice(
                    model=r.model,
                    provider=r.provider,
                    effective_from=r.effective_from,
                    input_micro_usd_per_mtok=r.input_micro_usd_per_mtok,
                    output_micro_usd_per_mtok=r.output_micro_usd_per_mtok,
                    cached_input_micro_usd_per_mtok=r.cached_input_micro_usd_per_mtok,
                    cache_write_input_micro_usd_per_mtok=r.cache_write_input_micro_usd_per_mtok,
                    reasoning_micro_usd_per_mtok=r.reasoning_micro_usd_per_mtok,
                )
                for r in rows
            ),
        )

    def find(self, provider: str, names: Sequence[str], at: datetime) -> WorkspacePrice | None:
        """The row in effect at ``at`` for a call to any of ``names``: an exact name before a pattern, then the
        latest effective date (None: the catalog prices it)."""
        best: WorkspacePrice | None = None
        for row in self.rows:
            if row.effective_from > at or not row.matches(provider, names):
                continue
            if best is None or (not row.is_pattern, row.effective_from) > (not best.is_pattern, best.effective_from):
                best = row
        return best


def quote_for(tariff: Tariff, prices: WorkspacePrices | None, provider: str, model: str, at: datetime,
              usage: Usage) -> PriceQuote:  # fmt: skip
    """A call's quote: by the workspace's own price when one is in effect for the model, else by the catalog."""
    row = None if prices is None or not prices.rows else prices.find(provider, (model, tariff.normalized), at)
    if row is None:
        return tariff.price(
            at,
            usage.input,
            usage.output,
            usage.cache_read,
            usage.reasoning,
            usage.cache_write,
            usage.cache_write_1h,
        )
    cache_write = min(usage.cache_write, usage.input - min(usage.cache_read, usage.input))
    capped = Usage(
        usage.input,
        usage.output,
        cache_read=min(usage.cache_read, usage.input),
        cache_write=cache_write,
        reasoning=min(usage.reasoning, usage.output),
        cache_write_1h=min(usage.cache_write_1h, cache_write),
    )
    cost, _ = charge(row.period(), capped)
    return PriceQuote(tariff.normalized, True, cost, tariff.version, (), row.row, None)
