"""The effective-dated LLM price catalog and integer cost arithmetic.

Prices are integers in micro-USD per 1M tokens; costs are integer micro-USD, rounded once, half-up. Token
accounting follows genai-prices: ``cached_input_tokens`` (cache reads) are a subset of ``input_tokens`` and,
when the model has a cache-read price, are charged at it instead of the input price (otherwise at the input
price); ``reasoning_tokens`` are a subset of ``output_tokens`` and, when the model has a reasoning price, are
charged at it instead of the output price (otherwise they are included in output at the output price).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache, partial
from importlib import resources
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

__all__ = [
    "CatalogModel",
    "CatalogProvider",
    "MatchRule",
    "PriceCatalog",
    "PricePeriod",
    "PriceQuote",
    "PublicPricePeriod",
    "PublicPricingCatalog",
    "PublicPricingModel",
    "catalog_digest",
    "format_micro_usd",
    "normalize_model",
    "price",
]

MICRO = 1_000_000
TOKENS_PER_PRICE_UNIT = 1_000_000
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
class PricePeriod:
    """Prices in integer micro-USD per 1M tokens from ``effective_from`` (None: since forever)."""

    effective_from: datetime | None
    input_micro_usd_per_mtok: int | None
    output_micro_usd_per_mtok: int | None
    cached_input_micro_usd_per_mtok: int | None = None
    reasoning_micro_usd_per_mtok: int | None = None

    def __post_init__(self) -> None:
        if self.effective_from is not None and self.effective_from.utcoffset() is None:
            raise ValueError("effective_from must be timezone-aware")


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
        starts = [p.effective_from for p in self.prices]
        dated = [s for s in starts if s is not None]
        if None in starts[1:] or dated != sorted(dated):
            raise ValueError(f"model {self.id!r}: price periods must be in ascending effective_from order")

    def period_at(self, at: datetime) -> PricePeriod:
        """The period in effect at ``at``: the latest one started by then (the first if none has)."""
        current = self.prices[0]
        if len(self.prices) == 1:
            return current
        for period in self.prices:
            if period.effective_from is None or period.effective_from <= at:
                current = period
        return current


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


_new_quote = partial(tuple.__new__, PriceQuote)
"""``PriceQuote`` from a tuple of all its fields without the named tuple's ``__new__`` (a Python call):
the hot path prices every ingested event."""


class _Public(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)


class PublicPricePeriod(_Public):
    """A price period at the API edge: decimal USD strings per 1M tokens."""

    effective_from: datetime | None
    input_usd_per_mtok: str | None
    output_usd_per_mtok: str | None
    cached_input_usd_per_mtok: str | None
    reasoning_usd_per_mtok: str | None


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
    """Set when one price period with input and output prices applies at any time and nothing warns."""

    def price(
        self,
        at: datetime,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> PriceQuote:
        """Price one call at the period in effect at ``at`` (timezone-aware)."""
        if at.tzinfo is not UTC and (at.tzinfo is None or at.utcoffset() is None):
            raise ValueError("at must be a timezone-aware datetime")
        if (input_tokens | output_tokens | cached_input_tokens | reasoning_tokens) < 0:  # any of them negative
            counts = {
                "inputTokens": input_tokens,
                "outputTokens": output_tokens,
                "cachedInputTokens": cached_input_tokens,
                "reasoningTokens": reasoning_tokens,
            }
            name, value = next((n, v) for n, v in counts.items() if v < 0)
            raise ValueError(f"{name} must be >= 0, got {value}")
        flat = self.flat
        if flat is not None and cached_input_tokens <= input_tokens and reasoning_tokens <= output_tokens:
            # The common case, without the general path's checks and warnings (same result, see the tests).
            total = (
                (input_tokens - cached_input_tokens) * flat.input
                + cached_input_tokens * flat.cached_input
                + (output_tokens - reasoning_tokens) * flat.output
                + reasoning_tokens * flat.reasoning
            )
            cost = (total + TOKENS_PER_PRICE_UNIT // 2) // TOKENS_PER_PRICE_UNIT
            return _new_quote((self.normalized, True, cost, self.version, ()))
        return self._price_by_period(at, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens)

    def _price_by_period(
        self, at: datetime, input_tokens: int, output_tokens: int, cached_input_tokens: int, reasoning_tokens: int
    ) -> PriceQuote:
        warnings = list(self.warnings)
        catalog_model = self.model
        if catalog_model is None:
            warnings.append(
                f"model '{self.normalized}' is not in price catalog {self.version}; costUsd is 0 (unpriced)"
            )
            return PriceQuote(self.normalized, False, 0, self.version, tuple(warnings))
        period = catalog_model.period_at(at.astimezone(UTC))
        if period.input_micro_usd_per_mtok is None and period.output_micro_usd_per_mtok is None:
            warnings.append(
                f"model '{catalog_model.id}' has no token prices in price catalog {self.version}; "
                "costUsd is 0 (unpriced)"
            )
            return PriceQuote(catalog_model.id, False, 0, self.version, tuple(warnings))
        if cached_input_tokens > input_tokens:
            warnings.append(
                f"cachedInputTokens ({cached_input_tokens}) exceed inputTokens ({input_tokens}); capped at inputTokens"
            )
            cached_input_tokens = input_tokens
        if reasoning_tokens > output_tokens:
            warnings.append(
                f"reasoningTokens ({reasoning_tokens}) exceed outputTokens ({output_tokens}); capped at outputTokens"
            )
            reasoning_tokens = output_tokens
        total = _charge(
            catalog_model.id,
            input_tokens,
            cached_input_tokens,
            period.input_micro_usd_per_mtok,
            period.cached_input_micro_usd_per_mtok,
            "input",
            warnings,
        ) + _charge(
            catalog_model.id,
            output_tokens,
            reasoning_tokens,
            period.output_micro_usd_per_mtok,
            period.reasoning_micro_usd_per_mtok,
            "output",
            warnings,
        )
        cost = (total + TOKENS_PER_PRICE_UNIT // 2) // TOKENS_PER_PRICE_UNIT
        return PriceQuote(catalog_model.id, True, cost, self.version, tuple(warnings))


class _FlatPrice(NamedTuple):
    """A model's prices when they never change: cache reads and reasoning fall back to their base price."""

    input: int
    cached_input: int
    output: int
    reasoning: int


