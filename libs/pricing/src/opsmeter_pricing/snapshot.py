"""Snapshot genai-prices' bundled data into ``catalog.json`` (run ``-m opsmeter_pricing.snapshot --write``).

Reads only the data bundled in the installed ``genai-prices`` package (never the network). Money is stored
as integers in **micro-USD per 1M tokens** (``*_micro_usd_per_mtok``), i.e. the genai-prices Decimal USD/MTok
value times 10**6. Every genai-prices price we keep is exact in that unit, except a few values that are float
artifacts in the source (``0.18000000000000002``); those are rounded half-even and listed in the catalog's
``adjustments``.

Two more kinds of adjustment, each listed there too (``provider/model key: what and why``), and nothing else
departs from the source:

- ``CORRECTIONS``: a price the provider bills that the pinned genai-prices lacks (Claude Sonnet 4's
  long-context tier). A correction must find the source as it expects it; when genai-prices has caught up (or
  changed) the snapshot fails, so the correction is reviewed and removed rather than applied twice.
- 1-hour cache writes of a Claude model whose entry has none: 2x its input price (Anthropic's rule, every tier),
  when its cache-write price is Anthropic's 1.25x its input price (the provider passes Anthropic's cache prices on).

Kept per model: the match rule (equals / starts_with / ends_with / contains / regex / or / and, verbatim), the
explicit aliases (``equals`` clauses) and prefixes (``starts_with`` clauses) derived from it, and every price
entry in genai-prices' order, each with its constraint (a start date becomes ``effective_from`` at 00:00 UTC,
a time of day becomes ``time_of_day_utc``) and its prices for the units a telemetry record can carry: input,
output, cache read (cached input), cache write, 1-hour cache write, output reasoning, input/output audio and
cached audio input tokens, each either an integer or ``{"base": n, "tiers": [{"start": tokens, "price": n}]}``
(context-size tiers, chosen by the call's input tokens), and a per-request fee (micro-USD per 1K requests). A missing
price is null. Consecutive date-constrained entries with identical prices are merged.

Skipped, deliberately: request-context price variants (batch, service tiers, fast mode: genai-prices'
``calc_price`` applies them only when asked) and units no record carries (image and video tokens, cache writes
by modality, web searches, seconds, characters, pages): those are charged nothing, as ``calc_price`` charges a usage
without them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_EVEN, Decimal
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from opsmeter_pricing.catalog import catalog_digest

SOURCE_PACKAGE = "genai-prices"
CATALOG_PATH = Path(__file__).with_name("catalog.json")
UNIT = "micro_usd_per_mtok"

_PRICE_FIELDS = {
    "input_mtok": "input_micro_usd_per_mtok",
    "output_mtok": "output_micro_usd_per_mtok",
    "cache_read_mtok": "cached_input_micro_usd_per_mtok",
    "cache_write_mtok": "cache_write_input_micro_usd_per_mtok",
    "output_reasoning_mtok": "reasoning_micro_usd_per_mtok",
    "input_audio_mtok": "input_audio_micro_usd_per_mtok",
    "output_audio_mtok": "output_audio_micro_usd_per_mtok",
    "cache_audio_read_mtok": "cached_input_audio_micro_usd_per_mtok",
    "requests_kcount": "micro_usd_per_1k_requests",
    "cache_write_1h_mtok": "cache_write_1h_input_micro_usd_per_mtok",
}
"""genai-prices price keys kept, and their names in ``catalog.json`` (both per 1M tokens, or per 1K requests)."""


@dataclass(frozen=True, slots=True)
class TierCorrection:
    """A context-size tier the provider bills and genai-prices lacks, added to one model's flat prices.

    ``prices`` maps each genai-prices price key to (the flat USD/MTok it must hold, the USD/MTok above ``start``
    input tokens)."""

    provider: str
    model: str
    start: int
    prices: dict[str, tuple[str, str]]
    source: str


CORRECTIONS = (
    TierCorrection(
        provider="anthropic",
        model="claude-sonnet-4-0",
        start=200_000,
        prices={
            "input_mtok": ("3", "6"),
            "output_mtok": ("15", "22.5"),
            "cache_read_mtok": ("0.3", "0.6"),
            "cache_write_mtok": ("3.75", "7.5"),
            "cache_write_1h_mtok": ("6", "12"),
        },
        source="Anthropic's long context pricing, prompts above 200K input tokens including cache tokens: "
        "https://docs.anthropic.com/en/docs/about-claude/pricing#long-context-pricing",
    ),
)
"""Prices the pinned genai-prices lacks, added at snapshot time and listed in the catalog's ``adjustments``."""

