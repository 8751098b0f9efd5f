"""Each workspace's OpenTelemetry attribute names in the real local Redis: the projection the PUT and the
``workspaces.events`` consumer write, what ``/v1/traces`` reads, and the defaults while Redis is away."""

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from opsmeter_contracts.events import OtelAttributesSet, OtelAttributesSetPayload
from opsmeter_ingest.adapters.otel_attributes import OtelAttributeStore
from opsmeter_ingest.handlers import EVENT_HANDLERS, on_otel_attributes_set
from opsmeter_ingest.otlp.mapping import AttributeNames
from opsmeter_runtime.localstack import free_port
from opsmeter_runtime.testing import Engines


@pytest.fixture
async def redis(engines: Engines) -> AsyncIterator[Redis]:
    client = Redis.from_url(engines.redis_url)
    yield client
    await client.aclose()


def workspace_id() -> str:
    return f"ws_{uuid.uuid4().hex[:20]}"


def payload(**names: object) -> OtelAttributesSetPayload:
    fields: dict[str, object] = {
        "endpoint_tag_attributes": ("app.feature",),
        "endpoint_tag_from_root_span": False,
        "user_id_attributes": ("app.user",),
        "prompt_version_attributes": (),
        "changed_by": "adm_1",
        **names,
    }
    return OtelAttributesSetPayload.model_validate(fields)


class TestOtelAttributeStore:
    async def test_a_workspace_never_configured_reads_the_defaults(self, redis: Redis) -> None:
        assert await OtelAttributeStore(redis).get(workspace_id()) == AttributeNames()

    async def test_the_event_sets_what_the_traces_route_reads(self, redis: Redis) -> None:
        ws = workspace_id()
        reader, projector = OtelAttributeStore(redis, ttl_s=0), OtelAttributeStore(redis)
        assert on_otel_attributes_set in EVENT_HANDLERS[OtelAttributesSet]
        await on_otel_attributes_set(OtelAttributesSet.new(ws, payload()), otel_attributes=projector)
        assert await reader.get(ws) == AttributeNames(
            endpoint_tag=("app.feature",), endpoint_tag_from_root_span=False, user_id=("app.user",), prompt_version=()
        )
        assert await reader.get(workspace_id()) == AttributeNames()

    async def test_a_process_keeps_what_it_read_for_its_cache_time(self, redis: Redis) -> None:
        ws = workspace_id()
        cached, writer = OtelAttributeStore(redis, ttl_s=60), OtelAttributeStore(redis)
        assert await cached.get(ws) == AttributeNames()
        await writer.save(ws, payload())
        assert await cached.get(ws) == AttributeNames(), "kept for its cache time"
        assert (await OtelAttributeStore(redis, ttl_s=0).get(ws)).user_id == ("app.user",)

    async def test_defaults_while_redis_does_not_answer(self) -> None:
        away = Redis.from_url(f"redis://127.0.0.1:{free_port()}", socket_connect_timeout=0.2)
        try:
            assert await OtelAttributeStore(away).get(workspace_id()) == AttributeNames()
        finally:
            await away.aclose()
