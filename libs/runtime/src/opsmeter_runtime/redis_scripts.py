"""Lua scripts over one dedicated, pipelined Redis connection: the hot path's Redis client.

redis-py costs more per call than the scripts themselves (a pipeline object, a ``SCRIPT EXISTS``
round trip per execute, per-command packing and parsing in Python). Here every script call made in
the same event-loop iteration goes out in one write on one connection, Redis answers in order, and
hiredis parses the replies. Each write has one deadline: a reply late past it fails the calls that
wait (the caller degrades) and the connection is dropped, so a late reply is never matched to the
wrong call. Everything else keeps using redis-py.
"""

import asyncio
import collections
import hashlib
import ssl
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import unquote, urlparse

import hiredis

import opsmeter_wire

Arg = str | int | bytes


class ScriptsUnavailable(Exception):
    """Redis did not answer in time (or cannot be reached); nothing is known of the calls' effect."""


class ScriptError(Exception):
    """The script itself failed (an error reply): a bug, not an outage."""


def pack(*args: Arg | list[Arg] | tuple[Arg, ...]) -> bytes:
    """One RESP command (an array of bulk strings; text as UTF-8, ints as decimal text), packed in C.

    A list or tuple argument stands for its items: a script call's keys and arguments are not copied
    into one tuple first. (hiredis's ``pack_command`` formats every length with ``sprintf``: on a batch
    of events it cost about a tenth of the gateway's instructions.)
    """
    return opsmeter_wire.command(*args)


def _items(values: Sequence[Arg]) -> list[Arg] | tuple[Arg, ...]:
    """A script call's keys or arguments as :func:`pack` takes them (a list or tuple stands for its items)."""
    return values if isinstance(values, list | tuple) else list(values)


