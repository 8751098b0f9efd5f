"""Opsmeter's effective-dated LLM price catalog (snapshotted from genai-prices) and integer cost pricing."""

from opsmeter_pricing.catalog import (
    CatalogModel,
    CatalogProvider,
    PriceCatalog,
    PricePeriod,
    PriceQuote,
    PublicPricePeriod,
    PublicPricingCatalog,
    PublicPricingModel,
    Tariff,
    format_micro_usd,
    normalize_model,
    price,
)

__all__ = [
    "CatalogModel",
    "CatalogProvider",
    "PriceCatalog",
    "PricePeriod",
    "PriceQuote",
    "PublicPricePeriod",
    "PublicPricingCatalog",
    "PublicPricingModel",
    "Tariff",
    "format_micro_usd",
    "normalize_model",
    "price",
]
