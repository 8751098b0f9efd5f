"""A read deadline for every HTTP request: its head and body must arrive within ``timeout_s`` of its first byte.

uvicorn has no header or body read timeout, so a client sending a byte a second would hold a connection
(and a task) as long as it liked. uvicorn's ``http=`` setting takes any asyncio protocol class; this one
*wraps* uvicorn's own protocol (composition through the public ``asyncio.Protocol`` interface, no
subclass) and closes the transport when a request is not read in time. When the request has been read
the app says so through :class:`ReadDeadlineMiddleware` (the request's task inherits a context variable
naming its connection, set while uvicorn parses the bytes that complete the head).
"""

import asyncio
import functools
from contextvars import ContextVar
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from opsmeter_runtime.settings import RuntimeSettings

_CONNECTION: ContextVar["ReadDeadlineProtocol | None"] = ContextVar("opsmeter_http_connection", default=None)


class ReadDeadlineProtocol(asyncio.Protocol):
    """uvicorn's httptools protocol, with a deadline from each request's first byte until it has been read."""

    timeout_s: float | None = None
    """The deadline; by default ``OPSMETER_HTTP_READ_TIMEOUT_S`` (10 s)."""

    def __init__(self, **uvicorn_args: Any) -> None:
        self._inner = HttpToolsProtocol(**uvicorn_args)
        self._timeout_s = self.timeout_s or _configured_timeout_s()
        self._loop = uvicorn_args.get("_loop") or asyncio.get_event_loop()
        self._transport: asyncio.BaseTransport | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._inner.connection_made(transport)  # type: ignore[arg-type]  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        if self._deadline is None:
            self._deadline = self._loop.call_later(self._timeout_s, self._timed_out)
        token = _CONNECTION.set(self)
        try:
            self._inner.data_received(data)
        finally:
            _CONNECTION.reset(token)

    def eof_received(self) -> None:
        self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.request_read()
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def request_read(self) -> None:
        """The current request has been read (or answered): the next one's first byte starts a new deadline."""
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        self._deadline = None
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()


@functools.cache
def _configured_timeout_s() -> float:
    return RuntimeSettings().http_read_timeout_s


class ReadDeadlineMiddleware:
    """Tells the request's connection (if served through :class:`ReadDeadlineProtocol`) once it has been read:
    at once when it has no body, else at its body's last chunk, or when the answer starts first."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        connection = _CONNECTION.get()
        if scope["type"] != "http" or connection is None:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if b"transfer-encoding" not in headers and headers.get(b"content-length", b"0") in (b"0", b""):
            connection.request_read()

        async def receive_body() -> Message:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                connection.request_read()
            return message

        async def send_answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                connection.request_read()
            await send(message)

        await self.app(scope, receive_body, send_answer)
