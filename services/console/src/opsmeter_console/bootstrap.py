"""Composition root: one HTTP client for the upstream services and the credentials projection in Redis."""

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from redis.asyncio import Redis

from opsmeter_console.adapters.sessions import RedisSessions
from opsmeter_console.adapters.upstream import upstream_client
from opsmeter_console.config import ConsoleSettings
from opsmeter_runtime.auth import CredentialStore
from opsmeter_runtime.redis import connect_redis

SERVICE = "console"


@dataclass(frozen=True)
class ConsoleDeps:
    settings: ConsoleSettings
    redis: Redis
    http: httpx.AsyncClient

    async def redis_ready(self) -> bool:
        return bool(await self.redis.ping())

    @property
    def credentials(self) -> CredentialStore:
        return CredentialStore(self.redis)

    @property
    def sessions(self) -> RedisSessions:
        return RedisSessions(self.redis, max_age_s=self.settings.session_max_age_s)

    async def web_built(self) -> bool:
        return (self.settings.web_dir / "index.html").is_file()


@asynccontextmanager
async def bootstrap(settings: ConsoleSettings) -> AsyncIterator[ConsoleDeps]:
    async with contextlib.AsyncExitStack() as stack:
        redis = connect_redis(settings.runtime)
        stack.push_async_callback(redis.aclose)
        http = upstream_client(settings.upstream_timeout_s)
        stack.push_async_callback(http.aclose)
        yield ConsoleDeps(settings=settings, redis=redis, http=http)
