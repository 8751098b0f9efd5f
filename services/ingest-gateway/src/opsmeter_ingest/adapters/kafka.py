"""Telemetry durability: Kafka with ``acks=all`` under a short timeout, else the local fsynced spool."""

import asyncio
import time
from typing import Literal

from opsmeter_contracts import LlmRequestIngested, Topics, encode_event
from opsmeter_ingest.adapters.spool import Spool, SpooledRecord
from opsmeter_ingest.metrics import KAFKA_SEND_LATENCY, SPOOL_DEPTH
from opsmeter_runtime.kafka import EventPublisher, PublishError
from opsmeter_runtime.logs import get_logger

log = get_logger(__name__)

Durability = Literal["kafka", "spool"]


class DurableTelemetrySink:
    """Returns only once an event is durable, and says where; raises SpoolUnavailable when it cannot be."""

    def __init__(self, publisher: EventPublisher, spool: Spool, *, timeout_s: float) -> None:
        self._publisher = publisher
        self._spool = spool
        self._timeout_s = timeout_s
        self._wake = asyncio.Event()
        SPOOL_DEPTH.set(spool.pending)

    async def publish(self, event: LlmRequestIngested) -> Durability:
        value = encode_event(event)
        if self._spool.pending == 0:
            started = time.perf_counter()
            try:
                await self._publisher.publish_raw(Topics.TELEMETRY, event.key, value, timeout_s=self._timeout_s)
            except PublishError as exc:
                log.warning("kafka_unavailable_spooling", error=str(exc))
            else:
                KAFKA_SEND_LATENCY.observe(time.perf_counter() - started)
                return "kafka"
        await self._spool.append([SpooledRecord(Topics.TELEMETRY, event.key, value)])
        SPOOL_DEPTH.set(self._spool.pending)
        self._wake.set()
        return "spool"

    async def drain_forever(self, batch: int = 500) -> None:
        """Publish spooled events in order whenever Kafka takes them again."""
        delay = 0.2
        while True:
            if self._spool.pending == 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=5.0)
                except TimeoutError:
                    continue
            try:
                drained = await self._drain_once(batch)
            except PublishError as exc:
                log.warning("spool_drain_waiting_for_kafka", pending=self._spool.pending, error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.2
            if drained:
                log.info("spool_drained", events=drained, pending=self._spool.pending)

    async def _drain_once(self, batch: int) -> int:
        records = await self._spool.peek(batch)
        if not records:
            return 0
        topics = {r.topic for _, r in records}
        if not all([await self._publisher.topic_exists(t) for t in topics]):
            raise PublishError(f"topics {sorted(topics)} are not on the broker yet")
        sends = [
            self._publisher.publish_raw(record.topic, record.key, record.value, timeout_s=self._timeout_s * 5)
            for _, record in records
        ]
        await asyncio.gather(*sends)
        await self._spool.commit(records[-1][0], len(records))
        SPOOL_DEPTH.set(self._spool.pending)
        return len(records)
