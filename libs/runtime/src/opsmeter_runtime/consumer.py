"""The one consumer engine: decode → handlers → commit, with retries and dead letters.

At-least-once: offsets are committed only after the handlers of a batch returned, so a crash replays
the batch and handlers must be idempotent (they dedupe by ``event_id``). Every handler failure is
classified (:func:`opsmeter_runtime.errors.classify_failure`):

- transient (Redis, ClickHouse or the broker unavailable): retried with capped backoff for as long as
  it lasts, holding the partition and committing nothing; a stop while it lasts leaves the batch
  uncommitted, so it replays on the next start;
- poison (undecodable, invalid, or a handler that says so): to ``<topic>.dlq`` at once;
- unknown (a bug): ``max_attempts`` tries, then ``<topic>.dlq``.

A dead letter carries the error in its headers and is never dropped; ``opsmeter dlq replay`` sends it
back to its topic.
"""

import asyncio
import contextlib
import inspect
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from opsmeter_contracts import AnyEvent, DecodeError, decode_event
from opsmeter_contracts.topics import dead_letter_topic
from opsmeter_runtime.errors import Failure, classify_failure
from opsmeter_runtime.kafka import EventPublisher, PublishError
from opsmeter_runtime.logs import bound_contextvars, get_logger
from opsmeter_runtime.settings import RuntimeSettings

log = get_logger(__name__)

EventHandler = Callable[[Any], Awaitable[None]]
BatchHandler = Callable[[Sequence[Any]], Awaitable[None]]
Dispatcher = Callable[[Sequence[AnyEvent]], Awaitable[None]]

DEAD_LETTER_HEADERS = frozenset(
    {
        "x-error",
        "x-error-type",
        "x-failure",
        "x-error-trace",
        "x-original-topic",
        "x-original-partition",
        "x-original-offset",
        "x-consumer-group",
        "x-failed-at",
    }
)
"""The headers the engine adds to a dead letter (a replay drops them again)."""


def inject(handler: Callable[..., Awaitable[None]], deps: Mapping[str, object]) -> Callable[[Any], Awaitable[None]]:
    """Bind the keyword-only dependencies a handler asks for by parameter name."""
    wanted = {
        name: deps[name]
        for name, param in inspect.signature(handler).parameters.items()
        if param.kind is inspect.Parameter.KEYWORD_ONLY
    }
    missing = [
        name
        for name, param in inspect.signature(handler).parameters.items()
        if param.kind is inspect.Parameter.KEYWORD_ONLY and name not in deps
    ]
    if missing:
        raise TypeError(f"{handler.__name__} needs dependencies nobody provides: {missing}")

    async def bound(message: Any) -> None:
        await handler(message, **wanted)

    bound.__name__ = handler.__name__
    return bound


def build_dispatcher(
    *,
    event_handlers: Mapping[type, Sequence[Callable[..., Awaitable[None]]]] | None = None,
    batch_handlers: Mapping[type, Sequence[Callable[..., Awaitable[None]]]] | None = None,
    deps: Mapping[str, object],
) -> Dispatcher:
    """One dispatcher from the service's literal handler dicts; events of other types are acknowledged."""
    per_event = {t: [inject(h, deps) for h in hs] for t, hs in (event_handlers or {}).items()}
    per_batch = {t: [inject(h, deps) for h in hs] for t, hs in (batch_handlers or {}).items()}

    async def dispatch(events: Sequence[AnyEvent]) -> None:
        by_type: dict[type, list[AnyEvent]] = {}
        for event in events:
            by_type.setdefault(type(event), []).append(event)
        for event_type, group in by_type.items():
            for batch_handler in per_batch.get(event_type, []):
                await batch_handler(group)
            for handler in per_event.get(event_type, []):
                for event in group:
                    with bound_contextvars(event_id=str(event.event_id), workspace_id=event.workspace_id):
                        await handler(event)

    return dispatch


class _StopRequested(Exception):
    """Stopping (or draining) while a store is down: leave the batch uncommitted so it replays on the next start."""


