"""A raw ASGI fast path for the two ingest endpoints, in front of the FastAPI app.

FastAPI's routing, dependency injection and middleware cost more per request than the whole ingest
logic; the hot endpoints skip them. Everything else (and these routes' OpenAPI schema) stays FastAPI.
"""

import os
import time
from collections.abc import Awaitable, Callable

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from opsmeter_ingest.api import ingest_http
from opsmeter_ingest.bootstrap import GatewayDeps
from opsmeter_ingest.errors import BodyTooLarge
from opsmeter_runtime.logs import bind_contextvars, get_logger

log = get_logger("opsmeter_runtime.http")

Handler = Callable[..., Awaitable[ingest_http.Reply]]


class FastIngestPath:
    def __init__(self, app: ASGIApp, deps: Callable[[], GatewayDeps]) -> None:
        self.app = app
        self._deps = deps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            if path == "/v1/ingest/llm-request":
                await self._handle(scope, receive, send, ingest_http.single, "max_body_bytes")
                return
            if path == "/v1/ingest/llm-requests":
                await self._handle(scope, receive, send, ingest_http.batch, "max_batch_bytes")
                return
        await self.app(scope, receive, send)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, handler: Handler, limit_name: str) -> None:
        started = time.perf_counter()
        api_key = content_type = request_id = None
        declared = -1
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                api_key = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"content-length" and value.isdigit():
                declared = int(value)
            elif name == b"x-request-id":
                request_id = value.decode("latin-1")[:64]
        request_id = request_id or os.urandom(16).hex()
        # Each request runs in its own task with its own copy of the context: nothing to clear first.
        bind_contextvars(request_id=request_id)
        deps = self._deps()
        limit: int = getattr(deps.settings, limit_name)
        try:
            body = await _read_body(receive, declared, limit)
            reply = await handler(deps, api_key=api_key, content_type=content_type, body=body)
            content = orjson.dumps(reply.body)
        except BodyTooLarge as error:
            reply = ingest_http.rejection(error)
            content = orjson.dumps(reply.body)
        except Exception:
            reply = ingest_http.internal_error()
            content = orjson.dumps(reply.body)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(content)).encode()),
            (b"x-request-id", request_id.encode()),
            *((k.lower().encode(), v.encode()) for k, v in reply.headers.items()),
        ]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": content})
        (log.debug if reply.status < 300 else log.info)(
            "http_request",
            method="POST",
            path=scope["path"],
            status=reply.status,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )


async def _read_body(receive: Receive, declared: int, limit: int) -> bytes:
    if declared > limit:
        raise BodyTooLarge(f"body is over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body is over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
