"""The Kafka producer wrapper and topic administration (aiokafka)."""

import asyncio
import contextlib
import functools
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

MAX_BATCH_BYTES = 512 * 1024
"""One record batch's size; under the broker's default message.max.bytes (1 MiB)."""


class PublishError(Exception):
    """The broker did not acknowledge the record within the send timeout."""


_NO_HEADERS: list[tuple[str, bytes]] = []


def append_run(builder: Any, key: bytes | None, records: Sequence[Record], start: int, stop: int) -> int:
    """Append the values of ``records[start:stop]`` (one key) to an aiokafka batch; the index it stopped at.

    It stops at the first record that does not fit, and closes the batch then, as ``BatchBuilder.append``
    does record by record; this calls the C record builder under it directly (the per-record Python of
    that method, serializers and checks, costs more than the record; our producers have no serializers).
    The unit tests check that the batch is the same bytes as one built with ``BatchBuilder.append``.
    """
    if builder._closed:
        return start
    append = builder._builder.append
    offset = builder._relative_offset
    index = start
    while index < stop:
        if append(offset, None, key, records[index][2], _NO_HEADERS) is None:
            builder.close()
            break
        offset += 1
        index += 1
    builder._relative_offset = offset
    return index


class EventPublisher:
    """Publishes events with ``acks=all`` and returns only once the broker acknowledged them."""

    def __init__(self, settings: RuntimeSettings, *, client_id: str) -> None:
        self._settings = settings
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._group: _Group | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._partitioner = DefaultPartitioner()
        self._partitions: dict[tuple[str, bytes | None], tuple[int, int]] = {}

    async def start(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=self._settings.kafka_idempotent_producer,
            request_timeout_ms=int(self._settings.kafka_send_timeout_s * 1000),
            linger_ms=0,
            max_batch_size=MAX_BATCH_BYTES,
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
        """Send ``(topic, key, value)`` records in order; which ones the broker acknowledged within one timeout.

        Records go out as one record batch per partition (in order within each partition), so a batch
        of events costs one produce round trip rather than one client-side send per record.
        """
        if self._producer is None or not records:
            return [False] * len(records)
        group = _Group(asyncio.get_running_loop(), timeout_s or self._settings.kafka_send_timeout_s)
        done = group.join(records)
        await self._queue_group(group)
        return await done

    async def publish_coalesced(
        self, records: Sequence[Record], *, timeout_s: float, linger_s: float = 0.0
    ) -> list[bool]:
        """Like :meth:`publish_many`, but records handed over by concurrent callers share batches.

        Callers that arrive while the previous batch of a partition is still on its way form one group
        that goes out as the next batch: many requests per produce round trip, and no caller waits for
        another's acknowledgement beyond its own records. A group's timeout starts with its first caller.
        An idle publisher first waits ``linger_s`` for more callers to join.
        """
        if self._producer is None or not records:
            return [False] * len(records)
        loop = asyncio.get_running_loop()
        if self._group is None:
            self._group = _Group(loop, timeout_s)
            if self._flusher is None or self._flusher.done():
                self._flusher = loop.create_task(self._flush_groups(linger_s))
        return await self._group.join(records)

    async def _flush_groups(self, linger_s: float) -> None:
        if linger_s > 0:
            await asyncio.sleep(linger_s)  # idle until now: one produce request for the next moment's callers
        while self._group is not None:
            group, self._group = self._group, None
            try:
                await self._queue_group(group)
            except Exception:  # never leave a caller waiting
                log.exception("kafka_coalesced_send_failed", records=len(group.records))
                group.finish()

    async def _queue_group(self, group: "_Group") -> None:
        """Hand the group's records to the producer as record batches; the group answers its callers."""
        producer = self._producer
        if producer is None:
            group.finish()
            return
        try:
            async with asyncio.timeout_at(group.deadline):
                for topic, partition, builder, ranges in await self._build_batches(producer, group.records):
                    if group.finished:
                        break
                    future = await producer.send_batch(builder, topic, partition=partition)
                    group.pending += 1
                    future.add_done_callback(functools.partial(group.batch_done, ranges))
        except (TimeoutError, KafkaError, PublishError) as exc:
            log.warning("kafka_batch_not_queued", records=len(group.records), error=f"{type(exc).__name__}: {exc}")
        group.queued = True
        if group.pending == 0:
            group.finish()

    async def _build_batches(
        self, producer: AIOKafkaProducer, records: Sequence[Record]
    ) -> list[tuple[str, int, Any, list[range]]]:
        """One record batch per partition (more when one fills up), records in order within each.

        Each batch comes with the ranges of ``records`` it holds. Callers' records come in runs of one
        key (a request's events share their workspace): each run finds its partition and batch once.
        """
        batches: list[tuple[str, int, Any, list[range]]] = []
        open_batches: dict[tuple[str, int], tuple[Any, list[range]]] = {}
        start, count = 0, len(records)
        while start < count:
            topic, key, _ = records[start]
            stop = start + 1
            while stop < count and records[stop][0] == topic and records[stop][1] == key:
                stop += 1
            partition = await self._partition_for(producer, topic, key)
            current = open_batches.get((topic, partition))
            index = start
            while index < stop:
                fresh = current is None
                if current is None:
                    current = open_batches[(topic, partition)] = (producer.create_batch(), [])
                    batches.append((topic, partition, current[0], current[1]))
                fitted = append_run(current[0], key, records, index, stop)
                if fitted > index:
                    current[1].append(range(index, fitted))
                elif fresh:
                    raise PublishError(f"{topic}: a record of {len(records[index][2])} bytes does not fit a batch")
                if fitted < stop:
                    current = None  # full: the rest of the run goes to a new batch
                index = fitted
            start = stop
        for _, _, builder, _ in batches:
            builder.close()
        return batches

    async def _partition_for(self, producer: AIOKafkaProducer, topic: str, key: bytes | None) -> int:
        """The partition ``send(key=...)`` would choose, so batched and single sends of a key stay in order."""
        partitions = producer.client.cluster.partitions_for_topic(topic)
        if not partitions:
            partitions = await producer.partitions_for(topic)
        count = len(partitions)
        cached = self._partitions.get((topic, key))
        if cached is not None and cached[0] == count:
            return cached[1]
        available = producer.client.cluster.available_partitions_for_topic(topic) or partitions
        chosen: int = self._partitioner(key, sorted(partitions), sorted(available))
        if key is not None:
            if len(self._partitions) > 100_000:
                self._partitions.clear()
            self._partitions[(topic, key)] = (count, chosen)
        return chosen

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


class _Group:
    """Records of callers sent together, and what the broker acknowledged of them by the deadline."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float) -> None:
        self.deadline = loop.time() + timeout_s
        self.records: list[Record] = []
        self.waiters: list[tuple[int, int, asyncio.Future[list[bool]]]] = []
        self.acked: list[bool] = []
        self.pending = 0
        self.queued = False
        self.finished = False
        self.timer = loop.call_at(self.deadline, self.finish)
        self._loop = loop

    def join(self, records: Sequence[Record]) -> "asyncio.Future[list[bool]]":
        """Add a caller's records; the future answers which of them were acknowledged."""
        done: asyncio.Future[list[bool]] = self._loop.create_future()
        self.waiters.append((len(self.records), len(records), done))
        self.records.extend(records)
        self.acked.extend([False] * len(records))
        return done

    def batch_done(self, ranges: list[range], future: "asyncio.Future[Any]") -> None:
        if not future.cancelled() and future.exception() is None:
            for held in ranges:
                self.acked[held.start : held.stop] = [True] * len(held)
        self.pending -= 1
        if self.pending == 0 and self.queued:
            self.finish()

    def finish(self) -> None:
        """Answer every caller with what is acknowledged now (at the deadline: the rest counts as not)."""
        if self.finished:
            return
        self.finished = True
        self.timer.cancel()
        for start, count, done in self.waiters:
            if not done.done():
                done.set_result(self.acked[start : start + count])


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
