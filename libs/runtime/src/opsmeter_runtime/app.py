"""What every service's composition root and app share: its clients, its consumers, its readiness."""

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from fastapi import APIRouter, FastAPI
from redis.asyncio import Redis

from opsmeter_runtime.auth import CredentialStore
from opsmeter_runtime.consumer import ConsumerEngine, Dispatcher
from opsmeter_runtime.http import (
    ERROR_ANSWERS,
    ReadinessCheck,
    RequestContextMiddleware,
    health_router,
    install_error_handlers,
)
from opsmeter_runtime.kafka import EventPublisher
from opsmeter_runtime.read_deadline import ReadDeadlineMiddleware
from opsmeter_runtime.redis import connect_redis
from opsmeter_runtime.settings import RuntimeSettings


@dataclass
class Resources:
    """Clients opened once per process; closed in reverse order when the service stops."""

    service: str
    settings: RuntimeSettings
    stack: contextlib.AsyncExitStack
    redis: Redis
    publisher: EventPublisher
    consumers: list[ConsumerEngine] = field(default_factory=list)
    extra_checks: dict[str, ReadinessCheck] = field(default_factory=dict)

    @property
    def credentials(self) -> CredentialStore:
        return CredentialStore(self.redis)

    async def consume(self, name: str, topics: Sequence[str], dispatch: Dispatcher, **options: Any) -> ConsumerEngine:
        """Start a consumer group ``<service>.<name>``; it stops (after its last commit) before the clients close."""
        engine = ConsumerEngine(
            settings=self.settings,
            group_id=f"{self.service}.{name}",
            topics=list(topics),
            dispatch=dispatch,
            dead_letters=self.publisher,
            **options,
        )
        await engine.start()
        self.stack.push_async_callback(engine.stop)
        self.consumers.append(engine)
        return engine

    async def _redis_ready(self) -> bool:
        return bool(await self.redis.ping())

    async def _kafka_ready(self) -> bool:
        return self.publisher.started

    async def _consumers_ready(self) -> bool:
        return all(c.running and c.assigned for c in self.consumers)

    def readiness(self) -> dict[str, ReadinessCheck]:
        return {
            "redis": self._redis_ready,
            "kafka": self._kafka_ready,
            "consumers": self._consumers_ready,
            **self.extra_checks,
        }


@asynccontextmanager
async def open_resources(service: str, settings: RuntimeSettings) -> AsyncIterator[Resources]:
    async with contextlib.AsyncExitStack() as stack:
        redis = connect_redis(settings)
        stack.push_async_callback(redis.aclose)
        publisher = EventPublisher(settings, client_id=service)
        await publisher.start()
        stack.push_async_callback(publisher.stop)
        yield Resources(service=service, settings=settings, stack=stack, redis=redis, publisher=publisher)


class HasResources(Protocol):
    @property
    def resources(self) -> Resources: ...


DepsT = TypeVar("DepsT", bound=HasResources)


def create_service_app(
    *,
    title: str,
    bootstrap: Callable[[], AbstractAsyncContextManager[DepsT]],
    routers: Sequence[APIRouter] = (),
    exception_handlers: Mapping[type[Exception], Callable[..., Any]] | None = None,
) -> FastAPI:
    """The FastAPI app of a service: its lifespan runs ``bootstrap``; health, request ids and errors included."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with bootstrap() as deps:
            app.state.deps = deps
            yield

    app = FastAPI(title=title, version="0.1.0", lifespan=lifespan, responses=ERROR_ANSWERS)
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(ReadDeadlineMiddleware)  # outermost: a request is read whatever the app does
    install_error_handlers(app)
    for exc_type, handler in (exception_handlers or {}).items():
        app.add_exception_handler(exc_type, handler)

    def checks() -> dict[str, ReadinessCheck]:
        deps: HasResources = app.state.deps
        return deps.resources.readiness()

    app.include_router(health_router(checks))
    for router in routers:
        app.include_router(router)
    return app
