from datetime import datetime
from typing import Any

from opsmeter_ingest.domain import Pricing
from opsmeter_pricing import PriceCatalog


class CatalogPriceBook:
    """The gateway's view of the versioned price catalog snapshot."""

    def __init__(self, catalog: PriceCatalog) -> None:
        self._catalog = catalog

    @property
    def version(self) -> str:
        return self._catalog.version

    def quote(
        self,
        provider: str,
        model: str,
        *,
        at: datetime,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int,
        reasoning_tokens: int,
    ) -> Pricing:
        q = self._catalog.price(
            provider,
            model,
            at,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_input_tokens=cached_input_tokens,
            reasoning_tokens=reasoning_tokens,
        )
        return Pricing(q.model_normalized, q.priced, q.cost_micro_usd, q.catalog_version, tuple(q.warnings))

    def public_catalog(self) -> dict[str, Any]:
        return self._catalog.to_public_json()
