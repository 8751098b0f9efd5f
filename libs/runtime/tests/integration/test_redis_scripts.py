"""The script client (redis-py's scripts with a deadline) against the real local Redis."""

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from opsmeter_runtime.redis_scripts import RedisScripts, ScriptError, ScriptsUnavailable
from opsmeter_runtime.testing import Engines

SCRIPTS = {
    "incr": "return redis.call('INCRBY', KEYS[1], ARGV[1])",
    "echo": "return {KEYS[1], ARGV[1]}",
    # Busy for ARGV[1] milliseconds on Redis's clock, then answer: a Redis that answers late.
    "slow": (
        "local t = redis.call('TIME') local start = t[1] * 1000 + t[2] / 1000 "
        "repeat t = redis.call('TIME') until t[1] * 1000 + t[2] / 1000 - start >= tonumber(ARGV[1]) "
        "return 'late'"
    ),
    "broken": "return redis.call('NOSUCHCOMMAND')",
}


@pytest.fixture
async def scripts(engines: Engines) -> AsyncIterator[RedisScripts]:
    client = RedisScripts(engines.redis_url, SCRIPTS, timeout_s=0.25)
    yield client
    await client.close()


async def test_concurrent_calls_each_get_their_own_answer(scripts: RedisScripts, unique: str) -> None:
    answers = await asyncio.gather(*(scripts.call("echo", [f"k{i}-{unique}"], [i]) for i in range(50)))
    assert answers == [[f"k{i}-{unique}".encode(), str(i).encode()] for i in range(50)]
    totals = await asyncio.gather(*(scripts.call("incr", [f"n-{unique}"], [1]) for _ in range(50)))
    assert sorted(totals) == list(range(1, 51))


async def test_call_many_answers_in_order(scripts: RedisScripts, unique: str) -> None:
    replies = await scripts.call_many(
        [("incr", [f"m-{unique}"], [5]), ("echo", ["a"], ["b"]), ("incr", [f"m-{unique}"], [2])]
    )
    assert replies == [5, [b"a", b"b"], 7]


async def test_a_flushed_script_cache_is_reloaded(scripts: RedisScripts, redis_client: Redis, unique: str) -> None:
    assert await scripts.call("incr", [f"f-{unique}"], [1]) == 1
    await redis_client.script_flush()
    assert await scripts.call("incr", [f"f-{unique}"], [1]) == 2
    await redis_client.script_flush()
    assert await scripts.call_many([("incr", [f"f-{unique}"], [1])]) == [3]


async def test_an_error_reply_is_a_script_error_and_the_connection_stays_usable(
    scripts: RedisScripts, unique: str
) -> None:
    with pytest.raises(ScriptError, match="broken"):
        await scripts.call("broken", [], [])
    assert await scripts.call("echo", [unique], ["x"]) == [unique.encode(), b"x"]


async def test_a_late_reply_fails_its_callers_and_is_never_given_to_a_later_call(
    scripts: RedisScripts, unique: str
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ScriptsUnavailable, match="no reply"):
        await scripts.call("slow", [], [600])
    assert loop.time() - started < 0.5  # the timeout, not the script's 600 ms
    await asyncio.sleep(0.5)  # the late 'late' arrives on the dropped connection, if anywhere
    assert await scripts.call("echo", [unique], ["after"]) == [unique.encode(), b"after"]


async def test_a_reply_that_came_in_time_is_read_even_when_the_event_loop_was_busy_past_the_deadline(
    scripts: RedisScripts,
) -> None:
    """Under CPU load the loop reads Redis's reply late; that is not Redis being away (the gateway would then
    decide in-process and answer 429 with the default limit to a workspace far below its own)."""
    loop = asyncio.get_running_loop()
    call = asyncio.ensure_future(scripts.call("slow", [], [30], timeout_s=0.1))
    loop.call_later(0.01, time.sleep, 0.3)  # the loop is stuck from 10 ms to 310 ms; Redis answers at ~30 ms
    assert await call == b"late"


async def test_an_unreachable_redis_fails_fast() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = RedisScripts(f"redis://127.0.0.1:{port}/0", SCRIPTS, timeout_s=0.25)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ScriptsUnavailable, match="cannot reach"):
        await client.call("echo", ["a"], ["b"])
    assert loop.time() - started < 0.3
    await client.close()
