"""Snapshot genai-prices' bundled data into ``catalog.json`` (run ``-m opsmeter_pricing.snapshot --write``).

Reads only the data bundled in the installed ``genai-prices`` package (never the network). Money is stored
as integers in **micro-USD per 1M tokens** (``*_micro_usd_per_mtok``), i.e. the genai-prices Decimal USD/MTok
value times 10**6. Every genai-prices price we keep is exact in that unit, except a few values that are float
artifacts in the source (``0.18000000000000002``); those are rounded half-even and listed in the catalog's
``adjustments``.

Kept per model: the match rule (equals / starts_with / ends_with / contains / regex / or / and, verbatim), the
explicit aliases (``equals`` clauses) and prefixes (``starts_with`` clauses) derived from it, and every price
entry in genai-prices' order, each with its constraint (a start date becomes ``effective_from`` at 00:00 UTC,
a time of day becomes ``time_of_day_utc``) and its prices for the units a telemetry record can carry: input,
output, cache read (cached input), cache write, output reasoning, input/output audio and cached audio input
tokens, each either an integer or ``{"base": n, "tiers": [{"start": tokens, "price": n}]}`` (context-size
tiers, chosen by the call's input tokens), and a per-request fee (micro-USD per 1K requests). A missing
price is null. Consecutive date-constrained entries with identical prices are merged.

Skipped, deliberately: request-context price variants (batch, service tiers, fast mode: genai-prices'
``calc_price`` applies them only when asked) and units no record carries (image and video tokens, cache writes
by TTL, web searches, seconds, characters, pages): those are charged nothing, as ``calc_price`` charges a usage
without them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
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
}
"""genai-prices price keys kept, and their names in ``catalog.json`` (both per 1M tokens, or per 1K requests)."""


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
        prices = {
            field: _price(getattr(entry.prices, key, None), f"{provider_id}/{model.id} {key}", adjustments)
            for key, field in _PRICE_FIELDS.items()
        }
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
