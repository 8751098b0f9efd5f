"""The effective-dated LLM price catalog: which model a call names, and its price there (see ``prices``).

Prices are integers in micro-USD per 1M tokens; costs are integer micro-USD, rounded once, half-up. Token
accounting and tiers follow genai-prices (``prices`` module): cache reads and writes are subsets of input
tokens, 1-hour cache writes a subset of cache writes, reasoning tokens a subset of output tokens, each charged
at its own price where the model has one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from functools import cache, partial
from importlib import resources
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from opsmeter_pricing.prices import TOKENS_PER_PRICE_UNIT, PricePeriod, Rate, Tier, Usage, charge

__all__ = [
    "CatalogModel",
    "CatalogProvider",
    "MatchRule",
    "PriceCatalog",
    "PriceQuote",
    "PublicPricePeriod",
    "PublicPricingCatalog",
    "PublicPricingModel",
    "PublicTier",
    "catalog_digest",
    "format_micro_usd",
    "normalize_model",
    "price",
]

MICRO = 1_000_000
_RESOLUTION_CACHE_SIZE = 8192

_COMPACT_DATE = re.compile(r"-(20\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?=-|:|$)")
_DATE_SUFFIX = re.compile(r"-(?:20\d{2}-\d{2}-\d{2}|20\d{6})$")
_BEDROCK_ID = re.compile(
    r"^(?:(?:us|eu|apac|au|ca|jp|in|us-gov|global)\.)?"
    r"(?:anthropic|amazon|meta|mistral|cohere|ai21|deepseek|openai|qwen|writer)\."
    r"(?P<model>.+?)(?:-v\d+(?::\d+)?)?$"
)

RuleKind = Literal["equals", "starts_with", "ends_with", "contains", "regex", "or", "and"]


def catalog_digest(content: Mapping[str, Any]) -> str:
    """Hex sha256 of the canonical JSON form of catalog content (everything but ``version``)."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def format_micro_usd(micro: int) -> str:
    """Exact decimal USD string of an integer micro-USD amount (1234 -> "0.001234", 0 -> "0")."""
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), MICRO)
    if frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:06d}".rstrip("0")


@dataclass(frozen=True, slots=True)
class MatchRule:
    """A genai-prices model/provider match clause, evaluated on lowercased text."""

    kind: RuleKind
    value: str = ""
    children: tuple[MatchRule, ...] = ()
    pattern: re.Pattern[str] | None = field(default=None, compare=False)

    def matches(self, text: str) -> bool:
        """Whether ``text`` (already lowercased) satisfies the rule."""
        match self.kind:
            case "equals":
                return text == self.value
            case "starts_with":
                return text.startswith(self.value)
            case "ends_with":
                return text.endswith(self.value)
            case "contains":
                return self.value in text
            case "regex":
                return self.pattern is not None and self.pattern.search(text) is not None
            case "or":
                return any(child.matches(text) for child in self.children)
            case "and":
                return all(child.matches(text) for child in self.children)

    @classmethod
    def from_json(cls, raw: object) -> MatchRule:
        """Parse ``{"equals": "gpt-4o"}``, ``{"or": [...]}`` and friends."""
        if not isinstance(raw, dict) or len(raw) != 1:
            raise ValueError(f"bad match rule: {raw!r}")
        ((kind, arg),) = raw.items()
        if kind in ("or", "and"):
            return cls(kind, children=tuple(cls.from_json(item) for item in _list(arg)))
        value = _str(arg)
        if kind == "regex":
            return cls("regex", value, pattern=re.compile(value))
        if kind in ("equals", "starts_with", "ends_with", "contains"):
            return cls(kind, value.lower())
        raise ValueError(f"unknown match rule kind: {kind!r}")


