"""Named Lua scripts with a deadline, through redis-py's public script API (hiredis parses the replies).

A script call that gets no reply within the deadline fails with :class:`ScriptsUnavailable` and the
caller decides without Redis; redis-py drops the connection of a cancelled call, so a late reply is
never read as another call's.
"""

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Arg = str | int | bytes


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


class RedisScripts:
    """``await call(name, keys, args)``: the script's reply (bytes, int, list), or one of the errors above.

    The scripts are loaded by SHA and loaded again when Redis lost them (``SCRIPT FLUSH``, a restart).
    """

    def __init__(self, url: str, scripts: dict[str, str], *, timeout_s: float) -> None:
        self._redis = Redis.from_url(
            url,
            decode_responses=False,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), retries=1),  # once more on a fresh connection: a restarted Redis closed the old
            retry_on_error=[RedisConnectionError],
            max_connections=256,
        )
        self._scripts: dict[str, AsyncScript] = {
            name: self._redis.register_script(src) for name, src in scripts.items()
        }
        self._timeout_s = timeout_s

    async def call(self, name: str, keys: Sequence[Arg], args: Sequence[Arg], *, timeout_s: float = 0) -> Any:
        """Run script ``name``; raise ScriptsUnavailable (no answer within ``timeout_s``, by default the client's)
        or ScriptError (error reply)."""
        try:
            async with asyncio.timeout(timeout_s or self._timeout_s):
                return await self._scripts[name](keys=_encoded(keys), args=_encoded(args))
        except ResponseError as exc:
            raise ScriptError(f"{name}: {exc}") from exc
        except (TimeoutError, RedisTimeoutError) as exc:
            raise ScriptsUnavailable(f"{name}: no reply from Redis in time", timed_out=True) from exc
        except (RedisConnectionError, OSError) as exc:
            raise ScriptsUnavailable(f"{name}: cannot reach Redis: {exc}", timed_out=False) from exc

    async def call_many(
        self, calls: Sequence[tuple[str, Sequence[Arg], Sequence[Arg]]], *, timeout_s: float = 0
    ) -> list[Any]:
        """Several script calls in one pipeline; their replies in order (raises like :meth:`call`)."""
        try:
            async with asyncio.timeout(timeout_s or self._timeout_s), self._redis.pipeline(transaction=False) as pipe:
                for name, keys, args in calls:
                    await self._scripts[name](keys=_encoded(keys), args=_encoded(args), client=pipe)
                replies: list[Any] = await pipe.execute()
                return replies
        except ResponseError as exc:
            raise ScriptError(str(exc)) from exc
        except (TimeoutError, RedisTimeoutError) as exc:
            raise ScriptsUnavailable("no reply from Redis in time", timed_out=True) from exc
        except (RedisConnectionError, OSError) as exc:
            raise ScriptsUnavailable(f"cannot reach Redis: {exc}", timed_out=False) from exc

    async def close(self) -> None:
        await self._redis.aclose()
