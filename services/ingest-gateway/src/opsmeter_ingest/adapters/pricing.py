from collections.abc import Callable
from typing import Any

from opsmeter_ingest.event import Pricing
from opsmeter_ingest.record import ValidatedRecord
from opsmeter_pricing import PriceCatalog, Tariff


class CatalogPriceBook:
    """The gateway's view of the versioned price catalog snapshot."""

    def __init__(self, catalog: PriceCatalog) -> None:
        self._catalog = catalog

    @property
    def version(self) -> str:
        return self._catalog.version

    def quoter(self) -> Callable[[ValidatedRecord], Pricing]:
        tariffs: dict[tuple[str, str], Tariff] = {}
        tariff = self._catalog.tariff

        def quote(record: ValidatedRecord) -> Pricing:
            r = record.request
            named = (r.provider, r.model)
            found = tariffs.get(named)
            if found is None:
                found = tariffs[named] = tariff(*named)
            return found.price(
                record.occurred_at,
                r.input_tokens,
                r.output_tokens,
                r.cached_input_tokens or 0,
                r.reasoning_tokens or 0,
                r.cache_write_input_tokens or 0,
            )

        return quote

    def public_catalog(self) -> dict[str, Any]:
        return self._catalog.to_public_json()