@dataclass(frozen=True, slots=True)
class CatalogModel:
    """One priced model of one provider."""

    provider: str
    id: str
    match: MatchRule
    prices: tuple[PricePeriod, ...]
    name: str | None = None
    aliases: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.prices:
            raise ValueError(f"model {self.id!r} has no price periods")

    def period_at(self, at: datetime) -> PricePeriod:
        """The period in effect at ``at``: the last one whose constraint holds (the first if none does).

        genai-prices' rule: later periods win (a price change by date, or an off-peak time of day)."""
        if len(self.prices) == 1:
            return self.prices[0]
        for period in reversed(self.prices):
            if period.active(at):
                return period
        return self.prices[0]

    def row(self, period: PricePeriod) -> str:
        """How an event names the price row it was charged at: provider/model and the period's constraint."""
        name = f"{self.provider}/{self.id}"
        if period.time_of_day is not None:
            start, end = period.time_of_day
            return f"{name}@{start:%H:%M}-{end:%H:%M}Z"
        if period.effective_from is not None:
            return f"{name}@{period.effective_from.astimezone(UTC):%Y-%m-%d}"
        return name


@dataclass(frozen=True, slots=True)
class CatalogProvider:
    """A provider with its match rules and models, in genai-prices order."""

    id: str
    models: tuple[CatalogModel, ...]
    name: str | None = None
    provider_match: MatchRule | None = None
    model_match: MatchRule | None = None
    fallback_providers: tuple[str, ...] = ()


class PriceQuote(NamedTuple):
    """The priced cost of one LLM call (a named tuple: built once per ingested event)."""

    model_normalized: str
    priced: bool
    cost_micro_usd: int
    catalog_version: str
    warnings: tuple[str, ...] = ()
    price_row: str | None = None
    """The price row charged (``provider/model``, ``@date`` of its period when dated); None when unpriced."""
    tier_start: int | None = None
    """The context-size tier charged: the input-token count it starts above; None for the base tier."""


_new_quote = partial(tuple.__new__, PriceQuote)
"""``PriceQuote`` from a tuple of all its fields without the named tuple's ``__new__`` (a Python call):
the hot path prices every ingested event."""


class _Public(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)


class PublicTier(_Public):
    """A context-size tier: a call with more than ``above_input_tokens`` input tokens pays these for all tokens."""

    above_input_tokens: int
    input_usd_per_mtok: str | None
    output_usd_per_mtok: str | None
    cached_input_usd_per_mtok: str | None
    cache_write_input_usd_per_mtok: str | None


class PublicPricePeriod(_Public):
    """A price period at the API edge: decimal USD strings per 1M tokens (base tier) and the tiers above it."""

    effective_from: datetime | None
    time_of_day_utc: str | None = None
    input_usd_per_mtok: str | None
    output_usd_per_mtok: str | None
    cached_input_usd_per_mtok: str | None
    cache_write_input_usd_per_mtok: str | None = None
    reasoning_usd_per_mtok: str | None
    input_audio_usd_per_mtok: str | None = None
    output_audio_usd_per_mtok: str | None = None
    usd_per_thousand_requests: str | None = None
    tiers: list[PublicTier] = []


class PublicPricingModel(_Public):
    """A catalog model at the API edge."""

    provider: str
    model: str
    name: str | None
    aliases: list[str]
    prices: list[PublicPricePeriod]


class PublicPricingCatalog(_Public):
    """Body of ``GET /v1/public/pricing-models``."""

    catalog_version: str
    unit: str
    models: list[PublicPricingModel]