ANTHROPIC_1H_WRITE = Decimal(2)
"""A 1-hour cache write costs 2x the base input price (5-minute writes 1.25x): Anthropic's prompt-caching rule."""
ANTHROPIC_5M_WRITE = Decimal("1.25")


def build_catalog() -> dict[str, Any]:
    """Build the catalog dict (with its version id) from the installed genai-prices data."""
    from genai_prices.data import providers

    adjustments: list[str] = []
    out_providers = [
        {
            "id": provider.id,
            "name": provider.name,
            "provider_match": _rule(provider.provider_match),
            "model_match": _rule(provider.model_match),
            "fallback_providers": list(provider.fallback_model_providers or []),
            "models": [_model(provider.id, model, adjustments) for model in provider.models],
        }
        for provider in providers
    ]
    source_version = package_version(SOURCE_PACKAGE)
    content: dict[str, Any] = {
        "source": {"package": SOURCE_PACKAGE, "version": source_version},
        "unit": UNIT,
        "adjustments": adjustments,
        "providers": out_providers,
    }
    return {"version": f"{SOURCE_PACKAGE}-{source_version}+{catalog_digest(content)[:12]}", **content}


def render_catalog(catalog: dict[str, Any]) -> str:
    """Serialize the catalog deterministically, as it is checked in."""
    return json.dumps(catalog, indent=1, ensure_ascii=False) + "\n"


def _model(provider_id: str, model: Any, adjustments: list[str]) -> dict[str, Any]:
    from genai_prices.types import ConditionalPrice, ModelPrice, StartDateConstraint, TimeOfDateConstraint

    conditional: list[ConditionalPrice] = (
        [ConditionalPrice(prices=model.prices)] if isinstance(model.prices, ModelPrice) else list(model.prices)
    )
    periods: list[dict[str, Any]] = []
    for entry in conditional:
        effective_from = None
        time_of_day = None
        if isinstance(entry.constraint, StartDateConstraint):
            start = datetime.combine(entry.constraint.start_date, time(0), tzinfo=UTC)
            effective_from = start.isoformat().replace("+00:00", "Z")
        elif isinstance(entry.constraint, TimeOfDateConstraint):
            time_of_day = [_utc_time(entry.constraint.start_time), _utc_time(entry.constraint.end_time)]
        where = f"{provider_id}/{model.id}"
        source = _corrected(provider_id, model.id, entry.prices, adjustments)
        source = _with_1h_writes(model.id, where, source, adjustments)
        prices = {field: _price(source.get(key), f"{where} {key}", adjustments) for key, field in _PRICE_FIELDS.items()}
        previous = periods[-1] if periods else None
        if (
            previous is not None
            and time_of_day is None
            and previous["time_of_day_utc"] is None
            and all(previous[field] == value for field, value in prices.items())
        ):
            continue
        periods.append({"effective_from": effective_from, "time_of_day_utc": time_of_day, **prices})
    rule = _rule(model.match)
    return {
        "id": model.id,
        "name": model.name,
        "aliases": _collect(rule, "equals"),
        "prefixes": _collect(rule, "starts_with"),
        "match": rule,
        "prices": periods,
    }


def _corrected(provider_id: str, model_id: str, prices: Any, adjustments: list[str]) -> dict[str, Any]:
    """The entry's prices by genai-prices key, with the ``CORRECTIONS`` for this model applied."""
    from genai_prices.types import Tier, TieredPrices

    source = {key: getattr(prices, key, None) for key in _PRICE_FIELDS}
    for fix in CORRECTIONS:
        if (fix.provider, fix.model) != (provider_id, model_id):
            continue
        for key, (flat, above) in fix.prices.items():
            if source[key] != Decimal(flat):
                raise ValueError(
                    f"correction of {provider_id}/{model_id} {key} expects genai-prices' flat {flat} USD, found "
                    f"{source[key]!r}: review CORRECTIONS (genai-prices may have the tier now)"
                )
            source[key] = TieredPrices(base=Decimal(flat), tiers=[Tier(start=fix.start, price=Decimal(above))])
            adjustments.append(
                f"{provider_id}/{model_id} {key}: tier above {fix.start} input tokens at {above} USD added "
                f"(not in genai-prices; {fix.source})"
            )
    return source


