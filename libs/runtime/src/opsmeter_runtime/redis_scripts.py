"""Named Lua scripts with a deadline, through redis-py's public pipeline API (hiredis parses the replies).

A script call that gets no reply within the deadline fails with :class:`ScriptsUnavailable` and the
caller decides without Redis; redis-py drops the connection of a cancelled call, so a late reply is
never read as another call's.
"""

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from opsmeter_runtime.redis import redis_client

Arg = str | int | bytes

LATE_LOOP_S = 0.02
"""A deadline timer that fired this much later than it was due says the event loop was busy (not Redis slow)."""


class ScriptsUnavailable(Exception):
    """Redis did not answer in time (``timed_out``), or refused the connection; nothing is known of the calls'
    effect."""

    def __init__(self, message: str, *, timed_out: bool) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class ScriptError(Exception):
    """The script itself failed (an error reply): a bug, not an outage."""


def _encoded(values: Sequence[Arg]) -> list[str | bytes]:
    return [str(v) if isinstance(v, int) else v for v in values]


async def _within(future: "asyncio.Future[Any]", deadline_s: float) -> Any:
    """The future's result within ``deadline_s`` (TimeoutError otherwise; the future is left running).

    A busy event loop fires its timers late, and before it reads the sockets: then a reply may be waiting
    unread, and Redis's silence is no evidence. So when the timer fired late, wait once more, as long again.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(deadline_s):
            return await asyncio.shield(future)
    except TimeoutError:
        if loop.time() - started - deadline_s < LATE_LOOP_S:
            raise
    async with asyncio.timeout(deadline_s):
        return await asyncio.shield(future)


_Queued = tuple[str, list[str | bytes], list[str | bytes], float, "asyncio.Future[Any]"]


class RedisScripts:
    """``await call(name, keys, args)``: the script's reply (bytes, int, list), or one of the errors above.

    Calls made in the same event-loop turn go out together as one redis-py pipeline (one round trip, one
    connection). The scripts are called by SHA and loaded again when Redis lost them (``SCRIPT FLUSH``, a
    restart).
    """

    def __init__(self, url: str, scripts: dict[str, str], *, timeout_s: float, cluster: bool = False) -> None:
        # Once more on a fresh connection: a restarted Redis closed the old. On a Redis Cluster the pipeline
        # sends each call to the node of its keys' slot (one workspace's keys share one, ADR 0059).
        self._redis = redis_client(url, cluster=cluster, socket_connect_timeout=timeout_s, max_connections=64)
        self._cluster = cluster
        self._sources = dict(scripts)
        self._shas = {name: self._redis.register_script(src).sha for name, src in scripts.items()}
        self._timeout_s = timeout_s
        self._queued: list[_Queued] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def call(self, name: str, keys: Sequence[Arg], args: Sequence[Arg], *, timeout_s: float = 0) -> Any:
        """Run script ``name``; raise ScriptsUnavailable (no answer within ``timeout_s``, by default the client's)
        or ScriptError (error reply)."""
        deadline_s = timeout_s or self._timeout_s
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()
        if not self._queued:
            loop.call_soon(self._send_queued)
        self._queued.append((name, _encoded(keys), _encoded(args), deadline_s, done))
        try:
            reply = await _within(done, deadline_s)
        except TimeoutError as exc:
            raise ScriptsUnavailable(f"{name}: no reply from Redis in time", timed_out=True) from exc
        if isinstance(reply, ResponseError):
            raise ScriptError(f"{name}: {reply}") from reply
        if isinstance(reply, TimeoutError | RedisTimeoutError):
            raise ScriptsUnavailable(f"{name}: no reply from Redis in time", timed_out=True) from reply
        if isinstance(reply, RedisConnectionError | OSError):
            raise ScriptsUnavailable(f"{name}: cannot reach Redis: {reply}", timed_out=False) from reply
        if isinstance(reply, BaseException):
            raise reply
        return reply

    async def call_many(
        self, calls: Sequence[tuple[str, Sequence[Arg], Sequence[Arg]]], *, timeout_s: float = 0
    ) -> list[Any]:
        """Several script calls (in the same pipeline); their replies in order (raises like :meth:`call`)."""
        return list(await asyncio.gather(*(self.call(n, k, a, timeout_s=timeout_s) for n, k, a in calls)))

    async def close(self) -> None:
        for task in list(self._sending):
            task.cancel()
        await self._redis.aclose()

    def _send_queued(self) -> None:
        queued, self._queued = self._queued, []
        task = asyncio.get_running_loop().create_task(self._send(queued))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, queued: list[_Queued]) -> None:
        replies: list[Any]
        work = asyncio.ensure_future(self._replies(queued))
        try:
            replies = await _within(work, max(q[3] for q in queued))
        except Exception as exc:  # never leave a caller waiting
            replies = [exc] * len(queued)
        finally:
            work.cancel()  # when still running (no reply in time, or closing): redis-py drops its connection
        for (*_, done), reply in zip(queued, replies, strict=True):
            if not done.done():
                done.set_result(reply)

    async def _replies(self, queued: list[_Queued]) -> list[Any]:
        replies = await self._pipeline(queued)
        lost = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if lost:  # Redis lost the scripts (a restart, SCRIPT FLUSH): load them, then those calls again
            for source in self._sources.values():
                await self._redis.script_load(source)
            for i, reply in zip(lost, await self._pipeline([queued[i] for i in lost]), strict=True):
                replies[i] = reply
        return replies

    async def _pipeline(self, queued: list[_Queued]) -> list[Any]:
        if self._cluster:  # redis-py refuses EVALSHA in a cluster pipeline: the calls go out together, one each
            await self._redis.initialize()  # the slot map, once, before the burst
            calls = (
                self._redis.evalsha(self._shas[name], len(keys), *keys, *args) for name, keys, args, _, _ in queued
            )
            return list(await asyncio.gather(*calls, return_exceptions=True))
        async with self._redis.pipeline(transaction=False) as pipe:
            for name, keys, args, _, _ in queued:
                pipe.evalsha(self._shas[name], len(keys), *keys, *args)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
            return replies
