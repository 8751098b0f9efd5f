"""Redis client construction; one client per process, opened in the lifespan."""

from collections.abc import Mapping

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from opsmeter_runtime.settings import RuntimeSettings


def connect_redis(settings: RuntimeSettings) -> "Redis":
    """A pooled asyncio client (bytes in, bytes out)."""
    return Redis.from_url(
        settings.redis_url,
        decode_responses=False,
        health_check_interval=30,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        retry=Retry(NoBackoff(), retries=1),
        retry_on_error=[RedisConnectionError],
    )


def decode_hash(raw: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    """An HGETALL answer as str → str, whatever the client's decoding."""
    return {_text(k): _text(v) for k, v in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
