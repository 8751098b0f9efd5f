import asyncio
from collections.abc import Callable
from typing import Any

from opsmeter_contracts.pricing import WorkspacePricesSetPayload
from opsmeter_ingest.event import Pricing
from opsmeter_ingest.record import ValidatedRecord
from opsmeter_pricing import PriceCatalog, Tariff, Usage
from opsmeter_pricing.workspace import WorkspacePrices, quote_for
from opsmeter_runtime.logs import get_logger
from opsmeter_runtime.projections import WorkspacePricesProjection

log = get_logger(__name__)


def workspace_prices(payload: WorkspacePricesSetPayload) -> WorkspacePrices:
    """A workspace's price list as the pricing library applies it."""
    return WorkspacePrices.of(payload.version, payload.prices)


class CatalogPriceBook:
    """The gateway's view of the versioned price catalog snapshot, and of each workspace's own prices (ADR 57).

    Workspace prices are held in memory: set at once by this process's ``PUT .../prices``, and reloaded from
    the Redis projection whenever another process changed one (checked every ``refresh_s``)."""

    def __init__(self, catalog: PriceCatalog) -> None:
        self._catalog = catalog
        self._workspaces: dict[str, WorkspacePrices] = {}
        self._seen_changes = -1

    @property
    def version(self) -> str:
        return self._catalog.version

    def quoter(self, workspace_id: str) -> Callable[[ValidatedRecord], Pricing]:
        tariffs: dict[tuple[str, str], Tariff] = {}
        tariff = self._catalog.tariff
        own = self._workspaces.get(workspace_id)

        def quote(record: ValidatedRecord) -> Pricing:
            r = record.request
            named = (r.provider, r.model)
            found = tariffs.get(named)
            if found is None:
                found = tariffs[named] = tariff(*named)
            if own is not None:
                usage = Usage(
                    r.input_tokens,
                    r.output_tokens,
                    cache_read=r.cached_input_tokens or 0,
                    cache_write=r.cache_write_input_tokens or 0,
                    reasoning=r.reasoning_tokens or 0,
                    cache_write_1h=r.cache_write_1h_input_tokens or 0,
                )
                return quote_for(found, own, r.provider, r.model, record.occurred_at, usage)
            return found.price(
                record.occurred_at,
                r.input_tokens,
                r.output_tokens,
                r.cached_input_tokens or 0,
                r.reasoning_tokens or 0,
                r.cache_write_input_tokens or 0,
                r.cache_write_1h_input_tokens or 0,
            )

        return quote

    def set_workspace_prices(self, workspace_id: str, payload: WorkspacePricesSetPayload) -> None:
        current = self._workspaces.get(workspace_id)
        if current is None or current.version < payload.version:
            self._workspaces[workspace_id] = workspace_prices(payload)

    async def refresh(self, projection: WorkspacePricesProjection) -> None:
        changes = await projection.changes()
        if changes == self._seen_changes:
            return
        for workspace_id, payload in (await projection.all()).items():
            self.set_workspace_prices(workspace_id, payload)
        self._seen_changes = changes

    async def refresh_forever(self, projection: WorkspacePricesProjection, refresh_s: float = 1.0) -> None:
        while True:
            try:
                await self.refresh(projection)
            except Exception as exc:  # Redis away: keep the prices held, try again
                log.warning("workspace_prices_refresh_failed", error=type(exc).__name__)
            await asyncio.sleep(refresh_s)

    def public_catalog(self) -> dict[str, Any]:
        return self._catalog.to_public_json()