def _with_1h_writes(model_id: str, where: str, source: dict[str, Any], adjustments: list[str]) -> dict[str, Any]:
    """A Claude model's 1-hour cache-write price, 2x input, when its entry has none and prices 5-minute writes at
    Anthropic's 1.25x input (for every tier); the entry as it is otherwise."""
    from genai_prices.types import Tier, TieredPrices

    base_in, write = source["input_mtok"], source["cache_write_mtok"]
    if "claude" not in model_id.lower() or source["cache_write_1h_mtok"] is not None or base_in is None:
        return source

    def levels(value: Any) -> list[tuple[int | None, Decimal]] | None:
        if isinstance(value, TieredPrices):
            return [(None, value.base), *((tier.start, tier.price) for tier in value.tiers)]
        return None if value is None else [(None, value)]

    inputs, writes = levels(base_in), levels(write)
    if inputs is None or writes is None or [s for s, _ in inputs] != [s for s, _ in writes]:
        return source
    if any(w != i * ANTHROPIC_5M_WRITE for (_, i), (_, w) in zip(inputs, writes, strict=True)):
        return source
    one_hour: Decimal | TieredPrices = (
        TieredPrices(
            base=base_in.base * ANTHROPIC_1H_WRITE,
            tiers=[Tier(start=t.start, price=t.price * ANTHROPIC_1H_WRITE) for t in base_in.tiers],
        )
        if isinstance(base_in, TieredPrices)
        else base_in * ANTHROPIC_1H_WRITE
    )
    shown = one_hour.base if isinstance(one_hour, TieredPrices) else one_hour
    adjustments.append(
        f"{where} cache_write_1h_mtok: none in genai-prices; 2x input = {shown.normalize():f} USD"
        f"{' (+tiers)' if isinstance(one_hour, TieredPrices) else ''} (Anthropic's 1-hour cache write price)"
    )
    return {**source, "cache_write_1h_mtok": one_hour}


def _utc_time(value: Any) -> str:
    if value.tzinfo is not None:
        value = datetime.combine(date(2000, 1, 1), value).astimezone(UTC).time()
    return str(value.replace(tzinfo=None).isoformat())


def _price(value: Any, where: str, adjustments: list[str]) -> int | dict[str, Any] | None:
    from genai_prices.types import TieredPrices

    if value is None:
        return None
    if isinstance(value, TieredPrices):
        tiers = [
            {"start": tier.start, "price": _micro(tier.price, f"{where} tier {tier.start}", adjustments)}
            for tier in value.tiers
        ]
        return {"base": _micro(value.base, where, adjustments), "tiers": tiers}
    return _micro(value, where, adjustments)


def _micro(value: Decimal, where: str, adjustments: list[str]) -> int:
    scaled = value * 1_000_000
    exact = scaled.to_integral_value(rounding=ROUND_HALF_EVEN)
    if exact != scaled:
        adjustments.append(f"{where}: {value} USD rounded to {int(exact)} micro-USD")
    return int(exact)


def _rule(clause: Any) -> dict[str, Any] | None:
    from genai_prices import types as t

    match clause:
        case None:
            return None
        case t.ClauseEquals():
            return {"equals": clause.equals}
        case t.ClauseStartsWith():
            return {"starts_with": clause.starts_with}
        case t.ClauseEndsWith():
            return {"ends_with": clause.ends_with}
        case t.ClauseContains():
            return {"contains": clause.contains}
        case t.ClauseRegex():
            return {"regex": clause.regex}
        case t.ClauseOr():
            return {"or": [_rule(c) for c in clause.or_]}
        case t.ClauseAnd():
            return {"and": [_rule(c) for c in clause.and_]}
    raise TypeError(f"unsupported genai-prices match clause: {clause!r}")


def _collect(rule: dict[str, Any] | None, kind: str) -> list[str]:
    """Values of ``kind`` clauses that alone suffice for a match (top level or under ``or``)."""
    if rule is None:
        return []
    if kind in rule:
        return [rule[kind]]
    if "or" in rule:
        return [value for sub in rule["or"] for value in _collect(sub, kind)]
    return []


def main(argv: Sequence[str] | None = None) -> int:
    """Write (``--write``) or verify (``--check``) the checked-in catalog."""
    parser = argparse.ArgumentParser(prog="python -m opsmeter_pricing.snapshot", description=__doc__)
    parser.add_argument("--write", action="store_true", help="write catalog.json")
    parser.add_argument("--check", action="store_true", help="exit 1 if catalog.json is stale")
    args = parser.parse_args(argv)
    catalog = build_catalog()
    text = render_catalog(catalog)
    if args.write:
        CATALOG_PATH.write_text(text, encoding="utf-8")
        print(f"wrote {CATALOG_PATH} ({catalog['version']})")
        return 0
    stale = not CATALOG_PATH.exists() or CATALOG_PATH.read_text(encoding="utf-8") != text
    print(f"{catalog['version']}: catalog.json is {'stale' if stale else 'up to date'}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
