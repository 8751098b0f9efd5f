"""Redis client construction; one client per process, opened in the lifespan."""

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, cast

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError

from opsmeter_runtime.settings import RuntimeSettings


def connect_redis(settings: RuntimeSettings) -> "Redis":
    """A pooled asyncio client (bytes in, bytes out); redis-py's cluster client when ``redis_cluster`` is set."""
    return redis_client(
        settings.redis_url,
        cluster=settings.redis_cluster,
        health_check_interval=30,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
    )


def redis_client(url: str, *, cluster: bool, **options: Any) -> "Redis":
    """One Redis, or a Redis Cluster found from the node ``url`` names.

    The cluster client has the same command methods (redis-py's command mixins) and routes each command by its
    key's slot; the services' multi-key calls keep to one workspace's hash tag (ADR 0059), so it is typed as the
    single-node client they are written against.
    """
    retry = Retry(NoBackoff(), retries=1)
    if cluster:
        return cast("Redis", RedisCluster.from_url(url, decode_responses=False, retry=retry, **options))
    return Redis.from_url(url, decode_responses=False, retry=retry, retry_on_error=[RedisConnectionError], **options)


def workspace_tag(workspace_id: str) -> str:
    """``{ws_…}``: the Redis Cluster hash tag that puts every key of one workspace in one slot (ADR 0059)."""
    return "{" + workspace_id + "}"


async def run_script_many(
    redis: "Redis", script: AsyncScript, calls: Sequence[tuple[Sequence[Any], Sequence[Any]]]
) -> list[Any]:
    """``script(keys, args)`` for each call in one pipeline; on a Redis Cluster, where redis-py refuses scripts in
    a pipeline, concurrently, each to the node of its keys."""
    if isinstance(redis, RedisCluster):
        return list(await asyncio.gather(*(script(keys=keys, args=args) for keys, args in calls)))
    pipe = redis.pipeline(transaction=False)
    for keys, args in calls:
        await script(keys=keys, args=args, client=pipe)
    return list(await pipe.execute())


def decode_hash(raw: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    """An HGETALL answer as str → str, whatever the client's decoding."""
    return {_text(k): _text(v) for k, v in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
