"""Each workspace's OpenTelemetry attribute names (``workspace.otel_attributes_set``), projected into Redis.

Read per OTLP request through a short in-process cache; while Redis does not answer, the last names read (or
the defaults) stand in, so traces keep flowing as every other ingest path does.
"""

import time

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from opsmeter_contracts.events import OtelAttributesSetPayload
from opsmeter_ingest.otlp.mapping import AttributeNames
from opsmeter_runtime.logs import get_logger
from opsmeter_runtime.redis import workspace_tag

log = get_logger(__name__)

CACHE_TTL_S = 5.0
"""How long one process keeps a workspace's names: a change applies to its traces within this."""


def otel_attributes_key(workspace_id: str) -> str:
    return f"opsmeter:otel-attributes:{workspace_tag(workspace_id)}"


def names_of(payload: OtelAttributesSetPayload) -> AttributeNames:
    return AttributeNames(
        endpoint_tag=payload.endpoint_tag_attributes,
        endpoint_tag_from_root_span=payload.endpoint_tag_from_root_span,
        user_id=payload.user_id_attributes,
        prompt_version=payload.prompt_version_attributes,
    )


class OtelAttributeStore:
    def __init__(self, redis: Redis, *, ttl_s: float = CACHE_TTL_S) -> None:
        self._redis = redis
        self._ttl_s = ttl_s
        self._cache: dict[str, tuple[float, AttributeNames]] = {}

    async def get(self, workspace_id: str) -> AttributeNames:
        now = time.monotonic()
        cached = self._cache.get(workspace_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            raw = await self._redis.get(otel_attributes_key(workspace_id))
        except (RedisError, OSError) as exc:
            log.warning("otel_attributes_unavailable", error=str(exc))
            return cached[1] if cached is not None else AttributeNames()
        names = AttributeNames() if raw is None else names_of(OtelAttributesSetPayload.model_validate_json(raw))
        self._cache[workspace_id] = (now + self._ttl_s, names)
        return names

    async def save(self, workspace_id: str, payload: OtelAttributesSetPayload) -> None:
        await self._redis.set(otel_attributes_key(workspace_id), orjson.dumps(payload.model_dump(mode="json")))
        self._cache.pop(workspace_id, None)
