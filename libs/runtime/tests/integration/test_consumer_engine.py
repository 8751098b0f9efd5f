import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from uuid import uuid4

import pytest
import redis.exceptions
from aiokafka import AIOKafkaConsumer, TopicPartition

from opsmeter_contracts import AnyEvent, WorkspaceCreated, WorkspaceCreatedPayload
from opsmeter_contracts.topics import dead_letter_topic
from opsmeter_runtime.consumer import ConsumerEngine
from opsmeter_runtime.errors import PoisonMessage
from opsmeter_runtime.kafka import EventPublisher, ensure_topics
from opsmeter_runtime.settings import RuntimeSettings


def workspace_event(name: str) -> WorkspaceCreated:
    now = datetime.now(UTC)
    return WorkspaceCreated(
        event_id=uuid4(),
        occurred_at=now,
        ingested_at=now,
        workspace_id="ws_testconsumer01",
        payload=WorkspaceCreatedPayload(name=name, plan="free"),
    )


@pytest.fixture
async def topic(runtime_settings: RuntimeSettings, unique: str) -> str:
    name = f"test.engine-{unique}"
    await ensure_topics(runtime_settings.kafka_bootstrap, [name, dead_letter_topic(name)], partitions=1)
    return name


async def wait_until(predicate: object, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def read_all(settings: RuntimeSettings, topic: str, expected: int) -> list[tuple[bytes, dict[str, bytes]]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    found: list[tuple[bytes, dict[str, bytes]]] = []
    try:
        async with asyncio.timeout(30):
            while len(found) < expected:
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    found.extend((r.value or b"", dict(r.headers)) for r in records)
    finally:
        await consumer.stop()
    return found


class TestConsumerEngine:
    async def test_poison_goes_to_the_dead_letter_topic_and_the_rest_is_handled(
        self, runtime_settings: RuntimeSettings, topic: str, publisher: EventPublisher, unique: str
    ) -> None:
        seen: list[str] = []

        async def dispatch(events: Sequence[AnyEvent]) -> None:
            seen.extend(e.payload.name for e in events)

        await publisher.publish(topic, workspace_event("first"))
        await publisher.publish_raw(topic, b"ws_x", b"{not json")
        await publisher.publish(topic, workspace_event("second"))
        engine = ConsumerEngine(
            settings=runtime_settings, group_id=f"g-{unique}", topics=[topic], dispatch=dispatch, dead_letters=publisher
        )
        await engine.start()
        try:
            await wait_until(lambda: len(seen) == 2)
        finally:
            await engine.stop()
        assert seen == ["first", "second"]
        [(value, headers)] = await read_all(runtime_settings, dead_letter_topic(topic), 1)
        assert value == b"{not json"
        assert b"not JSON" in headers["x-error"]
        assert headers["x-original-topic"] == topic.encode()

    async def test_a_failing_handler_is_retried_then_dead_lettered_without_blocking_others(
        self, runtime_settings: RuntimeSettings, topic: str, publisher: EventPublisher, unique: str
    ) -> None:
        attempts: dict[str, int] = {}
        handled: list[str] = []

        async def dispatch(events: Sequence[AnyEvent]) -> None:
            for e in events:
                name = e.payload.name
                attempts[name] = attempts.get(name, 0) + 1
                if name == "always-fails" or (name == "flaky" and attempts[name] < 3):
                    raise RuntimeError(f"boom {name}")
            handled.extend(e.payload.name for e in events)

        for name in ("flaky", "always-fails", "fine"):
            await publisher.publish(topic, workspace_event(name))
        engine = ConsumerEngine(
            settings=runtime_settings,
            group_id=f"g-{unique}",
            topics=[topic],
            dispatch=dispatch,
            dead_letters=publisher,
            max_attempts=3,
            backoff_s=0.01,
        )
        await engine.start()
        try:
            await wait_until(lambda: engine.dead_lettered == 1 and "fine" in handled)
        finally:
            await engine.stop()
        assert "flaky" in handled
        assert "fine" in handled
        assert "always-fails" not in handled
        [(_, headers)] = await read_all(runtime_settings, dead_letter_topic(topic), 1)
        assert b"boom always-fails" in headers["x-error"]

    async def test_offsets_are_committed_so_a_restart_does_not_replay(
        self, runtime_settings: RuntimeSettings, topic: str, publisher: EventPublisher, unique: str
    ) -> None:
        seen: list[str] = []

        async def dispatch(events: Sequence[AnyEvent]) -> None:
            seen.extend(e.payload.name for e in events)

        def engine() -> ConsumerEngine:
            return ConsumerEngine(
                settings=runtime_settings,
                group_id=f"g-{unique}",
                topics=[topic],
                dispatch=dispatch,
                dead_letters=publisher,
            )

        await publisher.publish(topic, workspace_event("before-restart"))
        first = engine()
        await first.start()
        await wait_until(lambda: seen == ["before-restart"])
        await first.stop()

        await publisher.publish(topic, workspace_event("after-restart"))
        second = engine()
        await second.start()
        try:
            await wait_until(lambda: "after-restart" in seen)
        finally:
            await second.stop()
        assert seen == ["before-restart", "after-restart"]


class TestTransientIsNotPoison:
    async def test_a_store_outage_is_retried_past_max_attempts_and_nothing_is_dead_lettered(
        self, runtime_settings: RuntimeSettings, topic: str, publisher: EventPublisher, unique: str
    ) -> None:
        attempts = 0
        handled: list[str] = []

        async def dispatch(events: Sequence[AnyEvent]) -> None:
            nonlocal attempts
            attempts += 1
            if attempts <= 8:
                raise redis.exceptions.TimeoutError("Timeout reading from 127.0.0.1:6379")
            handled.extend(e.payload.name for e in events)

        await publisher.publish(topic, workspace_event("during-outage"))
        engine = ConsumerEngine(
            settings=runtime_settings,
            group_id=f"g-{unique}",
            topics=[topic],
            dispatch=dispatch,
            dead_letters=publisher,
            max_attempts=3,
            backoff_s=0.01,
            max_backoff_s=0.05,
        )
        await engine.start()
        try:
            await wait_until(lambda: handled == ["during-outage"])
        finally:
            await engine.stop()
        assert attempts == 9
        assert engine.dead_lettered == 0

    async def test_stop_during_an_outage_returns_at_once_and_leaves_the_event_uncommitted(
        self, runtime_settings: RuntimeSettings, topic: str, publisher: EventPublisher, unique: str
    ) -> None:
        attempts = 0

        async def dispatch(events: Sequence[AnyEvent]) -> None:
            nonlocal attempts
            attempts += 1
            raise ConnectionRefusedError("ClickHouse unreachable")

        await publisher.publish(topic, workspace_event("held"))
        engine = ConsumerEngine(
            settings=runtime_settings,
            group_id=f"g-{unique}",
            topics=[topic],
            dispatch=dispatch,
            dead_letters=publisher,
            backoff_s=10.0,
        )
        await engine.start()
        await wait_until(lambda: attempts >= 1)
        started = asyncio.get_running_loop().time()
        await engine.stop(drain_timeout_s=30)
        assert asyncio.get_running_loop().time() - started < 5  # not the 10 s backoff, not the 30 s drain
        assert engine.dead_lettered == 0
        # Nothing committed: the group's next member starts at the held event.
        reader = AIOKafkaConsumer(bootstrap_servers=runtime_settings.kafka_bootstrap, group_id=f"g-{unique}")
        await reader.start()
        try:
            assert await reader.committed(TopicPartition(topic, 0)) in (None, 0)
        finally:
            await reader.stop()

    async def test_a_handler_that_says_poison_dead_letters_at_once(
        self, runtime_settings: RuntimeSettings, topic: str, publisher: EventPublisher, unique: str
    ) -> None:
        attempts: dict[str, int] = {}

        async def dispatch(events: Sequence[AnyEvent]) -> None:
            for e in events:
                attempts[e.payload.name] = attempts.get(e.payload.name, 0) + 1
                if e.payload.name == "bad":
                    raise PoisonMessage("unknown plan in payload")

        await publisher.publish(topic, workspace_event("bad"))
        engine = ConsumerEngine(
            settings=runtime_settings,
            group_id=f"g-{unique}",
            topics=[topic],
            dispatch=dispatch,
            dead_letters=publisher,
            max_attempts=5,
            backoff_s=0.01,
        )
        await engine.start()
        try:
            await wait_until(lambda: engine.dead_lettered == 1)
        finally:
            await engine.stop()
        assert attempts["bad"] == 1
        [(_, headers)] = await read_all(runtime_settings, dead_letter_topic(topic), 1)
        assert headers["x-failure"] == b"poison"
        assert headers["x-error-type"] == b"PoisonMessage"
