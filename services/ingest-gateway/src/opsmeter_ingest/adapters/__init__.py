"""Ports the gateway depends on, as small Protocols; real adapters live beside them."""

from collections.abc import Callable
from typing import Any, Literal, Protocol

from opsmeter_ingest.domain import OutgoingEvent, Pricing, ValidatedRecord

Durability = Literal["kafka", "spool"]
"""Where an event became durable."""


class TelemetrySink(Protocol):
    async def publish_many(self, events: list[OutgoingEvent]) -> list[Durability | None]:
        """Where each event became durable (Kafka or the spool), or None when it could not."""


class PriceBook(Protocol):
    @property
    def version(self) -> str: ...

    def quote(self, record: ValidatedRecord) -> Pricing:
        """The cost of one record at the price effective when the call happened."""

    def quoter(self) -> Callable[[ValidatedRecord], Pricing]:
        """:meth:`quote` for the records of one request: each model it names is resolved once."""

    def public_catalog(self) -> dict[str, Any]: ...