@dataclass(frozen=True, slots=True)
class Tariff:
    """One (provider, model) as a client names it, resolved against a catalog version: prices its calls.

    ``PriceCatalog.tariff`` resolves (and caches) it; a caller that prices many calls to the same model
    keeps it and calls :meth:`price` for each, without resolving the name again.
    """

    version: str
    model: CatalogModel | None
    normalized: str
    warnings: tuple[str, ...]
    flat: _FlatPrice | None = None
    """Set when one untiered price period with input and output prices applies at any time and nothing warns."""

    def price(
        self,
        at: datetime,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
        reasoning_tokens: int = 0,
        cache_write_input_tokens: int = 0,
        cache_write_1h_input_tokens: int = 0,
    ) -> PriceQuote:
        """Price one call at the period in effect at ``at`` (timezone-aware)."""
        if at.tzinfo is not UTC and (at.tzinfo is None or at.utcoffset() is None):
            raise ValueError("at must be a timezone-aware datetime")
        if (
            input_tokens
            | output_tokens
            | cached_input_tokens
            | reasoning_tokens
            | cache_write_input_tokens
            | cache_write_1h_input_tokens
        ) < 0:
            counts = {
                "inputTokens": input_tokens,
                "outputTokens": output_tokens,
                "cachedInputTokens": cached_input_tokens,
                "reasoningTokens": reasoning_tokens,
                "cacheWriteInputTokens": cache_write_input_tokens,
                "cacheWrite1hInputTokens": cache_write_1h_input_tokens,
            }
            name, value = next((n, v) for n, v in counts.items() if v < 0)
            raise ValueError(f"{name} must be >= 0, got {value}")
        flat = self.flat
        if (
            flat is not None
            and cached_input_tokens + cache_write_input_tokens <= input_tokens
            and cache_write_1h_input_tokens <= cache_write_input_tokens
            and reasoning_tokens <= output_tokens
        ):
            # The common case, without the general path's checks and warnings (same result, see the tests).
            total = (
                (input_tokens - cached_input_tokens - cache_write_input_tokens) * flat.input
                + cached_input_tokens * flat.cached_input
                + (cache_write_input_tokens - cache_write_1h_input_tokens) * flat.cache_write
                + cache_write_1h_input_tokens * flat.cache_write_1h
                + (output_tokens - reasoning_tokens) * flat.output
                + reasoning_tokens * flat.reasoning
                + flat.requests
            )
            cost = (total + TOKENS_PER_PRICE_UNIT // 2) // TOKENS_PER_PRICE_UNIT
            return _new_quote((self.normalized, True, cost, self.version, (), flat.row, None))
        return self._price_by_period(
            at,
            Usage(
                input_tokens,
                output_tokens,
                cache_read=cached_input_tokens,
                cache_write=cache_write_input_tokens,
                reasoning=reasoning_tokens,
                cache_write_1h=cache_write_1h_input_tokens,
            ),
        )

    def price_usage(self, at: datetime, usage: Usage) -> PriceQuote:
        """Price one call's full usage (audio counts too) at the period in effect at ``at``."""
        if at.utcoffset() is None:
            raise ValueError("at must be a timezone-aware datetime")
        return self._price_by_period(at, usage)

    def _price_by_period(self, at: datetime, usage: Usage) -> PriceQuote:
        warnings = list(self.warnings)
        catalog_model = self.model
        if catalog_model is None:
            warnings.append(
                f"model '{self.normalized}' is not in price catalog {self.version}; costUsd is 0 (unpriced)"
            )
            return PriceQuote(self.normalized, False, 0, self.version, tuple(warnings))
        period = catalog_model.period_at(at.astimezone(UTC))
        if not period.has_token_prices:
            warnings.append(
                f"model '{catalog_model.id}' has no token prices in price catalog {self.version}; "
                "costUsd is 0 (unpriced)"
            )
            return PriceQuote(catalog_model.id, False, 0, self.version, tuple(warnings))
        usage = _capped(usage, warnings)
        for label, rate in (("input", period.input), ("output", period.output)):
            if rate is None and getattr(usage, label):
                warnings.append(
                    f"model '{catalog_model.id}' has no {label} price in the price catalog; "
                    f"{label} tokens are not charged"
                )
        cost, tier_start = charge(period, usage)
        return PriceQuote(
            catalog_model.id, True, cost, self.version, tuple(warnings), catalog_model.row(period), tier_start
        )


def _capped(usage: Usage, warnings: list[str]) -> Usage:
    """Subsets capped at what they are part of (the gateway rejects such records; a library caller is warned)."""
    if usage.cache_read > usage.input:
        warnings.append(
            f"cachedInputTokens ({usage.cache_read}) exceed inputTokens ({usage.input}); capped at inputTokens"
        )
        usage = replace(usage, cache_read=usage.input)
    if usage.cache_read + usage.cache_write > usage.input:
        kept = usage.input - usage.cache_read
        warnings.append(
            f"cacheWriteInputTokens ({usage.cache_write}) exceed inputTokens less cachedInputTokens ({kept}); capped"
        )
        usage = replace(usage, cache_write=kept)
    if usage.cache_write_1h > usage.cache_write:
        warnings.append(
            f"cacheWrite1hInputTokens ({usage.cache_write_1h}) exceed cacheWriteInputTokens ({usage.cache_write}); "
            "capped at cacheWriteInputTokens"
        )
        usage = replace(usage, cache_write_1h=usage.cache_write)
    if usage.reasoning > usage.output:
        warnings.append(
            f"reasoningTokens ({usage.reasoning}) exceed outputTokens ({usage.output}); capped at outputTokens"
        )
        usage = replace(usage, reasoning=usage.output)
    return usage


class _FlatPrice(NamedTuple):
    """A model's prices when they never change: subsets without their own price fall back to their base price."""

    input: int
    cached_input: int
    cache_write: int
    cache_write_1h: int
    output: int
    reasoning: int
    requests: int
    """The request fee in micro-USD x 10**6 (added to every call's total before rounding)."""
    row: str


def _flat_price(model: CatalogModel | None, warnings: tuple[str, ...]) -> _FlatPrice | None:
    if model is None or warnings or len(model.prices) != 1:
        return None
    period = model.prices[0]
    rates = period.rates()
    if any(rate.tiers for rate in rates.values()) or period.input is None or period.output is None:
        return None
    base_in, base_out = period.input.base, period.output.base

    def own(rate: Rate | None, fallback: int) -> int:
        return fallback if rate is None else rate.base

    requests = 0 if period.request_per_k is None else period.request_per_k * 1_000
    cache_write = own(period.cache_write, base_in)
    return _FlatPrice(
        base_in,
        own(period.cache_read, base_in),
        cache_write,
        own(period.cache_write_1h, cache_write),
        base_out,
        own(period.reasoning, base_out),
        requests,
        model.row(period),
    )


class PriceCatalog:
    """An immutable, versioned price catalog."""

    def __init__(self, version: str, providers: Sequence[CatalogProvider]) -> None:
        self.version = version
        self.providers: tuple[CatalogProvider, ...] = tuple(providers)
        self._by_id = {p.id: p for p in self.providers}
        self._resolutions: dict[tuple[str, str], Tariff] = {}
        self._public: PublicPricingCatalog | None = None

    @classmethod
    def load_default(cls) -> PriceCatalog:
        """The catalog snapshotted into this package (loaded once, digest-verified)."""
        return _default_catalog()

    @classmethod
    def from_json_text(cls, text: str, *, verify: bool = True) -> PriceCatalog:
        """Parse catalog JSON (floats rejected); with ``verify``, check the version's content digest."""
        data = json.loads(text, parse_float=_reject_float)
        if not isinstance(data, dict):
            raise ValueError("catalog JSON must be an object")
        version = _str(data.get("version"))
        if verify:
            content = {k: v for k, v in data.items() if k != "version"}
            if not version.endswith("+" + catalog_digest(content)[:12]):
                raise ValueError(f"catalog content does not match its version {version!r}")
        return cls(version, [_provider(raw) for raw in _list(data.get("providers"))])

    def models(self) -> list[PublicPricingModel]:
        """All models for ``GET /v1/public/pricing-models``."""
        return self.public_catalog().models

    def public_catalog(self) -> PublicPricingCatalog:
        """The whole public catalog (version, unit, models)."""
        if self._public is None:
            self._public = PublicPricingCatalog(
                catalog_version=self.version,
                unit="USD per 1M tokens",
                models=[_public_model(m) for p in self.providers for m in p.models],
            )
        return self._public

    def to_public_json(self) -> dict[str, Any]:
        """JSON-ready camelCase body of ``GET /v1/public/pricing-models``."""
        return self.public_catalog().model_dump(mode="json", by_alias=True)

    def normalize_model(self, provider: str, model: str) -> str:
        """The catalog model id for ``model`` (or the cleaned name when it is not in the catalog)."""
        return self._resolve(provider, model).normalized

    def price(
        self,
        provider: str,
        model: str,
        at: datetime,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
        reasoning_tokens: int = 0,
        cache_write_input_tokens: int = 0,
        cache_write_1h_input_tokens: int = 0,
    ) -> PriceQuote:
        """Price one call at the period in effect at ``at`` (timezone-aware)."""
        return self.tariff(provider, model).price(
            at,
            input_tokens,
            output_tokens,
            cached_input_tokens,
            reasoning_tokens,
            cache_write_input_tokens,
            cache_write_1h_input_tokens,
        )

    def tariff(self, provider: str, model: str) -> Tariff:
        """How calls to ``model`` of ``provider`` (as sent) are priced: resolved once, then applied per call."""
        return self._resolve(provider, model)

    def _resolve(self, provider: str, model: str) -> Tariff:
        if (cached := self._resolutions.get((provider, model))) is not None:
            return cached  # already clean, or seen as sent before
        key = (provider.strip().lower(), model.strip().lower())
        if (cached := self._resolutions.get(key)) is not None:
            return cached
        if len(self._resolutions) >= _RESOLUTION_CACHE_SIZE:
            self._resolutions.clear()
        found = self._resolve_uncached(*key)
        resolution = Tariff(
            self.version, found.model, found.normalized, found.warnings, _flat_price(found.model, found.warnings)
        )
        self._resolutions[key] = resolution
        self._resolutions[(provider, model)] = resolution
        return resolution

    def _resolve_uncached(self, provider_ref: str, model_ref: str) -> Tariff:
        candidates = _candidates(model_ref)
        stripped = _strip_path(model_ref)
        given = self._find_provider(provider_ref)
        if given is not None and (hit := self._search(given, candidates, fallback=True)):
            return Tariff(self.version, hit, hit.id, ())
        hit = self._search_elsewhere(model_ref, candidates, given)
        if hit is None:
            return Tariff(self.version, None, stripped, ())
        warnings: tuple[str, ...] = ()
        if given is not None:
            warnings = (
                f"model '{stripped}' is not priced for provider '{given.id}' in price catalog "
                f"{self.version}; priced as {hit.provider}/{hit.id}",
            )
        return Tariff(self.version, hit, hit.id, warnings)

    def _search_elsewhere(
        self, model_ref: str, candidates: Sequence[str], given: CatalogProvider | None
    ) -> CatalogModel | None:
        hinted = self._find_provider(model_ref.split("/", 1)[0]) if "/" in model_ref else None
        if hinted is not None and hinted is not given and (hit := self._search(hinted, candidates[1:], fallback=True)):
            return hit
        for candidate in candidates:
            for p in self.providers:
                matched = p.model_match is not None and p.model_match.matches(candidate)
                if matched and (hit := self._search(p, (candidate,), fallback=True)):
                    return hit
        for candidate in candidates:
            for p in self.providers:
                if hit := self._search(p, (candidate,), fallback=False):
                    return hit
        return None

    def _find_provider(self, ref: str) -> CatalogProvider | None:
        if not ref:
            return None
        if (exact := self._by_id.get(ref)) is not None:
            return exact
        return next((p for p in self.providers if p.provider_match and p.provider_match.matches(ref)), None)

    def _search(self, provider: CatalogProvider, candidates: Iterable[str], *, fallback: bool) -> CatalogModel | None:
        chain = [provider]
        if fallback:
            chain += [self._by_id[f] for f in provider.fallback_providers if f in self._by_id]
        for candidate in candidates:
            for p in chain:
                for m in p.models:
                    if m.match.matches(candidate):
                        return m
        return None


@cache
def _default_catalog() -> PriceCatalog:
    text = resources.files("opsmeter_pricing").joinpath("catalog.json").read_text(encoding="utf-8")
    return PriceCatalog.from_json_text(text, verify=True)


def normalize_model(provider: str, model: str) -> str:
    """Normalize ``model`` against the default catalog (``openai/gpt-4o`` -> ``gpt-4o``)."""
    return PriceCatalog.load_default().normalize_model(provider, model)


def price(
    provider: str,
    model: str,
    at: datetime,
    input_tokens: int,
    output_tokens: int,
    cached_input_tokens: int = 0,
    reasoning_tokens: int = 0,
    cache_write_input_tokens: int = 0,
    cache_write_1h_input_tokens: int = 0,
) -> PriceQuote:
    """Price one call with the default catalog."""
    return PriceCatalog.load_default().price(
        provider,
        model,
        at,
        input_tokens,
        output_tokens,
        cached_input_tokens,
        reasoning_tokens,
        cache_write_input_tokens,
        cache_write_1h_input_tokens,
    )


def _candidates(model_ref: str) -> tuple[str, ...]:
    """Names to try, most specific first: as sent, path prefixes stripped, Bedrock id, dates normalized."""
    names = [model_ref]
    rest = model_ref
    while "/" in rest:
        rest = rest.split("/", 1)[1]
        names.append(rest)
    if bedrock := _BEDROCK_ID.match(rest):
        rest = bedrock["model"]
        names.append(rest)
    names += [_dash_compact_date(n) for n in names]
    if (undated := _DATE_SUFFIX.sub("", _dash_compact_date(rest))) != rest:
        names.append(undated)
    return tuple(dict.fromkeys(n for n in names if n))


def _strip_path(model_ref: str) -> str:
    return model_ref.rsplit("/", 1)[-1] or model_ref


def _dash_compact_date(name: str) -> str:
    def dash(m: re.Match[str]) -> str:
        year, month, day = (int(g) for g in m.groups())
        try:
            date(year, month, day)
        except ValueError:
            return m.group(0)
        return f"-{year:04d}-{month:02d}-{day:02d}"

    return _COMPACT_DATE.sub(dash, name)


def _usd(micro: int | None) -> str | None:
    return None if micro is None else format_micro_usd(micro)


def _base(rate: Rate | None) -> str | None:
    return None if rate is None else format_micro_usd(rate.base)


def _public_period(p: PricePeriod) -> PublicPricePeriod:
    starts = sorted({t.start for rate in p.rates().values() for t in rate.tiers})

    def at_tier(rate: Rate | None, start: int) -> str | None:
        return None if rate is None else format_micro_usd(rate.at(start + 1)[0])

    return PublicPricePeriod(
        effective_from=p.effective_from,
        time_of_day_utc=None if p.time_of_day is None else f"{p.time_of_day[0]:%H:%M}-{p.time_of_day[1]:%H:%M}",
        input_usd_per_mtok=_base(p.input),
        output_usd_per_mtok=_base(p.output),
        cached_input_usd_per_mtok=_base(p.cache_read),
        cache_write_input_usd_per_mtok=_base(p.cache_write),
        reasoning_usd_per_mtok=_base(p.reasoning),
        input_audio_usd_per_mtok=_base(p.input_audio),
        output_audio_usd_per_mtok=_base(p.output_audio),
        usd_per_thousand_requests=_usd(p.request_per_k),
        tiers=[
            PublicTier(
                above_input_tokens=start,
                input_usd_per_mtok=at_tier(p.input, start),
                output_usd_per_mtok=at_tier(p.output, start),
                cached_input_usd_per_mtok=at_tier(p.cache_read, start),
                cache_write_input_usd_per_mtok=at_tier(p.cache_write, start),
            )
            for start in starts
        ],
    )


def _public_model(m: CatalogModel) -> PublicPricingModel:
    return PublicPricingModel(
        provider=m.provider,
        model=m.id,
        name=m.name,
        aliases=list(m.aliases),
        prices=[_public_period(p) for p in m.prices],
    )


def _provider(raw: object) -> CatalogProvider:
    data = _dict(raw)
    provider_id = _str(data.get("id"))
    return CatalogProvider(
        id=provider_id,
        name=_opt_str(data.get("name")),
        provider_match=_opt_rule(data.get("provider_match")),
        model_match=_opt_rule(data.get("model_match")),
        fallback_providers=tuple(_str(f) for f in _list(data.get("fallback_providers", []))),
        models=tuple(_model(provider_id, m) for m in _list(data.get("models"))),
    )


def _model(provider_id: str, raw: object) -> CatalogModel:
    data = _dict(raw)
    return CatalogModel(
        provider=provider_id,
        id=_str(data.get("id")),
        name=_opt_str(data.get("name")),
        aliases=tuple(_str(a) for a in _list(data.get("aliases", []))),
        prefixes=tuple(_str(a) for a in _list(data.get("prefixes", []))),
        match=MatchRule.from_json(data.get("match")),
        prices=tuple(_period(p) for p in _list(data.get("prices"))),
    )


RATE_KEYS = {
    "input": "input_micro_usd_per_mtok",
    "output": "output_micro_usd_per_mtok",
    "cache_read": "cached_input_micro_usd_per_mtok",
    "cache_write": "cache_write_input_micro_usd_per_mtok",
    "reasoning": "reasoning_micro_usd_per_mtok",
    "input_audio": "input_audio_micro_usd_per_mtok",
    "output_audio": "output_audio_micro_usd_per_mtok",
    "cache_audio_read": "cached_input_audio_micro_usd_per_mtok",
    "cache_write_1h": "cache_write_1h_input_micro_usd_per_mtok",
}
"""Each priced unit (``PricePeriod`` field) and its key in ``catalog.json``."""
REQUEST_KEY = "micro_usd_per_1k_requests"


def _period(raw: object) -> PricePeriod:
    data = _dict(raw)
    start = data.get("effective_from")
    window = data.get("time_of_day_utc")
    time_of_day = None
    if window is not None:
        first, last = _list(window)
        time_of_day = (time.fromisoformat(_str(first)), time.fromisoformat(_str(last)))
    rates = {name: _rate(data.get(key)) for name, key in RATE_KEYS.items()}
    return PricePeriod(
        effective_from=None if start is None else datetime.fromisoformat(_str(start)),
        time_of_day=time_of_day,
        request_per_k=_opt_int(data.get(REQUEST_KEY)),
        **rates,
    )


def _rate(raw: object) -> Rate | None:
    if raw is None or isinstance(raw, int):
        base = _opt_int(raw)
        return None if base is None else Rate(base)
    data = _dict(raw)
    tiers = tuple(Tier(_int(t.get("start")), _int(t.get("price"))) for t in map(_dict, _list(data.get("tiers"))))
    return Rate(_int(data.get("base")), tiers)


def _int(raw: object) -> int:
    value = _opt_int(raw)
    if value is None:
        raise ValueError("expected a non-negative integer, got null")
    return value


def _reject_float(text: str) -> Any:
    raise ValueError(f"floats are not allowed in the price catalog: {text}")


def _opt_rule(raw: object) -> MatchRule | None:
    return None if raw is None else MatchRule.from_json(raw)


def _dict(raw: object) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError(f"expected an object, got {raw!r}")
    return raw


def _list(raw: object) -> list[Any]:
    if not isinstance(raw, list):
        raise ValueError(f"expected a list, got {raw!r}")
    return raw


def _str(raw: object) -> str:
    if not isinstance(raw, str):
        raise ValueError(f"expected a string, got {raw!r}")
    return raw


def _opt_str(raw: object) -> str | None:
    return None if raw is None else _str(raw)


def _opt_int(raw: object) -> int | None:
    if raw is None:
        return None
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < 0:
        raise ValueError(f"expected a non-negative integer price, got {raw!r}")
    return raw