class _Protocol(asyncio.Protocol):
    def __init__(self, on_lost: "Any") -> None:
        self.reader = hiredis.Reader()
        self.waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self._on_lost = on_lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiting = self.waiting
        while True:
            reply = self.reader.gets()
            if reply is False:
                return
            if waiting:
                future = waiting.popleft()
                if not future.done():
                    future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(ScriptsUnavailable(f"connection lost: {exc or 'closed by Redis'}"))
        self._on_lost(self)

    def fail(self, error: Exception) -> None:
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class RedisScripts:
    """Named Lua scripts called by SHA over one pipelined connection.

    ``await call(name, keys, args)``: calls from the same loop iteration share one write; the answer is
    the script's reply (bytes, int, list). A missing script (``SCRIPT FLUSH``, a restarted Redis) is
    loaded again transparently. While Redis is unreachable every write tries to connect again (bounded
    by the timeout).
    """

    def __init__(self, url: str, scripts: dict[str, str], *, timeout_s: float) -> None:
        parsed = urlparse(url)
        self._host = parsed.hostname or "127.0.0.1"
        self._port = parsed.port or 6379
        self._ssl = ssl.create_default_context() if parsed.scheme == "rediss" else None
        self._setup: list[bytes] = []
        if parsed.password is not None:
            user = [unquote(parsed.username)] if parsed.username else []
            self._setup.append(pack("AUTH", *user, unquote(parsed.password)))
        db = parsed.path.strip("/")
        if db and db != "0":
            self._setup.append(pack("SELECT", int(db)))
        self._sources = dict(scripts)
        self._shas = {
            name: hashlib.sha1(src.encode(), usedforsecurity=False).hexdigest() for name, src in scripts.items()
        }
        self._timeout_s = timeout_s
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Task[_Protocol] | None = None
        self._queued: list[tuple[bytes, asyncio.Future[Any]]] = []

    async def call(self, name: str, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        """Run script ``name``; raise ScriptsUnavailable (no answer in time) or ScriptError (error reply)."""
        reply = await self._submit(pack("EVALSHA", self._shas[name], len(keys), _items(keys), _items(args)))
        if isinstance(reply, hiredis.ReplyError):
            reply = await self._again(name, keys, args, reply)
        return reply

    async def call_many(self, calls: Sequence[tuple[str, Sequence[Arg], Sequence[Arg]]]) -> list[Any]:
        """Several script calls in the same write; their replies in order (raises like :meth:`call`)."""
        futures = [
            self._submit(pack("EVALSHA", self._shas[name], len(keys), _items(keys), _items(args)))
            for name, keys, args in calls
        ]
        replies: list[Any] = await asyncio.gather(*futures, return_exceptions=True)
        for index, reply in enumerate(replies):
            if isinstance(reply, hiredis.ReplyError):  # an error reply (an exception class too): the script's
                replies[index] = await self._again(*calls[index], reply)
            elif isinstance(reply, BaseException):  # no answer: the write failed
                raise reply
        return replies

    async def _again(self, name: str, keys: Sequence[Arg], args: Sequence[Arg], error: Exception) -> Any:
        """After an error reply: the script's source once more if Redis lost it, else a ScriptError."""
        reply: Any = error
        if str(error).startswith("NOSCRIPT"):
            reply = await self._submit(pack("EVAL", self._sources[name], len(keys), _items(keys), _items(args)))
        if isinstance(reply, hiredis.ReplyError):
            raise ScriptError(f"{name}: {reply}")
        return reply

    async def close(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
        if self._protocol is not None:
            self._protocol.close()
            self._protocol = None

    def _submit(self, command: bytes) -> "asyncio.Future[Any]":
        """Queue ``command`` for this loop iteration's write; the future gets its reply."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()
        if not self._queued:
            loop.call_soon(self._flush)
        self._queued.append((command, done))
        return done

    def _flush(self) -> None:
        queued, self._queued = self._queued, []
        protocol = self._protocol
        if protocol is None or protocol.transport is None or protocol.transport.is_closing():
            asyncio.get_running_loop().create_task(self._connect_then_write(queued))
            return
        self._write(protocol, queued)

    def _write(self, protocol: _Protocol, queued: list[tuple[bytes, asyncio.Future[Any]]]) -> None:
        assert protocol.transport is not None
        futures = [done for _, done in queued]
        protocol.waiting.extend(futures)
        protocol.transport.write(b"".join(command for command, _ in queued))
        last = futures[-1]
        timer = asyncio.get_running_loop().call_later(self._timeout_s, self._expire, protocol, last)
        last.add_done_callback(lambda _f: timer.cancel())

    def _expire(self, protocol: _Protocol, last: asyncio.Future[Any]) -> None:
        """No reply within the deadline: fail what waits and drop the connection (replies would misalign)."""
        if last.done():
            return
        protocol.fail(ScriptsUnavailable(f"no reply from Redis within {self._timeout_s}s"))
        protocol.close()
        if self._protocol is protocol:
            self._protocol = None

    async def _connect_then_write(self, queued: list[tuple[bytes, asyncio.Future[Any]]]) -> None:
        try:
            protocol = await self._connected()
        except Exception as exc:  # never leave a caller waiting
            exc = exc if isinstance(exc, ScriptsUnavailable) else ScriptsUnavailable(repr(exc))
            for _, done in queued:
                if not done.done():
                    done.set_exception(exc)
            return
        self._write(protocol, queued)

    async def _connected(self) -> _Protocol:
        current = self._protocol
        if current is not None and current.transport is not None and not current.transport.is_closing():
            return current
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.get_running_loop().create_task(self._open())
        try:
            return await asyncio.shield(self._connecting)
        except (OSError, TimeoutError, ScriptsUnavailable) as exc:
            raise ScriptsUnavailable(f"cannot reach Redis at {self._host}:{self._port}: {exc}") from exc

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._timeout_s):
            _, protocol = await loop.create_connection(
                lambda: _Protocol(self._lost), self._host, self._port, ssl=self._ssl
            )
            setup = [*self._setup, *(pack("SCRIPT", "LOAD", src) for src in self._sources.values())]
            replies: list[asyncio.Future[Any]] = [loop.create_future() for _ in setup]
            protocol.waiting.extend(replies)
            assert protocol.transport is not None
            protocol.transport.write(b"".join(setup))
            for reply in await asyncio.gather(*replies):
                if isinstance(reply, hiredis.ReplyError):
                    protocol.close()
                    raise ScriptsUnavailable(f"Redis refused the connection setup: {reply}")
        self._protocol = protocol
        return protocol

    def _lost(self, protocol: _Protocol) -> None:
        if self._protocol is protocol:
            self._protocol = None