@dataclass
class _Decoded:
    record: ConsumerRecord[bytes, bytes]
    event: AnyEvent


@dataclass
class ConsumerEngine:
    """Runs one consumer group over ``topics`` until :meth:`stop`."""

    settings: RuntimeSettings
    group_id: str
    topics: Sequence[str]
    dispatch: Dispatcher
    dead_letters: EventPublisher
    max_batch: int = 500
    """At most this many records are buffered and handed to the handlers at once (bounded memory)."""
    linger_ms: int = 0
    """Wait up to this long to fill ``max_batch`` before handling a smaller batch; 0 handles every poll.
    With a linger the assigned partitions are paused while a batch is handled (backpressure)."""
    poll_timeout_ms: int = 200
    max_attempts: int = 5
    backoff_s: float = 0.1
    max_backoff_s: float = 5.0
    _consumer: AIOKafkaConsumer | None = field(default=None, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _draining: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _drained: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _buffer: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = field(default_factory=dict, init=False)
    _committed: dict[TopicPartition, int] = field(default_factory=dict, init=False)
    processed: int = field(default=0, init=False)
    dead_lettered: int = field(default=0, init=False)

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=self.group_id,
            client_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self.settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=self.settings.kafka_heartbeat_interval_ms,
            max_poll_records=self.max_batch,
        )
        await consumer.start()
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(), name=f"consumer:{self.group_id}")

    @property
    def assigned(self) -> bool:
        return self._consumer is not None and bool(self._consumer.assignment())

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self, drain_timeout_s: float = 15.0) -> None:
        """Consume until a poll comes back empty (or the timeout), commit, and leave the group."""
        self._draining.set()
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._drained.wait()), drain_timeout_s)
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def lag(self) -> dict[TopicPartition, int]:
        """Records behind the partition's high watermark, per assigned partition (from the last fetch)."""
        consumer = self._consumer
        if consumer is None:
            return {}
        result: dict[TopicPartition, int] = {}
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            committed = self._committed.get(tp)
            if committed is None:
                committed = await consumer.committed(tp)
            if highwater is not None and committed is not None:
                result[tp] = max(0, highwater - committed)
        return result

    async def _run(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        lingering_since: float | None = None
        while not self._stopping.is_set():
            buffered = sum(len(records) for records in self._buffer.values())
            timeout_ms = self.poll_timeout_ms
            if lingering_since is not None:
                waited_ms = (time.monotonic() - lingering_since) * 1000
                timeout_ms = max(0, min(timeout_ms, int(self.linger_ms - waited_ms)))
            try:
                batches = await consumer.getmany(timeout_ms=timeout_ms, max_records=max(1, self.max_batch - buffered))
            except KafkaError as exc:
                log.warning("consumer_poll_failed", group=self.group_id, error=str(exc))
                await asyncio.sleep(self.backoff_s)
                continue
            if self._draining.is_set() and not any(batches.values()) and not buffered and self.assigned:
                self._drained.set()
                return
            for tp, records in batches.items():
                if records:
                    self._buffer.setdefault(tp, []).extend(records)
            buffered = sum(len(records) for records in self._buffer.values())
            if not buffered:
                continue
            lingering_since = lingering_since or time.monotonic()
            due = (
                self.linger_ms <= 0
                or buffered >= self.max_batch
                or self._draining.is_set()
                or (time.monotonic() - lingering_since) * 1000 >= self.linger_ms
            )
            if due:
                try:
                    await self._flush()
                except _StopRequested:
                    self._drained.set()
                    return
                lingering_since = None

    async def _flush(self) -> None:
        """Handle everything buffered as one batch, then commit each partition's next offset."""
        assert self._consumer is not None
        consumer = self._consumer
        buffer, self._buffer = self._buffer, {}
        assigned = consumer.assignment()
        owned = {tp: records for tp, records in buffer.items() if tp in assigned}
        paused = list(assigned) if self.linger_ms > 0 else []
        if paused:
            consumer.pause(*paused)
        try:
            await self._process(owned)
        finally:
            if paused:
                still_assigned = consumer.assignment()
                consumer.resume(*[tp for tp in paused if tp in still_assigned])

    async def _process(self, buffer: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        decoded: list[_Decoded] = []
        for records in buffer.values():
            for record in records:
                try:
                    decoded.append(_Decoded(record, decode_event(record.value or b"")))
                except DecodeError as exc:
                    await self._dead_letter(record, exc)
        if decoded:
            await self._handle(decoded)
        for tp, records in buffer.items():
            self.processed += len(records)
            await self._commit(tp, records[-1].offset + 1)

    async def _handle(self, items: list[_Decoded]) -> None:
        try:
            await self._with_retries([i.event for i in items], attempts=self.max_attempts)
            return
        except _StopRequested:
            raise
        except Exception as exc:
            if len(items) == 1:
                await self._dead_letter(items[0].record, exc)
                return
            log.warning("batch_failed_isolating", group=self.group_id, size=len(items), error=repr(exc))
        for item in items:
            try:
                await self._with_retries([item.event], attempts=self.max_attempts)
            except _StopRequested:
                raise
            except Exception as exc:
                await self._dead_letter(item.record, exc)

    async def _with_retries(self, events: Sequence[AnyEvent], *, attempts: int) -> None:
        attempt = 0
        delay = self.backoff_s
        while True:
            attempt += 1
            try:
                await self.dispatch(events)
                return
            except Exception as exc:
                failure = classify_failure(exc)
                if failure is Failure.POISON:
                    raise
                if failure is Failure.TRANSIENT:
                    log.warning(
                        "handler_transient_failure",
                        group=self.group_id,
                        attempt=attempt,
                        retry_in_s=delay,
                        error=f"{type(exc).__name__}: {exc}",
                    )
                    if self._draining.is_set() or self._stopping.is_set():
                        raise _StopRequested from exc
                    wake_on_drain = True
                else:
                    if self._stopping.is_set():
                        raise _StopRequested from exc
                    if attempt >= attempts:
                        raise
                    log.warning("handler_failed_retrying", group=self.group_id, attempt=attempt, error=repr(exc))
                    wake_on_drain = False
            await self._pause(delay, wake_on_drain=wake_on_drain)
            delay = min(delay * 2, self.max_backoff_s)

    async def _pause(self, delay: float, *, wake_on_drain: bool) -> None:
        """Sleep ``delay`` seconds, or less if a stop (or, when asked, a drain) comes meanwhile."""
        events = [self._stopping, self._draining] if wake_on_drain else [self._stopping]
        waiters = [asyncio.ensure_future(event.wait()) for event in events]
        try:
            await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], exc: BaseException) -> None:
        headers = [
            *(record.headers or ()),
            ("x-error", str(exc)[:4000].encode()),
            ("x-error-type", type(exc).__name__.encode()),
            ("x-failure", classify_failure(exc).value.encode()),
            ("x-error-trace", "".join(traceback.format_exception(exc))[-4000:].encode()),
            ("x-original-topic", record.topic.encode()),
            ("x-original-partition", str(record.partition).encode()),
            ("x-original-offset", str(record.offset).encode()),
            ("x-consumer-group", self.group_id.encode()),
            ("x-failed-at", datetime.now(UTC).isoformat().encode()),
        ]
        delay = self.backoff_s
        while True:
            try:
                await self.dead_letters.publish_raw(
                    dead_letter_topic(record.topic), record.key, record.value or b"", headers
                )
                break
            except PublishError as publish_error:
                log.error("dead_letter_publish_failed", error=str(publish_error))
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff_s)
        self.dead_lettered += 1
        log.error(
            "message_dead_lettered",
            group=self.group_id,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error=str(exc)[:500],
        )

    async def _commit(self, tp: TopicPartition, offset: int) -> None:
        assert self._consumer is not None
        try:
            await self._consumer.commit({tp: offset})
            self._committed[tp] = offset
        except CommitFailedError as exc:
            log.warning("commit_failed_rebalance", group=self.group_id, partition=tp.partition, error=str(exc))
