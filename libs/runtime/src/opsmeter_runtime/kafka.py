"""The Kafka producer wrapper and topic administration (aiokafka)."""

import asyncio
import contextlib
import itertools
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner

from opsmeter_contracts import encode_event
from opsmeter_contracts.envelope import EventEnvelope
from opsmeter_runtime.logs import get_logger
from opsmeter_runtime.settings import RuntimeSettings

log = get_logger(__name__)

Headers = Sequence[tuple[str, bytes]]
Record = tuple[str, bytes | None, bytes]
"""(topic, key, value)"""

Delivery = asyncio.Future[Any] | None
"""A record handed to the producer (its future settles with the broker's acknowledgement or the producer's giving
up), or None: never handed to it."""


def delivered(delivery: Delivery) -> bool | None:
    """True once the broker acknowledged the record, False when it never will (the producer gave up, or the
    record never reached the producer), None while the producer is still trying.

    False after a give-up is not proof the broker lacks the record: a request the broker was slow to answer
    may have been written all the same. Only the idempotent producer, which never gives up, makes it proof.
    """
    if delivery is None:
        return False
    if not delivery.done():
        return None
    return not delivery.cancelled() and delivery.exception() is None


class PublishError(Exception):
    """The broker did not acknowledge the record within the send timeout."""


class EventPublisher:
    """Publishes events with ``acks=all`` and returns only once the broker acknowledged them."""

    def __init__(self, settings: RuntimeSettings, *, client_id: str) -> None:
        self._settings = settings
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._partitioner = DefaultPartitioner()
        """The producer's partitioner, also asked directly for the partition of a run of records sent as one batch."""

    async def start(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=self._settings.kafka_idempotent_producer,
            request_timeout_ms=int(self._settings.kafka_delivery_timeout_s * 1000),
            linger_ms=self._settings.kafka_linger_ms,
            max_batch_size=self._settings.kafka_max_batch_bytes,
            partitioner=self._partitioner,
        )
        await producer.start()
        self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    @property
    def started(self) -> bool:
        return self._producer is not None

    async def publish(self, topic: str, event: EventEnvelope[Any], headers: Headers = ()) -> None:
        """Send ``event`` keyed by its workspace; raise PublishError unless acknowledged in time."""
        await self.publish_raw(topic, event.key, encode_event(event), headers)

    async def publish_raw(
        self, topic: str, key: bytes | None, value: bytes, headers: Headers = (), *, timeout_s: float | None = None
    ) -> None:
        if self._producer is None:
            raise PublishError("producer is not started")
        try:
            async with asyncio.timeout(timeout_s or self._settings.kafka_send_timeout_s):
                await self._producer.send_and_wait(topic, value=value, key=key, headers=list(headers))
        except (TimeoutError, KafkaError) as exc:
            raise PublishError(f"{topic}: {type(exc).__name__}: {exc}") from exc

    async def publish_many(self, records: Sequence[Record], *, timeout_s: float | None = None) -> list[bool]:
        """Send ``(topic, key, value)`` records in order; which ones the broker acknowledged within one timeout."""
        return [delivered(d) is True for d in await self.send_many(records, timeout_s=timeout_s)]

    async def send_many(self, records: Sequence[Record], *, timeout_s: float | None = None) -> list[Delivery]:
        """Send ``(topic, key, value)`` records in order and wait for their acknowledgements for one timeout.

        Each record comes back as its delivery: a future the producer settles when the broker acknowledges the
        record, or when the producer gives up on it (an exception); one still pending when the timeout ends is
        with the producer yet, which keeps trying for ``kafka_delivery_timeout_s`` (for ever with the idempotent
        producer). None for a record never handed to the producer (not started, or the timeout came first).

        A run of records with the same topic and key (a batch request's events: one workspace) goes to the
        producer as record batches of its own (``create_batch``/``send_batch``: one future per batch rather than
        per record, about a third of the CPU); any other record goes through ``send``, and records sent while a
        batch of their partition is open (from this call or any concurrent one) share it, ``linger_ms`` letting
        an idle producer wait for more. Records are handed over in order and a key's run lands on the
        partition ``send`` would pick, so order holds within a partition (the idempotent producer keeps it
        across retries).
        """
        producer = self._producer
        if producer is None or not records:
            return [None] * len(records)
        sent: list[asyncio.Future[Any]] = []
        try:
            async with asyncio.timeout(timeout_s or self._settings.kafka_send_timeout_s):
                for (topic, key), run in itertools.groupby(records, key=lambda r: (r[0], r[1])):
                    values = [value for _, _, value in run]
                    if key is None or len(values) == 1:
                        sent += [await producer.send(topic, value=value, key=key) for value in values]
                    else:
                        sent += await self._send_run(producer, topic, key, values)
                await asyncio.wait(sent)
        except (TimeoutError, KafkaError) as exc:
            log.warning("kafka_records_not_acknowledged", records=len(records), error=f"{type(exc).__name__}: {exc}")
        return [*sent, *[None] * (len(records) - len(sent))]

    async def _send_run(
        self, producer: AIOKafkaProducer, topic: str, key: bytes, values: list[bytes]
    ) -> list[asyncio.Future[Any]]:
        """One key's records as full record batches on its partition; each record's delivery is its batch's."""
        partitions = list(await producer.partitions_for(topic))
        partition = self._partitioner(key, partitions, partitions)
        deliveries: list[asyncio.Future[Any]] = []
        batch, size = producer.create_batch(), 0
        for value in values:
            if batch.append(key=key, value=value, timestamp=None) is None and size:  # full: send it, start another
                deliveries += [await producer.send_batch(batch, topic, partition=partition)] * size
                batch, size = producer.create_batch(), 0
                batch.append(key=key, value=value, timestamp=None)  # an empty batch takes any record
            size += 1
        if size:
            deliveries += [await producer.send_batch(batch, topic, partition=partition)] * size
        return deliveries

    async def topic_exists(self, topic: str) -> bool:
        """Whether the broker knows ``topic`` now (after a local broker restart it may not, until recreated)."""
        if self._producer is None:
            return False
        try:
            async with asyncio.timeout(self._settings.kafka_send_timeout_s):
                metadata = await self._producer.client.fetch_all_metadata()
        except (TimeoutError, KafkaError):
            return False
        return topic in metadata.topics()


async def ensure_topics(
    bootstrap: str, topics: Iterable[str], *, partitions: int = 3, compacted: Iterable[str] = ()
) -> None:
    """Create the topics that do not exist yet (idempotent)."""
    compacted_set = set(compacted)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="opsmeter-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name=t,
                num_partitions=partitions,
                replication_factor=1,
                topic_configs={"cleanup.policy": "compact"} if t in compacted_set else {},
            )
            for t in topics
            if t not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
            log.info("topics_created", topics=[t.name for t in wanted])
    finally:
        await admin.close()
