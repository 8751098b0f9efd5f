"""uvicorn's httptools protocol, with each response's head and first body chunk sent in one write (ADR 48).

uvicorn writes a response's status line and headers as soon as the app starts the response, then the
body as a second write: two ``send`` system calls and, on loopback, two wake-ups of the client, for
every answer. The head is held here until the first body chunk, which an app sends right after it, and
both go out together. Everything else is uvicorn's: parsing, keep-alive, pipelining, flow control,
``Expect: 100-continue`` (written at once: it is not a response head), timeouts.
"""

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
"""The one write of a cycle that may come before its response head (uvicorn writes it exactly so)."""


class HeadWithBody:
    """A request cycle's transport: the response head waits for the first body chunk (or the close).

    A cycle writes, in order: perhaps ``100 Continue``, then its response head, then body chunks. So the
    first other write is the head. (It holds no reference to its cycle: a reference cycle would keep every
    finished request alive until the cyclic collector runs.)
    """

    __slots__ = ("_head_seen", "_held", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None
        self._head_seen = False

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
        elif not self._head_seen and data != _CONTINUE:
            self._head_seen = True
            self._held = data
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Send a head still held (before the connection closes: a response cut off after its head)."""
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """``uvicorn.Config(http=...)``: uvicorn's httptools protocol with :class:`HeadWithBody` per request.

    It also closes a connection whose request is not read in full within ``read_timeout_s``
    (``OPSMETER_HTTP_READ_TIMEOUT_S``): uvicorn has no header or body read timeout, so a client sending a
    byte a second would hold a connection (and a task) for as long as it liked.
    """

    read_timeout_s: float = 10.0
    """A request's head and body must arrive within this of its first byte (of the connection, for the first)."""
    read_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_read_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_read_deadline()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_read_deadline()

    def on_message_complete(self) -> None:
        self._disarm_read_deadline()
        super().on_message_complete()

    def _arm_read_deadline(self) -> None:
        self._disarm_read_deadline()
        self.read_deadline = self.loop.call_later(self.read_timeout_s, self._read_timed_out)

    def _disarm_read_deadline(self) -> None:
        if self.read_deadline is not None:
            self.read_deadline.cancel()
            self.read_deadline = None

    def _read_timed_out(self) -> None:
        self.read_deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def on_headers_complete(self) -> None:
        previous = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not previous and cycle is not None:  # a new request's cycle (not an upgrade)
            cycle.transport = HeadWithBody(self.transport)  # type: ignore[assignment]


def http_protocol(read_timeout_s: float) -> type[CoalescingHttpToolsProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` with this read timeout."""
    return type("HttpProtocol", (CoalescingHttpToolsProtocol,), {"read_timeout_s": read_timeout_s})
