"""Opsmeter's effective-dated LLM price catalog (snapshotted from genai-prices) and integer cost pricing."""

from opsmeter_pricing.catalog import (
    CatalogModel,
    CatalogProvider,
    PriceCatalog,
    PriceQuote,
    PublicPricePeriod,
    PublicPricingCatalog,
    PublicPricingModel,
    PublicTier,
    Tariff,
    format_micro_usd,
    normalize_model,
    price,
)
from opsmeter_pricing.prices import PricePeriod, Rate, Tier, Usage, UsageError, charge

__all__ = [
    "CatalogModel",
    "CatalogProvider",
    "PriceCatalog",
    "PricePeriod",
    "PriceQuote",
    "PublicPricePeriod",
    "PublicPricingCatalog",
    "PublicPricingModel",
    "PublicTier",
    "Rate",
    "Tariff",
    "Tier",
    "Usage",
    "UsageError",
    "charge",
    "format_micro_usd",
    "normalize_model",
    "price",
]
