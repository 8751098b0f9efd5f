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
    """``uvicorn.Config(http=...)``: uvicorn's httptools protocol with :class:`HeadWithBody` per request."""

    def on_headers_complete(self) -> None:
        previous = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not previous and cycle is not None:  # a new request's cycle (not an upgrade)
            cycle.transport = HeadWithBody(self.transport)  # type: ignore[assignment]
