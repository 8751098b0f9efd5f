"""HTTP pieces every service shares: health routes, request ids, one error renderer."""

import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsmeter_runtime.errors import OpsmeterError
from opsmeter_runtime.logs import bind_contextvars, clear_contextvars, get_logger

log = get_logger(__name__)

ReadinessCheck = Callable[[], Awaitable[bool]]


def json_response(
    body: Mapping[str, Any] | orjson.Fragment, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        content=orjson.dumps(body),
        status_code=status_code,
        headers=dict(headers or {}),
        media_type="application/json",
    )


def health_router(checks: Callable[[], Mapping[str, ReadinessCheck]]) -> APIRouter:
    """``/healthz`` answers while the process serves; ``/readyz`` only when every dependency check passes."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @router.get("/readyz")
    async def readyz() -> Response:
        results: dict[str, bool] = {}
        for name, check in checks().items():
            try:
                results[name] = await check()
            except Exception:
                results[name] = False
        ready = all(results.values())
        return json_response({"status": "ready" if ready else "not_ready", "checks": results}, 200 if ready else 503)

    return router


class RequestContextMiddleware:
    """Binds a request id (the caller's ``X-Request-Id`` or a new one) to every log line and answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                request_id = value.decode("latin-1")[:64]
        request_id = request_id or uuid.uuid4().hex
        clear_contextvars()
        bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info(
                "http_request",
                method=scope.get("method"),
                path=scope.get("path"),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )


def install_error_handlers(app: FastAPI) -> None:
    """Render :class:`OpsmeterError` and request validation errors as JSON with a ``reason``."""

    @app.exception_handler(OpsmeterError)
    async def _opsmeter_error(_: Request, exc: OpsmeterError) -> Response:
        return json_response({"reason": exc.reason, "message": exc.message, **exc.body}, exc.status_code, exc.headers)

    @app.exception_handler(RedisError)
    async def _redis_down(_: Request, exc: RedisError) -> Response:
        log.error("redis_unavailable", error=str(exc))
        return json_response(
            {"reason": "unavailable", "message": "a backing store is unavailable; retry shortly"},
            503,
            {"Retry-After": "2"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        error_id = uuid.uuid4().hex
        log.error("unexpected_error", error_id=error_id, exc_info=exc)
        return json_response(
            {
                "reason": "internal_error",
                "message": "an unexpected error; telemetry only, provider calls continue",
                "errorId": error_id,
                "providerCallsContinue": True,
            },
            500,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> Response:
        errors = [
            {
                "field": ".".join(str(p) for p in e["loc"] if p not in ("body", "query", "path")),
                "message": e["msg"],
            }
            for e in exc.errors()
        ]
        return json_response({"reason": "invalid_request", "errors": errors}, 422)
