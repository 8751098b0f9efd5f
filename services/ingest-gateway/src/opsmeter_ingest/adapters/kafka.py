"""Telemetry durability: Kafka with ``acks=all`` under a short timeout, else the local fsynced spool."""

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from opsmeter_contracts import Topics
from opsmeter_ingest.adapters.spool import Spool, SpooledRecord, SpoolUnavailable
from opsmeter_ingest.event import OutgoingEvent
from opsmeter_ingest.metrics import KAFKA_SEND_LATENCY, SPOOL_DEPTH, SPOOLED_EVENTS
from opsmeter_ingest.ports import Sent, Unconfirmed
from opsmeter_runtime.kafka import Delivery, EventPublisher, PublishError, delivered
from opsmeter_runtime.logs import get_logger

log = get_logger(__name__)

DRAIN_BATCH = 10_000
"""Spooled events per drain round. Under load every await of a round waits behind a loop iteration full
of requests, so a round's fixed cost is large; 10,000 events (~9 MB) keep it small per event."""


class DurableTelemetrySink:
    """Makes events durable and says where each went; ``None`` for an event that could not be."""

    def __init__(self, publisher: EventPublisher, spool: Spool, *, timeout_s: float) -> None:
        self._publisher = publisher
        self._spool = spool
        self._timeout_s = timeout_s
        self._wake = asyncio.Event()
        self._topics_seen: set[str] = set()
        self._sent_before: list[tuple[tuple[int, SpooledRecord], Delivery]] = []
        """The last drain round's records and deliveries, while some were not acknowledged in its time."""
        SPOOL_DEPTH.set(spool.pending)

    def refuses(self, key: bytes, size: int) -> bool:
        """Whether events of ``key`` of about ``size`` bytes would be refused now, before any work on them.

        That is when the key's earlier events wait in the spool (so these must queue behind them there)
        and the spool has no room for them. Answering 503 at once, rather than after validating, admitting
        and pricing them, leaves the event loop to the drainer, which is what makes room again.
        """
        return self._spool.holds(key) and not self._spool.has_room(size)

    async def publish_many(self, events: list[OutgoingEvent]) -> list[Sent]:
        topic = Topics.TELEMETRY
        records: list[tuple[str, bytes, bytes]] = [(topic, e.key, e.value) for e in events]
        held = {key for key in {e.key for e in events} if self._spool.holds(key)}
        # A key with events in the spool goes to the spool too, behind them, so its order holds.
        direct: Sequence[int] = [i for i, r in enumerate(records) if r[1] not in held] if held else range(len(records))
        outcome: list[Sent] = [None] * len(records)
        deliveries: dict[int, Delivery] = {}
        if direct:
            started = time.perf_counter()
            sent = await self._publisher.send_many(
                [records[i] for i in direct] if held else records, timeout_s=self._timeout_s
            )
            KAFKA_SEND_LATENCY.observe(time.perf_counter() - started)
            acked = [delivered(d) is True for d in sent]
            if not held and all(acked):
                return ["kafka"] * len(records)  # the common case: the broker took all of them
            for i, ok, delivery in zip(direct, acked, sent, strict=True):
                if ok:
                    outcome[i] = "kafka"
                else:
                    deliveries[i] = delivery
            if not all(acked):
                log.warning("kafka_slow_spooling", events=acked.count(False))
        to_spool = [i for i, where in enumerate(outcome) if where is None]
        if to_spool:
            try:
                await self._spool.append([SpooledRecord(*records[i]) for i in to_spool])
            except SpoolUnavailable as exc:
                log.error("spool_unavailable", events=len(to_spool), error=str(exc))
                # What the producer holds yet may reach the broker still: unconfirmed, not refused (ADR 62).
                for i in to_spool:
                    delivery = deliveries.get(i)
                    if delivery is not None and delivered(delivery) is None:
                        outcome[i] = Unconfirmed(asyncio.ensure_future(_landed(delivery)))
                return outcome
            for i in to_spool:
                outcome[i] = "spool"
            SPOOLED_EVENTS.inc(len(to_spool))
            SPOOL_DEPTH.set(self._spool.pending)
            self._wake.set()
        return outcome

    async def drain_forever(self, batch: int = DRAIN_BATCH) -> None:
        """Publish spooled events in order whenever Kafka takes them again."""
        delay = 0.2
        while True:
            if self._spool.pending == 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=5.0)
                except TimeoutError:
                    continue
                self._topics_seen.clear()  # a new backlog: the broker may have restarted since
            try:
                drained = await self._drain_once(batch)
            except PublishError as exc:
                self._topics_seen.clear()
                log.warning("spool_drain_waiting_for_kafka", pending=self._spool.pending, error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.2
            if drained:
                log.info("spool_drained", events=drained, pending=self._spool.pending)

    async def _drain_once(self, batch: int) -> int:
        drain_timeout_s = max(5.0, self._timeout_s * 20)
        if self._sent_before:
            # The last round's records the producer still holds are not sent again (they would reach the
            # broker twice) until their deliveries settle; those acknowledged in order leave the spool.
            unsettled = [d for _, d in self._sent_before if d is not None and not d.done()]
            if unsettled:
                await asyncio.wait(unsettled, timeout=drain_timeout_s)
                if not all(d.done() for d in unsettled):
                    raise PublishError(f"{len(unsettled)} spooled events sent earlier are not answered yet")
            previous, self._sent_before = self._sent_before, []
            settled = _acknowledged_prefix([d for _, d in previous])
            await self._spool.commit([record for record, _ in previous[:settled]])
            SPOOL_DEPTH.set(self._spool.pending)
        records = await self._spool.peek(batch)
        if not records:
            return 0
        # Never publish to a topic the broker lost (a restarted local broker would create it anew, with
        # other partitions): checked once per backlog, and again after a failure, not every round.
        topics = {r.topic for _, r in records} - self._topics_seen
        if not all([await self._publisher.topic_exists(t) for t in topics]):
            raise PublishError(f"topics {sorted(topics)} are not on the broker yet")
        self._topics_seen |= topics
        sent = await self._publisher.send_many(
            [(r.topic, r.key, r.value) for _, r in records], timeout_s=drain_timeout_s
        )
        published = _acknowledged_prefix(sent)
        await self._spool.commit(records[:published])
        SPOOL_DEPTH.set(self._spool.pending)
        if published < len(records):
            self._sent_before = list(zip(records[published:], sent[published:], strict=True))
            raise PublishError(f"{len(records) - published} spooled events not acknowledged yet")
        return published


def _acknowledged_prefix(deliveries: Sequence[Delivery]) -> int:
    """How many deliveries, from the first, the broker acknowledged (the spool leaves in order)."""
    count = 0
    while count < len(deliveries) and delivered(deliveries[count]) is True:
        count += 1
    return count


async def _landed(delivery: "asyncio.Future[Any]") -> bool:
    """Whether the broker acknowledged a record the producer held, once the producer knows."""
    await asyncio.wait([delivery])
    return delivered(delivery) is True