def _flat_price(model: CatalogModel | None, warnings: tuple[str, ...]) -> _FlatPrice | None:
    if model is None or warnings or len(model.prices) != 1:
        return None
    period = model.prices[0]
    base_in, base_out = period.input_micro_usd_per_mtok, period.output_micro_usd_per_mtok
    if base_in is None or base_out is None:
        return None
    cached, reasoning = period.cached_input_micro_usd_per_mtok, period.reasoning_micro_usd_per_mtok
    return _FlatPrice(
        base_in, base_in if cached is None else cached, base_out, base_out if reasoning is None else reasoning
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
    ) -> PriceQuote:
        """Price one call at the period in effect at ``at`` (timezone-aware)."""
        return self.tariff(provider, model).price(
            at, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens
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
) -> PriceQuote:
    """Price one call with the default catalog."""
    return PriceCatalog.load_default().price(
        provider, model, at, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens
    )


def _charge(
    model_id: str,
    tokens: int,
    special: int,
    base_price: int | None,
    special_price: int | None,
    label: str,
    warnings: list[str],
) -> int:
    """Micro-USD x tokens-per-price-unit for one direction (input with cache reads, output with reasoning)."""
    if special_price is not None:
        tokens -= special
        subtotal = special * special_price
    else:
        subtotal = 0
    if base_price is None:
        if tokens:
            warnings.append(
                f"model '{model_id}' has no {label} price in the price catalog; {label} tokens are not charged"
            )
        return subtotal
    return subtotal + tokens * base_price


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


def _public_model(m: CatalogModel) -> PublicPricingModel:
    def usd(micro: int | None) -> str | None:
        return None if micro is None else format_micro_usd(micro)

    return PublicPricingModel(
        provider=m.provider,
        model=m.id,
        name=m.name,
        aliases=list(m.aliases),
        prices=[
            PublicPricePeriod(
                effective_from=p.effective_from,
                input_usd_per_mtok=usd(p.input_micro_usd_per_mtok),
                output_usd_per_mtok=usd(p.output_micro_usd_per_mtok),
                cached_input_usd_per_mtok=usd(p.cached_input_micro_usd_per_mtok),
                reasoning_usd_per_mtok=usd(p.reasoning_micro_usd_per_mtok),
            )
            for p in m.prices
        ],
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


def _period(raw: object) -> PricePeriod:
    data = _dict(raw)
    start = data.get("effective_from")
    return PricePeriod(
        effective_from=None if start is None else datetime.fromisoformat(_str(start)),
        input_micro_usd_per_mtok=_opt_int(data.get("input_micro_usd_per_mtok")),
        output_micro_usd_per_mtok=_opt_int(data.get("output_micro_usd_per_mtok")),
        cached_input_micro_usd_per_mtok=_opt_int(data.get("cached_input_micro_usd_per_mtok")),
        reasoning_micro_usd_per_mtok=_opt_int(data.get("reasoning_micro_usd_per_mtok")),
    )


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
