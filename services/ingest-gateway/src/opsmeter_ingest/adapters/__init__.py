"""Ports the gateway depends on, as small Protocols; real adapters live beside them."""

from datetime import datetime
from typing import Any, Protocol

from opsmeter_contracts import LlmRequestIngested
from opsmeter_ingest.domain import Pricing


class TelemetrySink(Protocol):
    async def publish(self, event: LlmRequestIngested) -> None:
        """Return only once the event is durable; raise PublishError otherwise."""


class PriceBook(Protocol):
    @property
    def version(self) -> str: ...

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
    ) -> Pricing: ...

    def public_catalog(self) -> dict[str, Any]: ...
