"""HTTP pieces every service shares: health routes, request ids, one error renderer."""

import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsmeter_runtime.errors import OpsmeterError
from opsmeter_runtime.logs import bind_contextvars, clear_contextvars, get_logger

log = get_logger(__name__)

ReadinessCheck = Callable[[], Awaitable[bool]]


class FieldProblem(BaseModel):
    field: str
    message: str


class ErrorAnswer(BaseModel):
    """Every error answer: why (``reason``), what to do (``message``), and the fields at fault."""

    model_config = ConfigDict(extra="allow")

    reason: str | None
    message: str | None = None
    errors: list[FieldProblem] | None = None
    errorId: str | None = None


ERROR_ANSWERS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorAnswer, "description": description}
    for status, description in {
        400: "The body is not JSON",
        401: "Missing or invalid credentials",
        402: "Plan limit reached or budget exceeded (ingest)",
        403: "The role or plan does not allow it",
        404: "No such workspace or resource (another workspace's is 'not found' too)",
        409: "Conflicts with the current state",
        413: "The body is too large",
        415: "The body is not application/json",
        422: "A field breaks a rule; each is named in errors",
        429: "Over the rate limit; see Retry-After",
        500: "An unexpected error, with an errorId to quote",
        503: "A backing store is unavailable; see Retry-After",
    }.items()
}
"""The error answers every operation may give, declared once for every service's OpenAPI schema."""


def json_body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """An OpenAPI request body for an operation that reads its JSON itself (``openapi_extra``)."""
    schema = model.model_json_schema(by_alias=True)
    return {
        "required": required,
        "content": {"application/json": {"schema": _inlined(schema, schema.get("$defs", {}))}},
    }


def _inlined(node: Any, definitions: Mapping[str, Any]) -> Any:
    """``node`` with each ``#/$defs/X`` reference replaced by X itself (the models are not recursive)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inlined(definitions[ref.removeprefix("#/$defs/")], definitions)
        # A discriminator maps to definitions by reference; inlined, the ``oneOf`` alone says the same.
        return {k: _inlined(v, definitions) for k, v in node.items() if k not in ("$defs", "discriminator")}
    if isinstance(node, list):
        return [_inlined(item, definitions) for item in node]
    return node


class HealthAnswer(BaseModel):
    status: str


class ReadinessAnswer(BaseModel):
    status: str
    checks: dict[str, bool]


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

    @router.get("/healthz", response_model=HealthAnswer)
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @router.get("/readyz", response_model=ReadinessAnswer)
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
