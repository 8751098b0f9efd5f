"""The Kafka producer wrapper and topic administration (aiokafka)."""

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from opsmeter_contracts import encode_event
from opsmeter_contracts.envelope import EventEnvelope
from opsmeter_runtime.logs import get_logger
from opsmeter_runtime.settings import RuntimeSettings

log = get_logger(__name__)

Headers = Sequence[tuple[str, bytes]]


class PublishError(Exception):
    """The broker did not acknowledge the record within the send timeout."""


class EventPublisher:
    """Publishes events with ``acks=all`` and returns only once the broker acknowledged them."""

    def __init__(self, settings: RuntimeSettings, *, client_id: str) -> None:
        self._settings = settings
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=self._settings.kafka_idempotent_producer,
            request_timeout_ms=int(self._settings.kafka_send_timeout_s * 1000),
            linger_ms=0,
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

    async def publish_many(
        self, records: Sequence[tuple[str, bytes | None, bytes]], *, timeout_s: float | None = None
    ) -> list[bool]:
        """Send ``(topic, key, value)`` records in order; which ones the broker acknowledged within one timeout."""
        if self._producer is None or not records:
            return [False] * len(records)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout_s or self._settings.kafka_send_timeout_s)
        futures: list[asyncio.Future[Any]] = []
        try:
            for topic, key, value in records:
                async with asyncio.timeout_at(deadline):
                    futures.append(await self._producer.send(topic, value=value, key=key))
        except (TimeoutError, KafkaError):
            pass
        if futures:
            await asyncio.wait(futures, timeout=max(0.0, deadline - loop.time()))
        for future in futures:
            future.add_done_callback(_consume_outcome)
        acked = [f.done() and not f.cancelled() and f.exception() is None for f in futures]
        return acked + [False] * (len(records) - len(futures))

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


def _consume_outcome(future: asyncio.Future[Any]) -> None:
    """A send that finished after its caller stopped waiting: read its outcome so nothing warns."""
    if not future.cancelled():
        future.exception()


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
