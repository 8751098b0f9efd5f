"""Ports the gateway depends on, as small Protocols; real adapters live beside them."""

from collections.abc import Callable
from typing import Any, Literal, Protocol

from opsmeter_ingest.domain import OutgoingEvent, Pricing, ValidatedRecord

Durability = Literal["kafka", "spool"]
"""Where an event became durable."""


class TelemetrySink(Protocol):
    async def publish_many(self, events: list[OutgoingEvent]) -> list[Durability | None]:
        """Where each event became durable (Kafka or the spool), or None when it could not."""

    def refuses(self, key: bytes, size: int) -> bool:
        """Whether events of ``key`` of about ``size`` bytes could not be made durable now, for certain."""


class PriceBook(Protocol):
    @property
    def version(self) -> str: ...

    def quoter(self) -> Callable[[ValidatedRecord], Pricing]:
        """Prices records at the price effective when each call happened; each model is resolved once.

        One per request (or demo set): it keeps the models it has resolved."""

    def public_catalog(self) -> dict[str, Any]: ...
