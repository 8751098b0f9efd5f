"""Pytest fixtures for integration tests on real engines, started once per test run.

``OPSMETER_TEST_BACKEND=local`` (default): the Tansu broker and redis-server as child processes on
free ports, chDB in-process. ``OPSMETER_TEST_BACKEND=containers``: Kafka, Redis and a ClickHouse
server through testcontainers; skipped, with the reason, when no Docker engine answers.
"""

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from opsmeter_contracts import LlmRequestIngested, LlmRequestIngestedPayload, Topics, encode_event
from opsmeter_contracts.topics import ALL_TOPICS, COMPACTED_TOPICS
from opsmeter_runtime.clickhouse import ClickHouse
from opsmeter_runtime.kafka import EventPublisher, ensure_topics
from opsmeter_runtime.localstack import broker_process, free_port, port_open, redis_process, wait_for
from opsmeter_runtime.settings import RuntimeSettings

SPEC_EXAMPLE_BODY: dict[str, object] = {
    "externalRequestId": "req_01HZX3",
    "provider": "openai",
    "model": "gpt-4o-mini",
    "endpointTag": "checkout.ai_summary",
    "promptVersion": "v12",
    "userId": "u_5f2c",
    "inputTokens": 812,
    "outputTokens": 164,
    "latencyMs": 930,
    "status": "success",
}
"""SPEC §5's example ingest body, the one every test and benchmark sends."""


@dataclass(frozen=True)
class Engines:
    backend: str
    kafka_bootstrap: str
    redis_url: str
    clickhouse_url: str | None
    """None: chDB, embedded in whichever process opens a path under the data dir."""
    data_dir: Path

    def settings(self, **overrides: object) -> RuntimeSettings:
        values: dict[str, object] = {
            "env": "test",
            "kafka_bootstrap": self.kafka_bootstrap,
            "redis_url": self.redis_url,
            "clickhouse_url": self.clickhouse_url,
            "data_dir": self.data_dir,
            "kafka_session_timeout_ms": 3000,
            "kafka_heartbeat_interval_ms": 1000,
            **overrides,
        }
        return RuntimeSettings.model_validate(values)


def eventually(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    """The first truthy result of ``check`` (polled every 0.1 s), or AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s")
        time.sleep(0.1)
    return result


def selected_backend() -> str:
    return os.environ.get("OPSMETER_TEST_BACKEND", "local")


def _docker_unavailable_reason() -> str | None:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
    except Exception as exc:
        return f"OPSMETER_TEST_BACKEND=containers needs a Docker engine, and none answers here ({type(exc).__name__})"
    return None


def _local_engines(data_dir: Path) -> Iterator[Engines]:
    logs = data_dir / "logs"
    broker_port, redis_port = free_port(), free_port()
    broker = broker_process(broker_port, logs / "broker.log").start()
    redis = redis_process(redis_port, data_dir / "redis", logs / "redis.log").start()
    try:
        wait_for(lambda: port_open(broker_port), timeout=30, what="the Tansu broker", process=broker)
        wait_for(lambda: port_open(redis_port), timeout=30, what="redis-server", process=redis)
        bootstrap = f"127.0.0.1:{broker_port}"
        asyncio.run(ensure_topics(bootstrap, ALL_TOPICS, compacted=COMPACTED_TOPICS))
        yield Engines("local", bootstrap, f"redis://127.0.0.1:{redis_port}/0", None, data_dir)
    finally:
        redis.stop(10)
        broker.stop(10)


def _container_engines(data_dir: Path) -> Iterator[Engines]:
    from testcontainers.clickhouse import ClickHouseContainer
    from testcontainers.kafka import KafkaContainer
    from testcontainers.redis import RedisContainer

    with (
        KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft() as kafka,
        RedisContainer("redis:7-alpine") as redis,
        ClickHouseContainer("clickhouse/clickhouse-server:24.8") as clickhouse,
    ):
        bootstrap = kafka.get_bootstrap_server()
        asyncio.run(ensure_topics(bootstrap, ALL_TOPICS, compacted=COMPACTED_TOPICS))
        redis_url = f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}/0"
        ch_url = (
            f"http://{clickhouse.username}:{clickhouse.password}@{clickhouse.get_container_host_ip()}:"
            f"{clickhouse.get_exposed_port(8123)}/{clickhouse.dbname}"
        )
        yield Engines("containers", bootstrap, redis_url, ch_url, data_dir)


@pytest.fixture(scope="session")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    """The real broker, Redis and ClickHouse for this test run."""
    data_dir = tmp_path_factory.mktemp("engines")
    if selected_backend() == "containers":
        reason = _docker_unavailable_reason()
        if reason:
            pytest.skip(reason)
        yield from _container_engines(data_dir)
    else:
        yield from _local_engines(data_dir)


@pytest.fixture(scope="session")
def runtime_settings(engines: Engines) -> RuntimeSettings:
    return engines.settings()


@pytest.fixture(scope="session")
async def clickhouse(engines: Engines) -> AsyncIterator[ClickHouse]:
    """One ClickHouse per run: chDB can open one path per process, so every in-process test shares it."""
    client = ClickHouse.from_settings(engines.settings(data_dir=engines.data_dir / "in-process"))
    await client.connect()
    yield client
    await client.close()


@pytest.fixture
async def redis_client(engines: Engines) -> AsyncIterator[Redis]:
    client = Redis.from_url(engines.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def publisher(runtime_settings: RuntimeSettings) -> AsyncIterator[EventPublisher]:
    """A started Kafka publisher on the test run's broker."""
    started = EventPublisher(runtime_settings, client_id="test")
    await started.start()
    yield started
    await started.stop()


@pytest.fixture
def unique() -> str:
    """A fresh suffix for workspace ids and topic names, so tests never see each other's data."""
    return uuid.uuid4().hex[:12]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.path) or "/e2e/" in str(item.path):
            item.add_marker(pytest.mark.integration)


def build_telemetry(
    workspace_id: str,
    cost: int,
    mode: str = "real",
    at: datetime | None = None,
    tag: str = "checkout",
    model: str = "gpt-4o-mini",
    tokens: int = 20,
) -> LlmRequestIngested:
    """An accepted LLM call as the gateway publishes it, with a fresh event id."""
    at = at or datetime.now(UTC)
    return LlmRequestIngested(
        event_id=uuid.uuid4(),
        occurred_at=at,
        ingested_at=at,
        workspace_id=workspace_id,
        payload=LlmRequestIngestedPayload(
            external_request_id=uuid.uuid4().hex,
            provider="openai",
            model=model,
            model_normalized=model,
            endpoint_tag=tag,
            user_id="u",
            input_tokens=tokens,
            output_tokens=0,
            total_tokens=tokens,
            data_mode=mode,
            cost_micro_usd=cost,
            priced=True,
            price_catalog_version="test",
            api_key_id="k",
        ),
    )


async def produce_telemetry(kafka_bootstrap: str, events: Sequence[LlmRequestIngested]) -> None:
    """Publish ``events`` to the telemetry topic, keyed by workspace, acknowledged by the broker."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        sends = [await producer.send(Topics.TELEMETRY, encode_event(e), key=e.key) for e in events]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
